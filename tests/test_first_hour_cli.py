"""Issue 27 through the real doit command line and the printed summaries: `doit info` says why,
an up-to-date verify shows its last table, bench's summary (no None, data-path order, what each
part cost), verify's pictures, a subfolder's paths, videos' outputs, .gitignore in new
artifacts folders, no transformers loading bar."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import HAS_HOST, ROOT, copy_project, doit
from stages.common import uptodate


def test_doit_info_build_engine_says_why_it_would_run_on_a_machine_without_tensorrt(tmp_path):
    project = copy_project(str(tmp_path), with_artifacts=False)
    code, out = doit(project, "info", "build_engine")
    assert code == 1, out  # doit info exits 1 whenever the task would run (README says so)
    assert "this machine cannot build TensorRT engines (no TensorRT or no pycuda)" in out, out
    assert "- False" not in out and "<lambda>" not in out and "object at 0x" not in out
    with open(os.path.join(ROOT, "README.md")) as f:
        assert "`doit info build_engine` lists why it would run" in f.read()


def test_uptodate_checks_print_as_sentences_and_keep_doits_digest():
    from doit.tools import config_changed
    from stages.common.doitcompat import config_digest
    ours = uptodate.config_changed({"model": {"path": "m"}})
    assert str(ours).startswith("its settings (model) changed")
    assert config_digest(ours) == config_digest(config_changed({"model": {"path": "m"}}))
    check = uptodate.Check(lambda: "engine missing", lambda: False)
    assert check() is False and str(check) == "engine missing"
    assert uptodate.Check("always")() is False


def test_engine_present_says_which_engine_is_missing(tmp_path):
    from stages.common.layout import Layout
    from stages.device import settings
    cfg = {"artifacts": str(tmp_path), "golden": {"images": []}}
    try:
        layout = Layout(cfg)
    except (KeyError, TypeError):
        pytest.skip("Layout needs a full config")
    check = settings.engine_present(layout)
    assert check() is False and "engine is not built yet" in str(check)


def test_an_artifacts_folder_doit_creates_is_git_ignored(tmp_path, monkeypatch):
    from stages.common import actions, config
    monkeypatch.chdir(str(tmp_path))
    monkeypatch.setattr(config, "ROOT", str(tmp_path))  # the project (what is ours to write)
    actions.prepare_artifacts("new-artifacts", argv=["doit", "list"])
    with open(os.path.join("new-artifacts", ".gitignore")) as f:
        assert f.read().splitlines()[-1] == "*"
    os.makedirs("mine")
    actions.prepare_artifacts("mine", argv=["doit", "list"])
    assert not os.path.exists(os.path.join("mine", ".gitignore"))  # not ours: left alone


def bench_report(jetson):
    stage = {"p50": 1.0, "p90": 2.0, "p99": 3.0}
    pipeline = dict((k, stage) for k in ("total", "postprocess", "read", "infer", "preprocess"))
    pipeline["fps"] = 10.0
    cond = {"jetson": jetson, "board": "Jetson Nano" if jetson else None,
            "power_mode": "MAXN" if jetson else None, "jetson_clocks": False if jetson else None,
            "temperatures_c": {"GPU-therm": 32} if jetson else {}}
    stream = {"sequential": {"fps": 1.0, "frames": 5}, "pipelined": {"fps": 2.0, "frames": 5},
              "speedup": 2.0, "identical": True}
    return {"runtime": {"backend": "onnxruntime", "pre_post": "cpu"}, "image": "examples/a.jpg",
            "iterations": 5, "warmup": 5, "pipeline": pipeline, "load_ms": 3.0,
            "conditions": cond, "stream": stream, "plan": __import__(
                "stages.device.bench", fromlist=["scaled"]).scaled(5, 5),
            "seconds": {"load": 0.5, "pipeline": 1.0, "stream": 2.0, "cpu_post": 3.0}}


def test_bench_summary_has_no_none_stages_in_data_path_order_and_each_parts_cost():
    from stages.device.report import summary_lines
    lines = summary_lines(bench_report(jetson=False))
    assert not any("None" in l for l in lines), lines
    assert [l.split()[0] for l in lines[1:6]] == ["read", "preprocess", "infer", "postprocess",
                                                  "total"]
    assert "conditions: not a Jetson (no power mode" in "\n".join(lines)
    assert lines[-1] == ("  time spent: loading the model 0.5 s, stage times (5 timed + 5 "
                         "warm-up) 1.0 s, CPU post-processing (1 timed + 0 warm-up) 3.0 s, "
                         "stream (5 frames, sequential then pipelined) 2.0 s")
    jetson = "\n".join(summary_lines(bench_report(jetson=True)))
    assert "Jetson Nano, power mode MAXN, jetson_clocks off, temperatures GPU-therm 32C" in jetson


def test_bench_parts_scale_with_n():
    from stages.device.bench import scaled
    small, full = scaled(5, 5), scaled(50, 5)
    assert small["stream_frames"] == 5 and full["stream_frames"] == 50
    assert small["cpu_compare"] < full["cpu_compare"] and small["cpu_post"] < full["cpu_post"]
    assert scaled(2, 5)["warmup"] == 2


class Seg(object):
    labels = ["background", "road", "car"]
    palette = [[0, 0, 0], [128, 64, 128], [0, 0, 142]]


def verify_picture(monkeypatch, differ, width=1920):
    import cv2
    from stages.device import verify
    calls = []
    real = verify._centered
    monkeypatch.setattr(verify, "_centered", lambda *a: (calls.append(a[1]), real(*a)))
    image = np.full((540, width, 3), 90, np.uint8)
    golden = np.zeros((540, width), np.uint8)
    golden[300:, :] = 1
    mask = golden.copy()
    if differ:
        mask[:50, :50] = 2
    data = verify.picture(image, mask, golden, Seg())
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), calls


def test_verify_picture_says_no_disagreement_when_there_is_none(monkeypatch):
    picture, calls = verify_picture(monkeypatch, differ=False)
    assert calls == ["no disagreement"]
    third = picture[:, 2 * picture.shape[1] // 3:]
    assert (third[third.shape[0] // 2 - 20:third.shape[0] // 2 + 5] > 200).all(axis=2).any()
    _, calls = verify_picture(monkeypatch, differ=True)
    assert calls == []


def test_verify_picture_titles_scale_with_the_panels(monkeypatch):
    wide, _ = verify_picture(monkeypatch, differ=True, width=1920)  # panels 600x168
    narrow, _ = verify_picture(monkeypatch, differ=True, width=480)  # panels 480x540
    assert wide.shape[1] == 1800 and narrow.shape[1] == 1440
    bands = (wide.shape[0] - 168, narrow.shape[0] - 540)
    assert bands == (600 // 14, 480 // 14)  # title band (and its text) in proportion


def test_up_to_date_verify_prints_the_last_table(tmp_path):
    from stages.device.verify import last_report
    report = {"runtime": {"backend": "onnxruntime", "model": "m.onnx", "pre_post": "cpu"},
              "precision": "fp32", "images": [
                  {"image": "examples/a.jpg", "input_max_abs": 0.0, "logits_max_abs": 0.0,
                   "logits_mean_abs": 0.0, "mask_agreement": 1.0, "miou": 1.0,
                   "failures": []}]}
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report))
    text = last_report(str(path))
    assert text.startswith("verify: up to date: nothing it checks")
    assert str(path) in text and "a.jpg" in text and text.endswith("ok\n")
    assert "unreadable" in last_report(str(tmp_path / "none.json"))


@pytest.mark.skipif(not HAS_HOST, reason="needs torch and transformers")
def test_the_first_hour_through_doit(project):
    code, out = doit(project, "verify")
    assert code == 0 and "-- verify" in out and "verify: up to date" in out, out
    assert "street_1920x1080.jpg" in out.split("verify: up to date")[1]
    sub = os.path.join(project, "examples")
    code, out = doit(sub, "-k", "infer", "image=odd_641x479.jpg", "out=res")
    assert code == 0, out
    assert "infer: odd_641x479.jpg -> res (backend" in out and "../" not in out, out
    assert os.path.isfile(os.path.join(sub, "res", "odd_641x479_overlay.jpg"))
    code, out = doit(sub, "-k", "bench", "n=0")
    assert code != 0 and "error: n=0 on the command line is not valid" in out, out


@pytest.mark.skipif(not HAS_HOST, reason="needs torch and transformers")
def test_a_video_writes_an_mp4_and_a_masks_folder_without_carriage_returns(project):
    import cv2
    video = os.path.join(project, "clip.mp4")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 10, (160, 120))
    for i in range(3):
        writer.write(np.full((120, 160, 3), 40 * i, np.uint8))
    writer.release()
    code, out = doit(project, "infer", "image=clip.mp4", "out=vid")
    assert code == 0, out
    assert "\r" not in out and "Loading weights" not in out
    assert os.path.isfile(os.path.join(project, "vid", "clip_overlay.mp4"))
    assert sorted(os.listdir(os.path.join(project, "vid", "clip_masks")))[0] == "000000_mask.png"
    assert "a mask PNG per frame in vid/clip_masks" in out
    with open(os.path.join(ROOT, "README.md")) as f:
        assert "`<stem>_masks/`" in f.read()


@pytest.mark.skipif(not HAS_HOST, reason="needs torch and transformers")
def test_the_readme_describes_the_demo_model_on_the_street_example(built_project):
    from runtime.palette import classes_by_area, decode_mask_png
    art = os.path.join(built_project, "artifacts")
    with open(os.path.join(art, "checkout", "manifest.json")) as f:
        labels = json.load(f)["labels"]
    mask = decode_mask_png(os.path.join(art, "golden", "00_street_1920x1080", "mask.png"))
    with open(os.path.join(ROOT, "README.md")) as f:
        text = " ".join(f.read().split())
    for cls, count in classes_by_area(mask)[:6]:
        assert "%s %d %%" % (labels[cls], round(100.0 * count / mask.size)) in text


@pytest.mark.skipif(not HAS_HOST, reason="needs torch and transformers")
def test_loading_the_checkout_prints_no_progress_bar(built_project, capfd):
    from stages.host.checkout import load_model
    with open(os.path.join(built_project, "artifacts", "checkout", "manifest.json")) as f:
        manifest = json.load(f)
    load_model(os.path.join(built_project, "models", "segformer-tiny-sidewalk"), manifest, False)
    captured = capfd.readouterr()
    assert "Loading weights" not in captured.out + captured.err


def test_doit_seek_file_is_available_on_this_doit():
    out = subprocess.run([sys.executable, "-m", "doit", "help", "run"],
                         cwd=ROOT, stdout=subprocess.PIPE, universal_newlines=True).stdout
    assert "--seek-file" in out and "DOIT_SEEK_FILE" in out
