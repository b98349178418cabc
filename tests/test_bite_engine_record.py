"""The engine link's record of a build (round 2, issue 25, after main's merge of the build.log
islands): build.log and the sidecar name each fp32 island and why, on a weakly typed (8.2) and a
strongly typed (10) TensorRT; the progress monitor recorded where the generation has one; the
out-of-memory retry said on the console; Ctrl-C during a 10.x build cancels it through the
monitor and keeps the previous engine.

The TensorRT here is the test double (tests/doubles: NOT TensorRT, it shows our calls and
decisions, not that TensorRT builds)."""
import io
import json
import os

import pytest

from test_bite_engine import build, edit_report, make_device

@pytest.fixture(params=["8.2", "10"])
def device(request, tmp_path, monkeypatch):
    return make_device(request, tmp_path, monkeypatch)


ISLANDS = [{"node": "soft", "op": "Softmax", "outputs": ["logits"], "reason": "overflow 7e4"},
           {"node": "relu", "op": "Relu", "outputs": ["r"]}]  # an island with no reason given


def log_lines(folder):
    with open(folder.build_log) as f:
        return f.read().splitlines()


def test_build_log_and_the_sidecar_name_each_island_and_why(device):
    cfg, layout, trt = device
    edit_report(layout, islands=ISLANDS)
    folder, record = build(cfg, layout)
    assert record["islands"] == [{"node": "soft", "op": "Softmax", "reason": "overflow 7e4"},
                                 {"node": "relu", "op": "Relu", "reason": ""}]
    lines = log_lines(folder)
    at = lines.index("fp32 islands: 2")
    assert lines[at + 1:at + 3] == ["  Softmax soft: overflow 7e4", "  Relu relu: "]


def test_an_fp32_build_records_no_islands(device):
    cfg, layout, trt = device
    cfg["engine"]["precision"] = "fp32"
    folder, record = build(cfg, layout)
    assert record["islands"] == [] and "fp32 islands: 0" in log_lines(folder)


def test_the_progress_monitor_is_recorded_where_the_generation_has_one(device):
    cfg, layout, trt = device
    record = build(cfg, layout)[1]
    assert record["progress_monitor"] is (not trt.__version__.startswith("8."))


def test_the_out_of_memory_retry_is_said_on_the_console(device, monkeypatch, capsys):
    cfg, layout, trt = device
    monkeypatch.setenv("TRT_DOUBLE_OOM_ABOVE_MB", "40")
    monkeypatch.setenv("TRT_DOUBLE_WARN", "a tactic was skipped")  # build.log has more lines
    build(cfg, layout)
    out = capsys.readouterr().out.splitlines()
    said = [line for line in out if "ran out of memory" in line]
    assert said == ["build_engine: TensorRT ran out of memory; retrying once with half the "
                    "workspace (32 MB)."]


def test_a_rebuild_estimates_the_time_left_from_the_previous_build(device, monkeypatch, capsys):
    import functools
    from stages.device import trt_builder, trt_progress
    cfg, layout, trt = device
    folder, _ = build(cfg, layout)
    earlier = folder.read()
    earlier["engine"]["build_seconds"] = 600.0  # what the sidecar says the last build took
    with open(folder.sidecar, "w") as f:
        json.dump(earlier, f)
    # a heartbeat every 0.05 s instead of 30, and a build of 0.4 s
    monkeypatch.setattr(trt_builder, "Heartbeat",
                        functools.partial(trt_progress.Heartbeat, every=0.05))
    monkeypatch.setenv("TRT_DOUBLE_SLOW_BUILD", "0.4")
    cfg["engine"]["workspace_mb"] = 32
    capsys.readouterr()
    build(cfg, layout)
    beats = [line for line in capsys.readouterr().out.splitlines() if "still building" in line]
    assert beats and all("s left (the previous build here took 600 s)..." in b for b in beats)


class CtrlC(io.StringIO):
    """A console on which printing `word` is where Ctrl-C lands (inside the TensorRT logger)."""

    def __init__(self, word):
        io.StringIO.__init__(self)
        self.word = word

    def write(self, text):
        if self.word in text:
            raise KeyboardInterrupt
        return io.StringIO.write(self, text)


@pytest.mark.parametrize("device", ["10"], indirect=True)
def test_ctrl_c_in_a_10x_build_cancels_it_through_the_monitor_and_keeps_the_old_engine(
        device, monkeypatch):
    import sys
    cfg, layout, trt = device
    folder, _ = build(cfg, layout)
    with open(folder.engine, "rb") as f:
        old = f.read()

    def exit_now(code):  # what 8.x does, with no monitor to cancel through
        raise SystemExit(code)
    monkeypatch.setattr(os, "_exit", exit_now)
    monkeypatch.setenv("TRT_DOUBLE_WARN", "tactic skipped")
    monkeypatch.setattr(sys, "stdout", CtrlC("tactic skipped"))
    cfg["engine"]["workspace_mb"] = 32  # another build, into the same folder
    with pytest.raises(KeyboardInterrupt):
        build(cfg, layout)
    with open(folder.engine, "rb") as f:
        assert f.read() == old
    assert log_lines(folder)[-1].startswith("build_engine: failed after ")
