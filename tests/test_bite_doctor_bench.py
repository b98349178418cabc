"""doctor.py's report and what `doit bench` records, in process: the report's lines and verdict,
the error `doit doctor` raises, the summary, the bench conditions on a Jetson and on a desktop,
the jetson_clocks warning, trtexec and nvidia-smi read through fake runners, the probes of this
Python (with fake modules), and the build guard off a Jetson."""
import os
import platform
import shutil
import sys
import types

import numpy
import pytest

from runtime import jetson
from stages.common.errors import DeviceError
from stages.device import doctor
from stages.device.doctor_checks import estimate_build, memory_budget, row
from test_bite_doctor import b4, need_mb, set_memory  # noqa: F401 (fixture)
from test_bite_doctor_rows import DESKTOP, HOST, NANO, ctx_of, tree

ROWS = [row("board", "ok", "fine", "never shown"), row("numpy", "warn", "old", "pip it"),
        row("memory", "FAIL", "short", "add swap", ["build_engine"]),
        row("python", "FAIL", "2.7", "use 3", ["build_engine", "runtime_check", "verify"]),
        row("x", "warn", "no fix"), row("y", "FAIL", "bad", "fix it")]


def test_the_report_prints_fixes_blocks_and_the_verdict():
    lines = doctor.render(ROWS, {"role": "device", "next": "build_engine"}).split("\n")
    assert lines == [
        "doit doctor (device, next link: doit build_engine)",
        "  ok    board    fine",
        "  warn  numpy    old  -> fix: pip it",
        "  FAIL  memory   short  -> fix: add swap  [blocks doit build_engine]",
        "  FAIL  python   2.7  -> fix: use 3  [blocks doit build_engine, runtime_check, verify]",
        "  warn  x        no fix",
        "  FAIL  y        bad  -> fix: fix it",
        "doctor: 1 ok, 2 warn, 3 FAIL; doit build_engine is blocked by: memory, python"]


def test_the_report_names_the_role_and_says_when_the_next_link_can_run():
    first = doctor.render(ROWS, {"role": "gpu", "next": "verify"}).split("\n")
    assert first[0] == "doit doctor (GPU without TensorRT, next link: doit verify)"
    assert first[-1] == "doctor: 1 ok, 2 warn, 3 FAIL; doit verify is blocked by: python"
    lines = doctor.render(ROWS[:2], {"role": "host", "next": "onnx"}).split("\n")
    assert lines[0] == "doit doctor (host, next link: doit onnx)"
    assert lines[-1] == "doctor: 1 ok, 1 warn, 0 FAIL; doit onnx can run"


def test_the_summary_bench_records():
    assert doctor.summary(ROWS, {"next": "runtime_check"}) == {
        "ok": 1, "warn": 2, "fail": 3, "next_link": "runtime_check", "blocked": True,
        "problems": ["warn numpy: old", "FAIL memory: short", "FAIL python: 2.7", "warn x: no fix",
                     "FAIL y: bad"]}
    assert doctor.summary(ROWS[:2], {"next": "verify"}) == {
        "ok": 1, "warn": 1, "fail": 0, "next_link": "verify", "blocked": False,
        "problems": ["warn numpy: old"]}


def doctor_on(name, layout, root=None, workspace_mb=1024, **env):
    """(printed report, DeviceError message or None) of run_doctor on a fake machine."""
    ctx = ctx_of(name, root, **env)
    try:
        doctor.run_doctor({"engine": {"workspace_mb": workspace_mb}}, layout, ctx["root"],
                          ctx["env"], ctx["runner"])
        return None
    except DeviceError as e:
        return str(e)


def test_doit_doctor_raises_with_each_blocker_and_its_fix(b4, tmp_path, capsys):  # noqa: F811
    root = tree(NANO, tmp_path)
    set_memory(root, 1500, need_mb() - 1500 - 1)
    error = doctor_on(NANO, b4, root, pycuda=None)
    ctx = ctx_of(NANO, root, b4, pycuda=None)
    rows = doctor.examine(ctx)
    assert capsys.readouterr().out == doctor.render(rows, ctx) + "\n"
    assert error.startswith("doit build_engine cannot succeed on this machine: cuda (export PATH="
                            "/usr/local/cuda/bin:$PATH && pip3 install --user 'pycuda<=2022.1'); "
                            "memory (add swap: sudo fallocate -l 4G /swapfile2 ")
    assert error.endswith("or lower engine.workspace_mb).")


