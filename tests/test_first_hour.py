"""Issue 27, the first hour: README claims checked against the code (the keys table against the
schema, `doit info`), messages that name what the user typed, paths as the user gave them,
output that never mixes a progress line with a message, and pictures that can be read."""
import importlib.util
import io
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml

from conftest import ROOT
from stages.common import config, keydoc, userpath
from stages.common.errors import ConfigError, DeviceError
from stages.common.schema import SCHEMA, VARIABLES

README = os.path.join(ROOT, "README.md")


def readme_keys():
    spec = importlib.util.spec_from_file_location(
        "readme_keys", os.path.join(ROOT, "tools", "readme_keys.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def table_rows():
    tool = readme_keys()
    with open(README) as f:
        lines = tool.table_lines(f.read())[2:]
    rows = {}
    for line in lines:
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip().strip("|"))]
        rows[cells[0].strip("`")] = cells[1:]
    return rows


# ---- the keys table is the schema ---------------------------------------------------------

def test_the_readme_keys_table_is_what_the_generator_writes_from_the_schema():
    assert readme_keys().main([]) == 0, "run: python tools/readme_keys.py --write"


def test_every_key_has_one_row_with_its_default_accepted_values_and_a_meaning():
    rows = table_rows()
    assert list(rows) == [name for name, _ in keydoc.keys()]
    for name, spec in keydoc.keys():
        default, accepted, meaning = rows[name]
        shown_default = default.split("`")[1]  # `value`, then maybe what pipeline.yaml sets
        assert yaml.safe_load(shown_default) == spec.default, name
        for choice in spec.choices or ():
            assert "`%s`" % choice in accepted, (name, choice)
        if spec.minimum is not None:
            assert "%g" % spec.minimum in accepted, name
        assert meaning, "%s has no meaning in README.md's keys table: write one" % name


def test_the_golden_images_default_is_one_image_and_pipeline_yaml_lists_three():
    default = table_rows()["golden.images"][0]
    assert default.startswith("`[examples/street_1920x1080.jpg]`")
    assert "pipeline.yaml: a list of 3" in default
    assert SCHEMA["golden"]["images"].default == ["examples/street_1920x1080.jpg"]


def test_pipeline_yaml_names_every_tensorrt_target_the_schema_accepts():
    with open(os.path.join(ROOT, "pipeline.yaml")) as f:
        line = [l for l in f if l.strip().startswith("target_tensorrt:")][0]
    comment = line.split("#", 1)[1]
    assert [t.strip().split()[0] for t in comment.split("|")] == list(
        SCHEMA["onnx"]["target_tensorrt"].choices)


# ---- messages name what the user typed -----------------------------------------------------

@pytest.mark.parametrize("name", sorted(n for n, (_, keys) in VARIABLES.items() if len(keys) > 1))
def test_a_multi_key_variable_is_named_as_typed_with_its_values_and_keys(name):
    with pytest.raises(ConfigError) as e:
        config.load("pipeline.yaml", {name: "0bogus"})
    message = str(e.value)
    assert message.startswith("%s=0bogus on the command line is not valid: %s= takes " % (
        name, name)), message
    assert "Key '" not in message
    assert ", ".join(VARIABLES[name][1][:-1]) + " and " + VARIABLES[name][1][-1] in message
    spec = config.key_spec(VARIABLES[name][1][0])
    for choice in spec.choices or ():
        assert choice in message


def test_a_long_value_is_clipped_in_the_message():
    with pytest.raises(ConfigError) as e:
        config.load("pipeline.yaml", {"n": "9" * 500 + "x"})
    assert len(str(e.value)) < 300 and "..." in str(e.value)


def test_backend_tensorrt_on_a_machine_without_tensorrt_says_so(monkeypatch):
    from stages.device import select, settings
    monkeypatch.setattr(settings, "fingerprint", lambda: {"tensorrt": None, "gpu": None})
    with pytest.raises(DeviceError) as e:
        select.open_runtime(object(), "tensorrt")
    assert "this machine cannot run TensorRT" in str(e.value)
    assert "doit build_engine" not in str(e.value)


# ---- paths: resolved where the user is, shown as typed ------------------------------------

