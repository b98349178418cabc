"""Every row of `doit doctor` that reads the probed Python environment (board, TensorRT, CUDA,
Python, numpy, doit, OpenCV), in process: a fake machine (tests/fixtures/jetson) with one
importable changed at a time, each row's status at its boundary, its sentence and its fix word
for word (the words are what a person on the Jetson reads and runs), and the links it blocks."""
import json
import os
import re
import shutil

import pytest

from stages.device import doctor, doctor_checks
from stages.device.doctor_checks import version_tuple
from test_doctor import FIX, machine


def named(name, check=None):
    """The check whose rows are all called `name` (the word `doit doctor` prints and
    bench_conditions records), checked on every call."""
    check = check or getattr(doctor_checks, "check_" + name)

    def run(ctx):
        r = check(ctx)
        assert r["name"] == name, r
        return r
    return run


check_board, check_tensorrt, check_cuda, check_python, check_numpy, check_doit, check_opencv = (
    named(n) for n in ("board", "tensorrt", "cuda", "python", "numpy", "doit", "opencv"))
check_nvcc, check_memory, check_power, check_clocks = (
    named(n) for n in ("nvcc", "memory", "power", "clocks"))

NANO = "nano-4gb-l4t32.7.1-swap"  # L4T 32.7.1 = JetPack 4.6.1, TensorRT 8.2.1.8, Python 3.6.9
ORIN = "orin-agx-l4t35.3.1"  # JetPack 5.1.1, TensorRT 8.5.2.2, numpy 1.24.4
ORIN_NANO = "orin-nano-l4t36.4.3"  # JetPack 6.2, TensorRT 10.3, OpenCV without GStreamer
DESKTOP = "desktop-h100"  # no L4T: TensorRT 10.13 and an H100
HOST = "cpu-host"  # no GPU, no TensorRT, no pycuda
SEE_ARCHIVE = "see https://developer.nvidia.com/embedded/jetpack-archive"


def ctx_of(name, root=None, layout=None, **env):
    """doctor.context of a fake machine, with these importables changed."""
    root, fake_env, runner = machine(name, root)
    fake_env.update(env)
    return doctor.context(layout, None, root, fake_env, runner)


def tree(name, tmp_path):
    dest = str(tmp_path / name)
    shutil.copytree(os.path.join(FIX, name), dest)
    return dest


def says(r, status, detail, fix=None, blocks=()):
    """The row is exactly this: a fix only where one is given, blocks only where a FAIL has."""
    assert r["status"] == status and r["detail"] == detail, r
    assert r["fix"] == fix and r["blocks"] == list(blocks), r


def test_version_tuple_reads_the_leading_numbers_of_each_part():
    assert version_tuple("8.2.1.8") == (8, 2, 1, 8)
    assert version_tuple("10.13.0.35") == (10, 13, 0, 35)
    assert version_tuple("1.24.0rc1") == (1, 24, 1)  # '0rc1': its digits
    assert version_tuple("3.8.x.1") == (3, 8)  # stops at the first part without a digit
    assert version_tuple(None) == () and version_tuple("") == ()
    with open(os.path.join(FIX, ORIN, "env.json")) as f:
        assert version_tuple(json.load(f)["pycuda"]) == (2022, 2, 2)


def test_board_on_a_jetson_names_the_jetpack_and_what_it_ships():
    says(check_board(ctx_of(NANO)), "ok", "NVIDIA Jetson Nano Developer Kit, L4T 32.7.1 = "
         "JetPack 4.6.1: TensorRT 8.2.1, CUDA 10.2, cuDNN 8.2.1, Python 3.6")


def test_board_of_an_unknown_l4t_warns_and_points_to_the_archive(tmp_path):
    root = tree(NANO, tmp_path)
    with open(os.path.join(root, "etc", "nv_tegra_release"), "w") as f:
        f.write("# R31 (release), REVISION: 1.0, GCID: 1, BOARD: t210ref\n")
    says(check_board(ctx_of(NANO, root)), "warn", "NVIDIA Jetson Nano Developer Kit, L4T 31.1.0:"
         " not in this project's JetPack table", SEE_ARCHIVE)


