"""doit doctor, the engine build's memory guard and the bench conditions, run against fake
machines: tests/fixtures/jetson/<machine>/ holds a filesystem tree (/etc/nv_tegra_release,
/proc/meminfo, /proc/swaps, /proc/device-tree/model, sysfs clocks and thermal zones), the
output of `nvpmodel -q` and env.json (what that machine's Python can import)."""
import json
import os
import shutil

import pytest

from conftest import ROOT, copy_project, doit, sized_onnx_project
from runtime import jetson
from runtime.device import probe_gpu
from stages.common.errors import DeviceError
from stages.device import doctor

FIX = os.path.join(ROOT, "tests", "fixtures", "jetson")
B4_BYTES = 256 << 20  # SegFormer-B4's model.onnx at 512x512 (README: 256 MB)
SWAP_CMD = "sudo fallocate -l 4G /swapfile && sudo chmod 600 /swapfile && sudo mkswap /swapfile"
CFG = {"engine": {"workspace_mb": 1024}}
NANO_461 = "nvidia-tegra-x1_sm53_cuda10.2_trt8.2.1.8_l4t32.7.1"  # the fingerprint's folder


def machine(name, root=None):
    """(root, env, runner) of a fake machine; runner answers `nvpmodel -q` from the tree."""
    root = root or os.path.join(FIX, name)
    with open(os.path.join(root, "env.json")) as f:
        env = json.load(f)

    def runner(argv):
        path = os.path.join(root, "nvpmodel-q.txt")
        if argv[0] == "nvpmodel" and os.path.isfile(path):
            with open(path) as f:
                return 0, f.read()
        return None
    return root, env, runner


def copy_machine(name, tmp_path):
    dest = str(tmp_path / name)
    shutil.copytree(os.path.join(FIX, name), dest)
    return dest


@pytest.fixture
def b4(tmp_path, monkeypatch):
    """A project folder (the cwd) whose model.onnx has SegFormer-B4's size, with its sidecar."""
    monkeypatch.chdir(tmp_path)
    return sized_onnx_project(B4_BYTES)


def run(name, layout, capsys, root=None, env=None):
    """(report text, DeviceError message or None) of the doctor on a fake machine."""
    root, fake_env, runner = machine(name, root)
    try:
        doctor.run_doctor(CFG, layout, root=root, env=env or fake_env, runner=runner)
        error = None
    except DeviceError as e:
        error = str(e)
    return capsys.readouterr().out, error


def line(report, name):
    found = [l for l in report.splitlines() if l[8:].startswith(name + " ")]
    assert len(found) == 1, report
    return found[0]


def statuses(report):
    return set(l[2:6].strip() for l in report.splitlines() if l.startswith("  "))


def test_nano_jp46_with_only_zram_is_blocked_with_the_swap_command(b4, capsys):
    report, error = run("nano-4gb-l4t32.6.1", b4, capsys)
    board = line(report, "board")
    assert "L4T 32.6.1 = JetPack 4.6: TensorRT 8.0.1, CUDA 10.2, cuDNN 8.2.1" in board
    memory = line(report, "memory")
    assert memory.startswith("  FAIL") and "needs about 3048 MB" in memory and SWAP_CMD in memory
    assert "zram 1980 MB (not counted)" in memory and "[blocks doit build_engine]" in memory
    assert error.startswith("doit build_engine cannot succeed") and SWAP_CMD in error
    assert report.splitlines()[-1].endswith("doit build_engine is blocked by: memory")


def test_the_same_nano_with_a_swap_file_can_build(b4, capsys, tmp_path):
    root = copy_machine("nano-4gb-l4t32.6.1", tmp_path)
    with open(os.path.join(root, "proc", "swaps"), "a") as f:
        f.write("/swapfile                               file\t4194300\t0\t-1\n")
    report, error = run("nano-4gb-l4t32.6.1", b4, capsys, root=root)
    assert error is None, report
    assert line(report, "memory").startswith("  ok") and "disk swap 4095 MB free" in report