def test_command_line_paths_are_relative_to_the_folder_doit_started_in(monkeypatch):
    from doit import loader
    here = os.path.join(ROOT, "examples")
    monkeypatch.setattr(loader, "initial_workdir", here)
    assert userpath.user_dir() == here
    cfg = config.load("pipeline.yaml", {"image": "odd_641x479.jpg"}, cwd=here)
    assert cfg["infer"]["image"] == os.path.join("examples", "odd_641x479.jpg")
    assert userpath.shown(cfg["infer"]["image"]) == "odd_641x479.jpg"
    with pytest.raises(ConfigError) as e:
        config.load("pipeline.yaml", {"image": "examples/odd_641x479.jpg"}, cwd=here)
    assert "relative to the folder you run doit in (%s)" % os.path.join(ROOT, "examples") in str(
        e.value)
    assert userpath.config_file("../pipeline.yaml") == "pipeline.yaml"


def test_paths_outside_the_users_folder_are_shown_in_full(monkeypatch, tmp_path):
    from doit import loader
    monkeypatch.setattr(loader, "initial_workdir", ROOT)
    outside = os.path.relpath(str(tmp_path / "x.jpg"), ROOT)  # ../../tmp/...
    assert outside.startswith("..")
    assert userpath.shown(outside) == str(tmp_path / "x.jpg")
    assert userpath.shown("examples/a.jpg") == "examples/a.jpg"
    assert userpath.shown("0") == "0" and userpath.shown("a ! b") == "a ! b"


# ---- output: data-path order, progress on a terminal only ---------------------------------

def test_stage_times_are_printed_in_data_path_order():
    from stages.device.report import stage_times
    timings = dict((k, 1.0) for k in ("write", "postprocess", "infer", "download", "preprocess",
                                      "upload", "read"))
    assert [p.split()[0] for p in stage_times(timings).split(", ")] == [
        "read", "upload", "preprocess", "infer", "postprocess", "download", "write"]


def test_a_failed_infer_prints_counts_without_a_mean_or_a_rate():
    from stages.device.infer import Stats
    stats = Stats()
    stats.failed += ["a.jpg", "b.jpg"]
    assert stats.summary() == "infer: 0 done, 2 failed"
    stats.add({"postprocess": 1.0, "preprocess": 2.0, "infer": 3.0})
    assert "mean preprocess 2.0 ms, infer 3.0 ms, postprocess 1.0 ms;" in stats.summary()


class Tty(io.StringIO):
    def isatty(self):
        return True


def test_progress_is_written_to_a_terminal_only_and_closed_before_any_message():
    from stages.device.report import Progress
    log = io.StringIO()
    p = Progress(log)
    p.update("frame 1")
    p.end()
    assert log.getvalue() == ""
    tty = Tty()
    p = Progress(tty)
    p.update("frame 10/12")
    p.update("frame 9")
    p.end()
    assert tty.getvalue() == "\rframe 10/12\rframe 9    \n"


def test_a_stream_that_fails_ends_its_progress_line_before_the_error(tmp_path, monkeypatch):
    import cv2
    from stages.device import infer
    video = str(tmp_path / "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), 20 * i, np.uint8))
    writer.release()

    class Seg(object):
        calls = 0

        def segment(self, frame, overlay_alpha=None):
            Seg.calls += 1
            if Seg.calls == 4:
                raise RuntimeError("boom")
            r = type("R", (), {})()
            r.timings, r.overlay, r.mask = {"infer": 1.0}, frame, frame[:, :, 0]
            return r
    tty = Tty()
    monkeypatch.setattr(sys, "stdout", tty)
    opts = {"out": str(tmp_path), "alpha": 0.5, "mode": "overlay", "limit": 0,
            "sequential": True, "max_mp": 80.0}
    with pytest.raises(RuntimeError):
        infer.infer_stream(Seg(), video, "video", opts, infer.Stats())
    assert "\rinfer: frame 3/6" in tty.getvalue() and tty.getvalue().endswith("\n")


def test_opencv_and_ffmpeg_log_lines_are_silenced(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video")
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from stages.device.report import quiet_opencv\nquiet_opencv()\nimport cv2\n"
            "assert not cv2.VideoCapture(%r).isOpened()\n"
            "assert not cv2.VideoCapture(97).isOpened()\n" % (ROOT, str(bad)))
    proc = subprocess.run([sys.executable, "-c", code], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, universal_newlines=True, timeout=120)
    assert proc.returncode == 0, proc.stdout
    assert "WARN" not in proc.stdout and "moov" not in proc.stdout, proc.stdout
