"""The doctor and the engine build's memory guard agree at the boundary (need == usable passes
both, one MB more fails both); the swap advice rounds the shortfall up to whole GB; the schema
refuses a precision.margin that would make the device limits tighter than the emulated error."""
import os

import pytest

from stages.common.errors import DeviceError
from stages.device import doctor
from conftest import sized_onnx_project
from stages.device.doctor_checks import estimate_build, swap_command
from test_bite_config import refused, root  # noqa: F401 (fixture)
from test_bite_config import load as load_config
from test_doctor import CFG, copy_machine, line, run

ONNX_BYTES = 3 << 20  # a small model.onnx keeps these tests fast; the estimate scales with it

MACHINE = "nano-4gb-l4t32.7.1-swap"


def set_memory(root, available_mb, swap_free_mb, zram_mb=500):
    """A machine with exactly this MemAvailable and free disk swap (and some zram, not counted)."""
    meminfo = os.path.join(root, "proc", "meminfo")
    with open(meminfo) as f:
        lines = [l for l in f.read().splitlines() if not l.startswith("MemAvailable:")]
    lines.insert(2, "MemAvailable:    %d kB" % (available_mb * 1024))
    with open(meminfo, "w") as f:
        f.write("\n".join(lines) + "\n")
    with open(os.path.join(root, "proc", "swaps"), "w") as f:
        f.write("Filename\t\t\t\tType\t\tSize\tUsed\tPriority\n")
        f.write("/dev/zram0 partition\t%d\t0\t5\n" % (zram_mb * 1024))
        f.write("/swapfile file\t%d\t%d\t-1\n" % ((swap_free_mb + 100) * 1024, 100 * 1024))


@pytest.fixture
def b4(tmp_path, monkeypatch):
    """A project folder (the cwd) with a model.onnx of ONNX_BYTES and its sidecar."""
    monkeypatch.chdir(tmp_path)
    return sized_onnx_project(ONNX_BYTES)


def need_mb():
    return estimate_build(ONNX_BYTES, CFG["engine"]["workspace_mb"], True)[0]


@pytest.mark.parametrize("extra_mb", [0, 1, 700])
def test_need_equal_to_usable_passes_the_doctor_and_the_guard(b4, capsys, tmp_path, extra_mb):
    root = copy_machine(MACHINE, tmp_path)
    set_memory(root, 1500, need_mb() - 1500 + extra_mb)
    report, error = run(MACHINE, b4, capsys, root=root)
    assert error is None and line(report, "memory").startswith("  ok"), report
    assert doctor.check_build_memory(b4.onnx_model, CFG["engine"]["workspace_mb"], root) == (
        need_mb(), need_mb() + extra_mb)


@pytest.mark.parametrize("short_mb", [1, 2])
def test_one_mb_short_fails_the_doctor_and_the_guard(b4, capsys, tmp_path, short_mb):
    root = copy_machine(MACHINE, tmp_path)
    set_memory(root, 1500, need_mb() - 1500 - short_mb)
    report, error = run(MACHINE, b4, capsys, root=root)
    assert line(report, "memory").startswith("  FAIL") and error is not None, report
    with pytest.raises(DeviceError) as e:
        doctor.check_build_memory(b4.onnx_model, CFG["engine"]["workspace_mb"], root)
    assert "needs about %d MB" % need_mb() in str(e.value)


@pytest.mark.parametrize("short_mb,gb", [(1, 4), (4096, 4), (4097, 5), (5000, 5), (5120, 5),
                                         (5121, 6), (10 * 1024 + 1, 11)])
def test_the_swap_advice_rounds_the_shortfall_up_to_whole_gb_and_at_least_4(tmp_path, short_mb,
                                                                            gb):
    root = copy_machine(MACHINE, tmp_path)
    set_memory(root, 1000, 0)
    with open(os.path.join(root, "proc", "swaps"), "w") as f:
        f.write("Filename\tType\tSize\tUsed\tPriority\n")
    command = swap_command(root, short_mb)
    assert command.startswith("sudo fallocate -l %dG /swapfile " % gb), command