def test_nano_jp461_with_swap_and_jetson_clocks_is_ready(b4, capsys):
    report, error = run("nano-4gb-l4t32.7.1-swap", b4, capsys)
    assert error is None and statuses(report) == {"ok"}, report
    assert "L4T 32.7.1 = JetPack 4.6.1: TensorRT 8.2.1" in line(report, "board")
    clocks = line(report, "clocks")
    assert "jetson_clocks on" in clocks and "GPU 921 MHz" in clocks
    assert "EMC 1600/1600 MHz" in clocks
    assert "PMIC-Die" not in clocks and "nvpmodel mode 0 (MAXN)" in line(report, "power")
    assert "(%s): none yet" % NANO_461 in line(report, "engines")


def test_orin_jp511_warns_about_numpy_and_np_bool(b4, capsys):
    report, error = run("orin-agx-l4t35.3.1", b4, capsys)
    assert error is None
    board = line(report, "board")
    assert "JetPack 5.1.1: TensorRT 8.5.2, CUDA 11.4, cuDNN 8.6.0, Python 3.8" in board
    numpy = line(report, "numpy")
    assert numpy.startswith("  warn") and "np.bool" in numpy and "'numpy<1.24'" in numpy
    assert line(report, "memory").startswith("  ok")


def test_orin_jp62_reads_its_clocks_power_mode_and_opencv(b4, capsys):
    report, error = run("orin-nano-l4t36.4.3", b4, capsys)
    assert error is None
    assert "JetPack 6.2: TensorRT 10.3, CUDA 12.6, cuDNN 9.3, Python 3.10" in line(report, "board")
    assert line(report, "power").startswith("  warn") and "(15W)" in report
    assert "nvpmodel -p" in report
    assert "jetson_clocks off (GPU min 306 / max 1020 MHz" in line(report, "clocks")
    assert line(report, "opencv").startswith("  warn") and "nvarguscamerasrc" in report


def test_desktop_gpu_keeps_the_workspace_out_of_ram(b4, capsys):
    report, error = run("desktop-h100", b4, capsys)
    assert error is None and statuses(report) == {"ok"}, report
    assert "desktop/datacenter GPU NVIDIA H100 80GB HBM3 (sm_90" in line(report, "board")
    assert "needs about 2024 MB" in report and "lives in GPU memory" in report
    assert "not a Jetson" in line(report, "power") and "not a Jetson" in line(report, "clocks")


def test_cpu_only_host_reports_a_host_and_passes(b4, capsys):
    os.remove(b4.onnx_model)
    report, error = run("cpu-host", b4, capsys)
    assert error is None and statuses(report) == {"ok"}, report
    assert report.startswith("doit doctor (host, next link: doit onnx)")
    assert "CPU-only host" in line(report, "board") and "not exported yet" in line(report, "model")


@pytest.mark.parametrize("release, jetpack, trt", [
    ("32.6.1", "4.6", "8.0.1"), ("32.7.1", "4.6.1", "8.2.1"), ("32.7.4", "4.6.2-4.6.6", "8.2.1"),
    ("35.3.1", "5.1.1", "8.5.2"), ("35.6.0", "5.1.3-5.1.5", "8.5.2"), ("36.3.0", "6.0", "8.6.2"),
    ("36.4.0", "6.1", "10.3"), ("36.4.3", "6.2", "10.3")])
def test_jetpack_table(release, jetpack, trt):
    found = jetson.jetpack(release)
    assert (found["jetpack"], found["tensorrt"]) == (jetpack, trt)


def test_unknown_l4t_is_not_guessed():
    assert jetson.jetpack("31.1.0") is None and jetson.jetpack("3") is None


def test_missing_model_on_the_device_blocks_the_build_and_names_the_bundle(b4, capsys):
    os.remove(b4.onnx_model)
    report, error = run("nano-4gb-l4t32.7.1-swap", b4, capsys)
    assert line(report, "model").startswith("  FAIL") and "doit bundle" in error
    assert error.startswith("doit build_engine cannot succeed")


def test_a_model_that_its_sidecar_does_not_record_blocks_the_build(b4, capsys):
    with open(b4.onnx_model, "r+b") as f:
        f.write(b"x")
    report, error = run("nano-4gb-l4t32.7.1-swap", b4, capsys)
    assert "does not record" in line(report, "model") and "model (copy model.onnx" in error


def test_an_engine_from_before_a_jetpack_upgrade_is_flagged(b4, capsys):
    old = os.path.join("artifacts", "engine", "nvidia-tegra-x1_sm53_cuda10.2_trt8.0.1.6_l4t32.6.1")
    os.makedirs(old)
    open(os.path.join(old, "model.engine"), "wb").close()
    report, error = run("nano-4gb-l4t32.7.1-swap", b4, capsys)
    engines = line(report, "engines")
    assert engines.startswith("  warn") and "trt8.0.1.6_l4t32.6.1 (TensorRT unknown)" in engines
    assert "will not load" in engines and error is None