def test_board_of_a_jetson_without_a_device_tree_model(tmp_path):
    root = tree(NANO, tmp_path)
    os.remove(os.path.join(root, "proc", "device-tree", "model"))
    r = check_board(ctx_of(NANO, root))
    assert r["status"] == "ok", r
    assert r["detail"].startswith("Jetson (no device-tree model), L4T 32.7.1 = JetPack 4.6.1: ")


def test_board_of_a_desktop_gpu_and_of_a_cpu_only_host():
    says(check_board(ctx_of(DESKTOP)), "ok",
         "desktop/datacenter GPU NVIDIA H100 80GB HBM3 (sm_90, 81079 MB), not a Jetson")
    says(check_board(ctx_of(HOST)), "ok", "CPU-only host (no CUDA GPU through pycuda): "
         "build_engine and runtime_check run on the device; verify, infer and bench use ONNX "
         "Runtime here")


def test_tensorrt_missing_on_a_jetson_fails_and_blocks_the_build(tmp_path):
    fix = "sudo apt-get install python3-libnvinfer (JetPack's bindings are for its system %s)"
    says(check_tensorrt(ctx_of(NANO, tensorrt=None)), "FAIL", "not importable",
         fix % "python3.6", ["build_engine"])
    root = tree(NANO, tmp_path)  # an L4T outside the table: no Python version to name
    with open(os.path.join(root, "etc", "nv_tegra_release"), "w") as f:
        f.write("# R31 (release), REVISION: 1.0\n")
    says(check_tensorrt(ctx_of(NANO, root, tensorrt=None)), "FAIL", "not importable",
         fix % "python3", ["build_engine"])


def test_tensorrt_missing_off_a_jetson_warns_with_a_gpu_and_is_fine_without():
    says(check_tensorrt(ctx_of(DESKTOP, tensorrt=None)), "warn", "not importable: no engine can "
         "be built here; verify, infer and bench use ONNX Runtime", "pip install tensorrt")
    says(check_tensorrt(ctx_of(HOST)), "ok", "not installed (not needed on the host)")


@pytest.mark.parametrize("trt,same", [("8.2.1.8", True), ("8.2.3.0", True), ("8.0.1.6", False),
                                      ("8.3.1.1", False), ("9.2.1", False), ("7.2.1", False)])
def test_tensorrt_other_than_the_jetpack_ships_warns_by_major_minor(trt, same):
    r = check_tensorrt(ctx_of(NANO, tensorrt=trt))
    if same:
        says(r, "ok", "tensorrt %s importable (JetPack 4.6.1 ships 8.2.1)" % trt)
    else:
        says(r, "warn", "tensorrt %s importable, but L4T 32.7.1 ships 8.2.1" % trt,
             "reinstall JetPack's python3-libnvinfer; engines are tied to one TensorRT")


@pytest.mark.parametrize("target,older", [("8.2", False), ("8.2.9", False), ("7.1", False),
                                          ("8.3", True), ("9.0", True)])
def test_a_model_gated_for_a_newer_tensorrt_warns_by_major_minor(target, older):
    ctx = ctx_of(NANO)
    ctx["onnx_target"] = target
    r = check_tensorrt(ctx)
    if not older:
        says(r, "ok", "tensorrt 8.2.1.8 importable (JetPack 4.6.1 ships 8.2.1)")
    else:
        says(r, "warn", "tensorrt 8.2.1.8 importable; model.onnx was gated for TensorRT %s" %
             target, "operators newer than 8.2.1.8 may not parse: export for this TensorRT or "
             "upgrade JetPack")


def test_tensorrt_off_a_jetson_names_no_jetpack():
    says(check_tensorrt(ctx_of(DESKTOP)), "ok", "tensorrt 10.13.0.35 importable")
    ctx = ctx_of(DESKTOP)
    ctx["onnx_target"] = "10.14"
    assert check_tensorrt(ctx)["status"] == "warn"


