"""The rows of `doit doctor` that read the machine itself (nvcc, power mode, clocks, and memory
once an engine is built), in process, on copies of the fake machine trees (tests/fixtures/jetson)
with one file changed at a time, and a small model.onnx (test_bite_doctor's b4 fixture)."""
import os

import pytest

from runtime.kernels import KERNELS, cubin
from stages.device.doctor_checks import estimate_build, memory_budget
from test_bite_doctor import b4, need_mb, set_memory  # noqa: F401 (fixture)
from test_bite_doctor_rows import (DESKTOP, NANO, ORIN, ORIN_NANO, check_clocks, check_memory,
                                   check_nvcc, check_power, ctx_of, says, tree)

OLD_NANO = "nano-4gb-l4t32.6.1"  # no nvcc on PATH (only in /usr/local/cuda), clocks not pinned
PATH_FIX = "export PATH=/usr/local/cuda/bin:$PATH (add it to ~/.bashrc)"
TOOLKIT_FIX = "install the CUDA toolkit (JetPack: sudo apt-get install cuda-toolkit-*)"


def test_nvcc_on_path_or_off_the_device_is_fine():
    says(check_nvcc(ctx_of(NANO)), "ok", "/usr/local/cuda/bin/nvcc")
    says(check_nvcc(ctx_of("cpu-host")), "ok", "not on PATH (not needed on the host)")


def test_nvcc_only_in_usr_local_cuda_warns_with_the_path_to_add():
    says(check_nvcc(ctx_of(OLD_NANO)), "warn", "not on PATH, found at /usr/local/cuda/bin/nvcc",
         PATH_FIX)


def test_no_nvcc_at_all_fails_runtime_check_unless_the_kernels_are_compiled(b4):  # noqa: F811
    ctx = ctx_of(ORIN, nvcc=None)  # the AGX tree has no /usr/local/cuda
    says(check_nvcc(ctx), "FAIL", "not on PATH nor at /usr/local/cuda/bin", TOOLKIT_FIX,
         ["runtime_check"])
    folder = b4.kernels_dir("sm_87")
    os.makedirs(folder)
    for name in KERNELS:
        open(cubin(folder, name), "w").close()
    ctx = ctx_of(ORIN, layout=b4, nvcc=None)
    assert ctx["kernels_here"]
    says(check_nvcc(ctx), "ok", "absent, and not needed: the kernels for sm_87 are compiled")


def test_no_nvcc_on_a_gpu_without_tensorrt_blocks_only_runtime_check():
    ctx = ctx_of(DESKTOP, nvcc=None, tensorrt=None)
    assert ctx["role"] == "gpu"
    says(check_nvcc(ctx), "FAIL", "not on PATH nor at /usr/local/cuda/bin", TOOLKIT_FIX,
         ["runtime_check"])


def answers(text):
    """A runner whose `nvpmodel -q` prints text."""
    return lambda argv: (0, text) if argv[:2] == ["nvpmodel", "-q"] else None


def test_power_off_a_jetson_and_without_nvpmodel():
    says(check_power(ctx_of(DESKTOP)), "ok", "not a Jetson (no nvpmodel)")
    ctx = ctx_of(NANO)
    ctx["runner"] = lambda argv: None
    says(check_power(ctx), "warn", "nvpmodel -q gave no power mode",
         "sudo apt-get install nvpmodel")


@pytest.mark.parametrize("name,mode,status", [
    (NANO, "MAXN\n0", "ok"), (NANO, "5W\n1", "warn"), (ORIN_NANO, "15W\n0", "warn"),
    (ORIN_NANO, "MAXN_SUPER\n2", "ok"), (ORIN, "maxn\n3", "ok")])