def build_here(kernels=False):
    folder = os.path.join("artifacts", "engine", NANO_461)
    os.makedirs(folder)
    open(os.path.join(folder, "model.engine"), "wb").close()
    if kernels:
        os.makedirs(os.path.join("artifacts", "kernels", "sm_53"))
        for k in ("preprocess", "postprocess", "overlay"):
            open(os.path.join("artifacts", "kernels", "sm_53", k + ".cubin"), "wb").close()


def test_no_nvcc_fails_but_blocks_only_once_runtime_check_is_next(b4, capsys, tmp_path):
    root = copy_machine("nano-4gb-l4t32.7.1-swap", tmp_path)
    shutil.rmtree(os.path.join(root, "usr"))
    env = machine("", root)[1]
    env["nvcc"] = None
    report, error = run("", b4, capsys, root=root, env=env)
    assert line(report, "nvcc").startswith("  FAIL") and error is None  # next: build_engine
    build_here()
    report, error = run("", b4, capsys, root=root, env=env)
    assert "next link: doit runtime_check" in report and error.startswith("doit runtime_check")
    shutil.rmtree(os.path.join("artifacts", "engine"))
    build_here(kernels=True)
    report, error = run("", b4, capsys, root=root, env=env)
    assert line(report, "nvcc").startswith("  ok") and "not needed" in report and error is None


def test_tensorrt_missing_on_a_jetson_blocks_the_build(b4, capsys):
    env = machine("nano-4gb-l4t32.7.1-swap")[1]
    env.update(tensorrt=None, python="3.8.0")
    report, error = run("nano-4gb-l4t32.7.1-swap", b4, capsys, env=env)
    assert "python3-libnvinfer" in error and "python3.6" in error
    assert line(report, "python").startswith("  warn") and "run doit with python3.6" in report


def test_a_model_gated_for_a_newer_tensorrt_warns(b4, capsys):
    with open(os.path.join(b4.onnx_dir, "report.json"), "w") as f:
        json.dump({"gate": {"target_tensorrt": "8.2"}}, f)
    report, error = run("nano-4gb-l4t32.6.1", b4, capsys)
    assert line(report, "tensorrt").startswith("  warn") and "gated for TensorRT 8.2" in report


def test_the_build_guard_raises_one_sentence_with_the_swap_command(b4):
    nano = os.path.join(FIX, "nano-4gb-l4t32.6.1")
    with pytest.raises(DeviceError) as e:
        doctor.check_build_memory(b4.onnx_model, 1024, root=nano)
    message = str(e.value)
    assert message.startswith("The engine build needs about 3048 MB") and SWAP_CMD in message
    assert message.count(". ") == 0 and message.endswith("rerun doit build_engine.")
    assert doctor.check_build_memory(b4.onnx_model, 256, root=nano) == (2280, 2587)
    swap = os.path.join(FIX, "nano-4gb-l4t32.7.1-swap")
    assert doctor.check_build_memory(b4.onnx_model, 1024, root=swap) == (3048, 2587 + 4095)
    assert doctor.check_build_memory("absent.onnx", 1024, root=nano) is None


def test_run_build_stops_on_the_guard_before_importing_tensorrt(b4, monkeypatch):
    from stages.device import engine
    monkeypatch.setattr(engine.device, "fingerprint",
                        lambda: {"gpu": "NVIDIA Tegra X1", "tensorrt": "8.2.1"})
    monkeypatch.setattr(jetson, "meminfo", lambda root: {"total": 3964, "available": 1500,
                                                         "swap_total": 0, "swap_free": 0})
    monkeypatch.setattr(jetson, "swaps", lambda root: [])
    with pytest.raises(DeviceError) as e:
        engine.run_build({"engine": {"workspace_mb": 1024}}, b4)
    assert "only 1500 MB are free" in str(e.value) and SWAP_CMD in str(e.value)