PYCUDA_FIX = "export PATH=/usr/local/cuda/bin:$PATH && pip3 install --user 'pycuda<=2022.1'"


def test_pycuda_missing_fails_on_the_device_for_the_links_it_runs():
    says(check_cuda(ctx_of(NANO, pycuda=None)), "FAIL", "pycuda is not importable", PYCUDA_FIX,
         ["build_engine", "runtime_check"])
    ctx = ctx_of(DESKTOP, pycuda=None, tensorrt=None)  # a GPU without TensorRT: no build here
    assert ctx["role"] == "gpu"
    says(check_cuda(ctx), "FAIL", "pycuda is not importable", PYCUDA_FIX, ["runtime_check"])
    says(check_cuda(ctx_of(HOST)), "ok", "pycuda not installed (not needed on the host)")


def test_pycuda_without_a_cuda_device():
    says(check_cuda(ctx_of(NANO, gpu=None)), "FAIL", "pycuda 2021.1, but no CUDA device",
         "check the L4T driver and that this user is in the video group",
         ["build_engine", "runtime_check"])
    says(check_cuda(ctx_of(HOST, pycuda="2024.1")), "ok", "pycuda 2024.1, no CUDA device")


NANO_CUDA = "pycuda 2021.1, NVIDIA Tegra X1 sm_53, CUDA %s (pycuda's build), driver 10020"


@pytest.mark.parametrize("cuda,same", [("10.2", True), ("10.2.300", True), ("10.0", False),
                                       ("11.2", False)])
def test_pycuda_built_for_another_cuda_than_the_jetpack_warns(cuda, same):
    with open(os.path.join(FIX, NANO, "env.json")) as f:
        gpu = dict(json.load(f)["gpu"], cuda=cuda)
    r = check_cuda(ctx_of(NANO, gpu=gpu))
    if same:
        says(r, "ok", NANO_CUDA % cuda)
    else:
        says(r, "warn", NANO_CUDA % cuda + "; JetPack 4.6.1 has CUDA 10.2", "rebuild pycuda "
             "against JetPack's CUDA: pip3 install --user --force-reinstall --no-binary :all: "
             "'pycuda<=2022.1'")


def test_cuda_is_compared_by_major_minor_however_the_jetpack_writes_it():
    ctx = ctx_of(NANO)
    ctx["jetpack"] = dict(ctx["jetpack"], cuda="10.2.89")  # the patch level written too
    says(check_cuda(ctx), "ok", NANO_CUDA % "10.2")


def test_cuda_off_a_jetson_is_not_held_to_a_jetpack():
    says(check_cuda(ctx_of(DESKTOP)), "ok", "pycuda 2025.1, NVIDIA H100 80GB HBM3 sm_90, CUDA "
         "13.0 (pycuda's build), driver 13000")


@pytest.mark.parametrize("version,status", [("3.5.2", "FAIL"), ("2.7.18", "FAIL"),
                                            ("3.6", "ok"), ("3.6.0", "ok"), ("3.12.3", "ok")])
def test_python_older_than_3_6_fails_every_link(version, status):
    ctx = ctx_of(DESKTOP, python=version)  # no JetPack to match
    r = check_python(ctx)
    if status == "FAIL":
        says(r, "FAIL", version, "use python3.6 or newer", ctx["links"])
    else:
        says(r, "ok", version)


@pytest.mark.parametrize("machine_name,version,status", [
    (NANO, "3.6.9", "ok"), (NANO, "3.6.15", "ok"), (NANO, "3.8.10", "warn"),
    (NANO, "3.7.0", "warn"), (ORIN_NANO, "3.10.12", "ok"), (ORIN_NANO, "3.9.2", "warn")])