def test_doit_doctor_passes_when_no_fail_blocks_the_next_link(b4, capsys):  # noqa: F811
    assert doctor_on(NANO, b4) is None
    assert "doit build_engine can run" in capsys.readouterr().out
    assert doctor_on(NANO, b4, nvcc=None, workspace_mb=1024) is None  # nvcc: warn, not FAIL
    assert doctor_on(NANO, b4, workspace_mb=100000).startswith("doit build_engine cannot")


def test_bench_conditions_on_a_jetson(b4):  # noqa: F811
    calls = []
    root, env, runner = ctx_of(NANO)["root"], ctx_of(NANO)["env"], ctx_of(NANO)["runner"]
    cond = doctor.bench_conditions(b4, {"workspace_mb": 1024}, root, env,
                                   lambda argv: calls.append(argv[0]) or runner(argv))
    ctx = ctx_of(NANO, layout=b4)
    assert cond == {
        "jetson": True, "board": "NVIDIA Jetson Nano Developer Kit", "l4t": "32.7.1",
        "jetpack": "4.6.1", "power_mode": {"name": "MAXN", "id": 0}, "jetson_clocks": True,
        "jetson_clocks_evidence": "GPU min 921 / max 921 MHz, CPU min = max",
        "gpu_clock_mhz": jetson.devfreq(root), "emc_clock_mhz": {"cur_mhz": 1600, "max_mhz": 1600},
        "temperatures_c": jetson.temperatures(root), "nvidia_smi": None,
        "doctor": doctor.summary(doctor.examine(ctx), ctx)}
    assert cond["gpu_clock_mhz"]["cur_mhz"] == 921 and cond["temperatures_c"]["GPU-therm"] == 32.5
    assert cond["doctor"]["ok"] == 14 and "nvidia-smi" not in calls
    big = doctor.bench_conditions(b4, {"workspace_mb": 100000}, root, env, runner)
    assert big["doctor"]["blocked"] and big["doctor"]["problems"][0].startswith("FAIL memory: ")


SMI = "41, 1980, 1980, 2619, 118.50, P0\n40, 1, 2, 3, 4, P8\n"


def test_bench_conditions_on_a_desktop_read_nvidia_smi():
    calls = []
    ctx = ctx_of(DESKTOP)

    def runner(argv):
        calls.append(argv)
        return (0, SMI) if argv[0] == "nvidia-smi" else None
    cond = doctor.bench_conditions(None, None, ctx["root"], ctx["env"], runner)
    smi = {"temperature.gpu": "41", "clocks.sm": "1980", "clocks.max.sm": "1980",
           "clocks.mem": "2619", "power.draw": "118.50", "pstate": "P0"}
    assert cond == {"jetson": False, "board": None, "l4t": None, "jetpack": None,
                    "power_mode": None, "jetson_clocks": None,
                    "jetson_clocks_evidence": "not a Jetson", "gpu_clock_mhz": None,
                    "emc_clock_mhz": None, "temperatures_c": jetson.temperatures(ctx["root"]),
                    "nvidia_smi": smi, "doctor": doctor.summary(doctor.examine(ctx), ctx)}
    assert calls == [["nvidia-smi", "--query-gpu=temperature.gpu,clocks.sm,clocks.max.sm,"
                      "clocks.mem,power.draw,pstate", "--format=csv,noheader,nounits", "-i", "0"]]


@pytest.mark.parametrize("answer", [None, (1, SMI), (0, ""), (0, " \n")])
def test_no_nvidia_smi_reading_is_none(answer):
    assert doctor.gpu_smi(lambda argv: answer) is None


WARNING = ("warning: jetson_clocks is %s (%s), so these timings are not at fixed maximum clocks: "
           "run `sudo jetson_clocks` before doit bench to compare runs.")


def test_the_jetson_clocks_warning_from_the_machine(tmp_path):
    old = ctx_of("nano-4gb-l4t32.6.1")["root"]
    assert doctor.jetson_clocks_warning(root=old) == WARNING % (
        "off", "GPU min 76 / max 921 MHz, CPU min < max")
    assert doctor.jetson_clocks_warning(root=ctx_of(NANO)["root"]) is None
    assert doctor.jetson_clocks_warning(root=ctx_of(DESKTOP)["root"]) is None
    root = tree(NANO, tmp_path)
    shutil.rmtree(os.path.join(root, "sys", "class", "devfreq"))
    assert doctor.jetson_clocks_warning(root=root) == WARNING % (
        "in an unknown state", "GPU devfreq not readable")