def test_bench_conditions_record_power_clocks_and_temperatures(b4):
    root, env, runner = machine("nano-4gb-l4t32.6.1")
    cond = doctor.bench_conditions(b4, CFG["engine"], root=root, env=env, runner=runner)
    assert json.loads(json.dumps(cond)) == cond
    assert cond["power_mode"] == {"name": "MAXN", "id": 0} and cond["jetson_clocks"] is False
    assert cond["gpu_clock_mhz"]["cur_mhz"] == 76 and "PMIC-Die" not in cond["temperatures_c"]
    assert cond["temperatures_c"]["GPU-therm"] == 32.5 and cond["jetpack"] == "4.6"
    assert cond["doctor"]["blocked"] and cond["doctor"]["next_link"] == "build_engine"
    assert "sudo jetson_clocks" in doctor.jetson_clocks_warning(cond)
    assert "jetson_clocks is off" in doctor.jetson_clocks_warning(root=root)


def test_no_clocks_warning_with_jetson_clocks_on_or_off_jetson():
    root, env, runner = machine("nano-4gb-l4t32.7.1-swap")
    cond = doctor.bench_conditions(root=root, env=env, runner=runner)
    assert cond["jetson_clocks"] is True
    assert cond["emc_clock_mhz"] == {"cur_mhz": 1600, "max_mhz": 1600}
    assert doctor.jetson_clocks_warning(cond) is None
    assert doctor.jetson_clocks_warning(root=os.path.join(FIX, "desktop-h100")) is None


def test_bench_conditions_on_a_desktop_read_nvidia_smi():
    root, env, _ = machine("desktop-h100")
    def smi(argv):
        return (0, "41, 1980, 1980, 2619, 118.50, P0\n") if argv[0] == "nvidia-smi" else None
    cond = doctor.bench_conditions(root=root, env=env, runner=smi)
    assert cond["jetson"] is False and cond["power_mode"] is None and cond["jetson_clocks"] is None
    assert cond["nvidia_smi"]["temperature.gpu"] == "41"
    assert cond["nvidia_smi"]["clocks.sm"] == "1980"


TRT8 = ("[I] Latency: min = 2.1 ms, max = 2.6 ms, mean = 2.2 ms, median = 2.2 ms\n"
        "[I] GPU Compute Time: min = 1.91 ms, max = 2.40 ms, mean = 1.97 ms, median = 1.95 ms, "
        "percentile(99%) = 2.3 ms\n")
TRT7 = ("[I] GPU Compute: min: 2.69 ms, max: 3.05 ms, mean: 2.73 ms, median: 2.71 ms, "
        "percentile: 2.9 ms\n")


def test_trtexec_summaries_of_both_generations_are_parsed():
    assert doctor.parse_trtexec(TRT8) == (1.97, 1.95)
    assert doctor.parse_trtexec(TRT7) == (2.73, 2.71)
    assert doctor.parse_trtexec("&&&& FAILED TensorRT.trtexec") is None


def test_trtexec_crosscheck_runs_the_engine_and_reports_failures(tmp_path, monkeypatch):
    calls = []
    out = doctor.trtexec_crosscheck("e/model.engine", 20, tool="/x/trtexec",
                                    runner=lambda argv: calls.append(argv) or (0, TRT8))
    assert calls == [["/x/trtexec", "--loadEngine=e/model.engine", "--iterations=20",
                      "--warmUp=500", "--duration=0"]]
    assert out["gpu_compute_mean_ms"] == 1.97 and out["gpu_compute_median_ms"] == 1.95
    bad = doctor.trtexec_crosscheck("e", 5, tool="/x/trtexec",
                                    runner=lambda argv: (1, "bad engine\n"))
    assert "exit 1" in bad["error"] and "bad engine" in bad["error"]
    monkeypatch.setenv("PATH", str(tmp_path))
    assert doctor.trtexec_crosscheck("e", 5, root=str(tmp_path)) is None


def test_readme_quotes_the_fake_nano_report(b4, capsys):
    report, error = run("nano-4gb-l4t32.6.1", b4, capsys)
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    assert report.strip() in readme and "error in doctor: " + error in readme


def test_doit_doctor_on_this_host_exits_zero(tmp_path):
    if jetson.is_jetson() or probe_gpu():
        pytest.skip("a device without artifacts: its doctor rightly reports the missing model.onnx")
    project = copy_project(str(tmp_path), with_artifacts=False)
    code, out = doit(project, "doctor")
    assert code == 0, out
    assert "doit doctor (" in out and "memory" in out and "doctor: " in out