def test_python_other_than_the_jetpack_bindings_warns(machine_name, version, status):
    ctx = ctx_of(machine_name, python=version)
    jp = ctx["jetpack"]
    if status == "ok":
        says(check_python(ctx), "ok", version)
    else:
        says(check_python(ctx), "warn", "%s; JetPack %s's TensorRT bindings are for Python %s" % (
            version, jp["jetpack"], jp["python"]), "run doit with python" + jp["python"])


def test_numpy_missing_fails_every_link():
    ctx = ctx_of(NANO, numpy=None)
    says(check_numpy(ctx), "FAIL", "not importable", "pip3 install --user numpy==1.19.4",
         ctx["links"])


@pytest.mark.parametrize("trt,numpy,warn", [
    ("8.5.2.2", "1.24.4", True), ("8.4.1.5", "1.24.0", True), ("8.4", "1.24", True),
    ("8.5.2.2", "1.24", True), ("8.5.3.1", "1.24.4", False), ("8.3.9", "1.26.0", False),
    ("8.6.1", "1.24.4", False), ("8.5.2.2", "1.23.5", False), ("10.3.0", "1.26.4", False)])
def test_numpy_1_24_with_a_tensorrt_that_uses_np_bool_warns(trt, numpy, warn):
    r = check_numpy(ctx_of(DESKTOP, tensorrt=trt, numpy=numpy))
    if warn:
        says(r, "warn", "%s with TensorRT %s, whose trt.nptype uses np.bool (removed in numpy "
             "1.24)" % (numpy, trt), "pip3 install --user 'numpy<1.24'")
    else:
        says(r, "ok", numpy)


def test_numpy_1_24_without_tensorrt_is_fine():
    says(check_numpy(ctx_of(HOST, numpy="1.24.4")), "ok", "1.24.4")


def test_numpy_1_19_5_warns_on_a_jetson_only():
    says(check_numpy(ctx_of(NANO, numpy="1.19.5")), "warn", "1.19.5 dies with 'Illegal "
         "instruction' on Jetson (aarch64)", "pip3 install --user numpy==1.19.4")
    says(check_numpy(ctx_of(DESKTOP, numpy="1.19.5")), "ok", "1.19.5")
    says(check_numpy(ctx_of(NANO)), "ok", "1.19.4")


def test_doit_names_the_version_dodo_needs():
    says(check_doit(ctx_of(NANO)), "ok", "0.34.2 (dodo.py uses nothing newer than 0.34.2)")


def test_opencv_missing_fails_every_link():
    ctx = ctx_of(NANO, cv2=None)
    says(check_opencv(ctx), "FAIL", "cv2 is not importable", "sudo apt-get install "
         "python3-opencv (JetPack) or pip install opencv-python-headless", ctx["links"])


CSI_FIX = "use JetPack's python3-opencv (built with GStreamer), not pip's opencv-python"


def test_opencv_without_gstreamer_warns_on_a_jetson_only():
    says(check_opencv(ctx_of(NANO)), "ok", "4.1.1, GStreamer YES (1.14.5)")
    says(check_opencv(ctx_of(ORIN_NANO)), "warn", "4.10.0, GStreamer NO: CSI cameras "
         "(nvarguscamerasrc) will not open", CSI_FIX)
    unknown = {"version": "4.5.0", "gstreamer": None}
    says(check_opencv(ctx_of(NANO, cv2=unknown)), "warn", "4.5.0, GStreamer unknown: CSI "
         "cameras (nvarguscamerasrc) will not open", CSI_FIX)
    says(check_opencv(ctx_of(DESKTOP)), "ok", "4.11.0, GStreamer NO")
    says(check_opencv(ctx_of(DESKTOP, cv2=unknown)), "ok", "4.5.0, GStreamer unknown")


def test_every_row_is_named_after_its_check():
    ctx = ctx_of(NANO)
    names = [c(ctx)["name"] for c in doctor.CHECKS]
    assert names == ["board", "tensorrt", "cuda", "python", "numpy", "doit", "opencv", "nvcc",
                     "memory", "power", "clocks"]
    assert all(re.match(r"^[a-z]+$", n) for n in names)