def test_power_below_maxn_warns_with_the_command_for_this_board(name, mode, status):
    ctx = ctx_of(name)
    ctx["runner"] = answers("NVPM WARN: fan mode is not set!\nNV Power Mode: %s\n" % mode)
    label, number = mode.split("\n")
    detail = "nvpmodel mode %s (%s)" % (number, label)
    if status == "ok":
        says(check_power(ctx), "ok", detail)
    elif name == NANO:  # a Nano has two modes: 0 is MAXN (10 W)
        says(check_power(ctx), "warn", detail + ": not the fastest mode",
             "sudo nvpmodel -m 0 (MAXN, 10 W)")
    else:
        says(check_power(ctx), "warn", detail + ": not the fastest mode",
             "`nvpmodel -p --verbose` lists the modes: sudo nvpmodel -m <id of MAXN>")


NANO_TEMPS = "temps AO-therm 36C, CPU-therm 33C, GPU-therm 32C, PLL-therm 31C, thermal-fan-est 33C"


def test_clocks_pinned_with_everything_readable():
    says(check_clocks(ctx_of(NANO)), "ok", "jetson_clocks on (GPU min 921 / max 921 MHz, CPU min "
         "= max); GPU 921 MHz; EMC 1600/1600 MHz; " + NANO_TEMPS)
    says(check_clocks(ctx_of(DESKTOP)), "ok", "not a Jetson (no jetson_clocks)")


def test_clocks_not_pinned_warn_before_a_benchmark():
    says(check_clocks(ctx_of(OLD_NANO)), "warn", "jetson_clocks off (GPU min 76 / max 921 MHz, "
         "CPU min < max); GPU 76 MHz; EMC not readable (debugfs needs root); " + NANO_TEMPS,
         "sudo jetson_clocks before doit bench")


def test_clocks_unreadable_are_unknown_and_warn(tmp_path):
    root = tree(NANO, tmp_path)
    os.remove(os.path.join(root, "sys", "class", "devfreq", "57000000.gpu", "cur_freq"))
    for zone in os.listdir(os.path.join(root, "sys", "class", "thermal")):
        os.remove(os.path.join(root, "sys", "class", "thermal", zone, "temp"))
    says(check_clocks(ctx_of(NANO, root)), "warn", "jetson_clocks unknown (GPU devfreq not "
         "readable); EMC 1600/1600 MHz", "sudo jetson_clocks before doit bench")


def short_machine(tmp_path, short_mb):
    root = tree(NANO, tmp_path)
    set_memory(root, 1500, need_mb() - 1500 - short_mb)
    return root


def build_engine_here(layout, ctx):
    os.makedirs(layout.engine_dir(ctx["slug"]))
    open(os.path.join(layout.engine_dir(ctx["slug"]), "model.engine"), "w").close()


@pytest.mark.parametrize("short_mb", [1, 300])
def test_memory_short_once_the_engine_is_built_only_warns(b4, tmp_path, short_mb):  # noqa: F811
    root = short_machine(tmp_path, short_mb)
    before = check_memory(ctx_of(NANO, root, b4))
    build_engine_here(b4, ctx_of(NANO, root, b4))
    ctx = ctx_of(NANO, root, b4)
    assert ctx["next"] == "runtime_check"
    after = check_memory(ctx)
    assert before["status"] == "FAIL" and after["status"] == "warn", after
    need, how = estimate_build(os.path.getsize(b4.onnx_model), 1024, True)
    assert after["detail"] == "%s; the engine build needs about %d MB = %s" % (
        memory_budget(root)[1], need, how)
    assert after["detail"] == before["detail"] and after["fix"] == before["fix"]
    assert after["fix"].startswith("add swap: sudo fallocate -l 4G /swapfile2 ")
    assert after["blocks"] == before["blocks"] == ["build_engine"]


def test_memory_enough_once_the_engine_is_built_is_ok(b4, tmp_path):  # noqa: F811
    root = short_machine(tmp_path, 0)
    build_engine_here(b4, ctx_of(NANO, root, b4))
    r = check_memory(ctx_of(NANO, root, b4))
    assert r["status"] == "ok" and r["fix"] is None and r["blocks"] == [], r