def test_the_swap_advice_never_names_a_swap_file_already_in_use(tmp_path):
    root = copy_machine(MACHINE, tmp_path)  # /swapfile is already a swap
    assert "-l 4G /swapfile2 " in swap_command(root, 10) and " /swapfile " not in swap_command(
        root, 10)


@pytest.mark.parametrize("value", ["0", "0.0", "0.5", "-1", "0.999"])
def test_a_precision_margin_below_one_is_refused(root, value):  # noqa: F811
    message = refused(root, "precision:\n  margin: %s\n" % value)
    assert "precision.margin" in message or "margin" in message


def test_a_precision_margin_of_one_and_above_is_accepted(root):  # noqa: F811
    assert load_config(root, "precision:\n  margin: 1\n")["precision"]["margin"] == 1.0
    assert load_config(root, "precision:\n  margin: 1.5\n")["precision"]["margin"] == 1.5


def test_the_build_estimate_in_mb_and_in_words():
    need, how = estimate_build(256 << 20, 1024, True)  # SegFormer-B4's model.onnx on a Jetson
    assert need == 3048 and how == ("1000 MB CUDA/TensorRT/cuDNN libraries + 4 x ONNX (256 MB) "
                                    "+ workspace 1024 MB (shared CPU/GPU memory)")
    need, how = estimate_build(3 << 19, 1024, False)  # 1.5 MB on a discrete GPU
    assert need == 1006 and how.endswith("4 x ONNX (2 MB) (workspace 1024 MB lives in GPU memory)")


def test_the_memory_row_says_what_it_counted_and_how_much_to_add(b4, capsys, tmp_path):
    root = copy_machine(MACHINE, tmp_path)
    set_memory(root, 1500, 200, zram_mb=700)
    report, error = run(MACHINE, b4, capsys, root=root)
    memory = line(report, "memory")
    assert ("RAM 3964 MB (1500 available), disk swap 200 MB free, zram 700 MB (not counted); the "
            "engine build needs about %d MB = 1000 MB CUDA" % need_mb()) in memory
    assert ("add swap: sudo fallocate -l 4G /swapfile2 " in memory
            and "or lower engine.workspace_mb" in memory and memory.startswith("  FAIL"))
    os.remove(os.path.join(root, "proc", "swaps"))  # unreadable: meminfo's SwapFree counts
    report, error = run(MACHINE, b4, capsys, root=root)
    assert "zram 0 MB (not counted)" in line(report, "memory")
    os.remove(os.path.join(root, "proc", "meminfo"))
    report, error = run(MACHINE, b4, capsys, root=root)
    assert line(report, "memory").startswith("  warn")
    assert line(report, "memory").endswith(" /proc/meminfo unreadable")


def test_the_swap_advice_covers_the_whole_shortfall(b4, capsys, tmp_path):
    from test_doctor import machine
    root = copy_machine(MACHINE, tmp_path)
    set_memory(root, 1000, 0)  # 1000 MB usable; a 4096 MB workspace needs 5108 MB: 4108 short
    _, env, runner = machine(MACHINE, root)
    with pytest.raises(DeviceError) as e:
        doctor.run_doctor({"engine": {"workspace_mb": 4096}}, b4, root=root, env=env,
                          runner=runner)
    assert "sudo fallocate -l 5G /swapfile2 " in capsys.readouterr().out + str(e.value)


def test_on_the_host_the_memory_row_only_reports(b4, capsys):
    report, error = run("cpu-host", b4, capsys)
    memory = line(report, "memory")
    assert memory.startswith("  ok ") and "RAM " in memory and "needs" not in memory


def test_without_a_project_the_doctor_still_reports_memory(tmp_path):
    from test_doctor import machine
    root, env, runner = machine(MACHINE)
    conditions = doctor.bench_conditions(None, None, root=root, env=env, runner=runner)
    assert not any("memory" in p for p in conditions["doctor"]["problems"])