def test_the_jetson_clocks_warning_from_recorded_conditions():
    desktop = ctx_of(DESKTOP)["root"]  # the record is read, not this machine
    cond = {"jetson": True, "jetson_clocks": False, "jetson_clocks_evidence": "e"}
    assert doctor.jetson_clocks_warning(cond, desktop) == WARNING % ("off", "e")
    cond["jetson_clocks"] = None
    assert doctor.jetson_clocks_warning(cond, desktop) == WARNING % ("in an unknown state", "e")
    cond["jetson_clocks"] = True
    assert doctor.jetson_clocks_warning(cond, desktop) is None
    old = ctx_of("nano-4gb-l4t32.6.1")["root"]
    cond = {"jetson": False, "jetson_clocks": False, "jetson_clocks_evidence": "e"}
    assert doctor.jetson_clocks_warning(cond, old) is None


def executable(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("#!/bin/sh\n")
    os.chmod(path, 0o755)
    return path


def test_trtexec_is_found_in_tensorrt_s_folder_then_on_path(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    root = str(tmp_path / "root")
    assert doctor.find_trtexec(root) is None
    fixed = os.path.join(root, "usr", "src", "tensorrt", "bin", "trtexec")
    os.makedirs(os.path.dirname(fixed))
    open(fixed, "w").close()  # there, but not executable
    assert doctor.find_trtexec(root) is None
    on_path = executable(str(tmp_path / "bin" / "trtexec"))
    assert doctor.find_trtexec(root) == on_path
    executable(fixed)
    assert doctor.find_trtexec(root) == fixed


TRT8 = ("[I] GPU Compute Time: min = 1.91 ms, max = 2.40 ms, mean = 1.97 ms, median = 1.95 ms, "
        "percentile(99%) = 2.3 ms\n")
TRT7 = "[I] GPU Compute: min: 2.69 ms, max: 3.05 ms, mean: 2.73 ms, median: 2.71 ms\n"


def test_trtexec_summaries_the_last_one_counts():
    assert doctor.parse_trtexec(TRT8) == (1.97, 1.95)
    assert doctor.parse_trtexec(TRT7) == (2.73, 2.71)
    assert doctor.parse_trtexec(TRT7 + TRT8) == (1.97, 1.95)
    assert doctor.parse_trtexec("[I] GPU Compute Time: mean = 1.5 ms\n") is None


def test_trtexec_crosscheck_records_its_command_and_times():
    calls = []
    out = doctor.trtexec_crosscheck("e/model.engine", 20.0, tool="/x/trtexec",
                                    runner=lambda argv: calls.append(argv) or (0, TRT8))
    command = ["/x/trtexec", "--loadEngine=e/model.engine", "--iterations=20", "--warmUp=500",
               "--duration=0"]
    assert calls == [command]
    assert out == {"tool": "/x/trtexec", "command": " ".join(command), "runs": 20,
                   "gpu_compute_mean_ms": 1.97, "gpu_compute_median_ms": 1.95}


@pytest.mark.parametrize("answer,error", [
    ((1, "loading\nbad engine\n"), "(exit 1): bad engine"), (None, "(exit None): did not start"),
    ((0, "no summary\n"), "(exit 0): no summary"), ((0, ""), "(exit 0): "),
    ((1, TRT8), "(exit 1): " + TRT8.strip()[-200:]), ((2, "x" * 300), "(exit 2): " + "x" * 200)])
def test_trtexec_crosscheck_reports_a_failure_with_its_last_line(answer, error):
    out = doctor.trtexec_crosscheck("e", 5, tool="/x/trtexec", runner=lambda argv: answer)
    assert out["error"] == "trtexec gave no GPU Compute Time " + error
    assert "gpu_compute_mean_ms" not in out and out["runs"] == 5


def test_no_trtexec_no_crosscheck(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert doctor.trtexec_crosscheck("e", 5, root=str(tmp_path), runner=lambda a: 1 / 0) is None


def fake_module(monkeypatch, name, **attrs):
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    monkeypatch.setitem(sys.modules, name, module)


def test_versions_of_importables(monkeypatch):
    fake_module(monkeypatch, "fake_pycuda", VERSION_TEXT="2022.1", VERSION=(2022, 1, 0))
    assert doctor._version("fake_pycuda", "VERSION_TEXT") == "2022.1"
    assert doctor._version("fake_pycuda", "VERSION") == "2022.1.0"
    assert doctor._version("fake_pycuda") is None  # no __version__
    assert doctor._version("numpy") == numpy.__version__
    assert doctor._version("no_such_module_here") is None


def test_opencv_is_probed_for_its_gstreamer(monkeypatch):
    info = "  Video I/O:\n    GStreamer:                   YES (1.16.3)\n    FFMPEG: NO\n"
    fake_module(monkeypatch, "cv2", __version__="4.5.4", getBuildInformation=lambda: info)
    assert doctor.probe_cv2() == {"version": "4.5.4", "gstreamer": "YES (1.16.3)"}
    fake_module(monkeypatch, "cv2", __version__="4.5.4", getBuildInformation=lambda: "none")
    assert doctor.probe_cv2() == {"version": "4.5.4", "gstreamer": None}
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 raises
    assert doctor.probe_cv2() is None


def test_this_python_is_probed_as_the_fakes_describe_it(monkeypatch, tmp_path):
    fake_module(monkeypatch, "pycuda", VERSION_TEXT="2021.1")
    fake_module(monkeypatch, "doit", __version__=(0, 34, 2))
    monkeypatch.setattr(doctor, "probe_gpu", lambda: {"name": "g"})
    monkeypatch.setattr(doctor, "probe_tensorrt", lambda: "8.2.1.8")
    monkeypatch.setattr(doctor, "probe_cv2", lambda: {"version": "4.1.1", "gstreamer": None})
    monkeypatch.setenv("PATH", os.path.dirname(executable(str(tmp_path / "bin" / "nvcc"))))
    found = {"torch", "transformers"}
    monkeypatch.setattr(doctor, "find_spec", lambda name: name in found or None)
    assert doctor.probe_env() == {
        "python": platform.python_version(), "numpy": numpy.__version__, "doit": "0.34.2",
        "cv2": {"version": "4.1.1", "gstreamer": None}, "tensorrt": "8.2.1.8",
        "pycuda": "2021.1", "gpu": {"name": "g"}, "nvcc": str(tmp_path / "bin" / "nvcc"),
        "host": True}
    found.discard("transformers")
    assert doctor.probe_env()["host"] is False
    found.discard("torch")
    found.add("transformers")
    assert doctor.probe_env()["host"] is False


def test_the_build_guard_off_a_jetson_keeps_the_workspace_out_of_ram(b4, tmp_path):  # noqa: F811
    root = ctx_of(DESKTOP)["root"]
    need = estimate_build(os.path.getsize(b4.onnx_model), 4096, False)[0]
    assert doctor.check_build_memory(b4.onnx_model, 4096, root) == (need, memory_budget(root)[0])
    assert need == 1012
    nano = tree(NANO, tmp_path)
    os.remove(os.path.join(nano, "proc", "meminfo"))
    assert doctor.check_build_memory(b4.onnx_model, 1024, nano) is None


def test_the_build_guard_advises_swap_for_the_whole_shortfall(b4, tmp_path):  # noqa: F811
    root = tree(NANO, tmp_path)
    set_memory(root, 1000, 0)  # 1000 MB usable; a 4096 MB workspace needs 5108 MB: 4108 short
    with pytest.raises(DeviceError) as e:
        doctor.check_build_memory(b4.onnx_model, 4096, root)
    assert "but only 1000 MB are free" in str(e.value)
    assert "`sudo fallocate -l 5G /swapfile2 " in str(e.value)


@pytest.fixture
def roots(monkeypatch):
    """The roots every filesystem probe was asked to read under."""
    seen, real = set(), jetson.at
    monkeypatch.setattr(jetson, "at", lambda root, path: seen.add(root) or real(root, path))
    return seen


def test_without_a_root_every_probe_reads_this_machine(roots, capsys):
    env, runner = ctx_of(HOST)["env"], lambda argv: None
    roots.clear()
    assert doctor.context(env=env, runner=runner)["root"] == "/" and roots == {"/"}
    roots.clear()
    doctor.run_doctor({"engine": {}}, None, env=env, runner=runner)
    assert "memory" in capsys.readouterr().out and roots == {"/"}
    roots.clear()
    doctor.bench_conditions(env=env, runner=runner)
    assert roots == {"/"}
    for probe in (lambda: doctor.jetson_clocks_warning(), lambda: doctor.find_trtexec(),
                  lambda: doctor.trtexec_crosscheck("e", 5, runner=runner)):
        roots.clear()
        probe()
        assert roots == {"/"}


def test_without_a_root_the_build_guard_reads_this_machine(b4, roots):  # noqa: F811
    try:
        doctor.check_build_memory(b4.onnx_model, 1)
    except DeviceError:  # this machine may be short of memory: the guard still read it
        pass
    assert roots == {"/"}
