"""GPU correctness of the CUDA kernels against the CPU reference ops (marker `gpu`; run on the
GPU test machine). Also the full GPU runtime through the TensorRT double with real pycuda
buffers. Their host-side preparation (the cases, the tile choices, the runtime script's imports)
is checked without a GPU by the unmarked tests here; the kernels' compile for the Jetson GPUs is
tools/kernel_gate.py's (tests/test_kernel_gate.py)."""
import os

import numpy as np
import pytest

from runtime import palette as pal
from runtime import reference

SIZES = [(1080, 1920), (479, 641), (1, 1), (2160, 4096), (1280, 720), (300, 7)]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory):
    from runtime.cuda_ops import Kernels, arch
    from stages.device.runtime_check import compile_kernels
    folder = str(tmp_path_factory.mktemp("cubins"))
    compile_kernels(folder, arch())
    return Kernels(folder)


def meta(in_hw=(512, 512), logits_shape=(1, 35, 128, 128), pass_order="pillow13"):
    return {"input": {"shape": [1, 3, in_hw[0], in_hw[1]]}, "output": {"shape": list(logits_shape)},
            "palette": pal.palette_rgb(logits_shape[1]),
            "preprocess": {"scale": 1 / 255.0, "mean": MEAN, "std": STD, "pass_order": pass_order}}


def smooth_logits(rng, shape, dtype=np.float32):
    import cv2
    small = rng.randn(shape[1], 9, 9).astype(np.float32) * 4
    return np.stack([cv2.resize(c, (shape[3], shape[2]), interpolation=cv2.INTER_CUBIC)
                     for c in small])[None].astype(dtype)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("pass_order", ["pillow13", "horizontal_first"])
@pytest.mark.gpu
def test_preprocess_matches_cpu_reference(kernels, hw, pass_order):
    from runtime.gpu_pipeline import GpuPipeline
    rng = np.random.RandomState(hw[0] * 7 + hw[1])
    image = rng.randint(0, 256, hw + (3,)).astype(np.uint8)
    gpu = GpuPipeline(kernels, meta(pass_order=pass_order))
    gpu.upload(image)
    gpu.preprocess()
    got = gpu.download_input()
    want = reference.preprocess(image, 512, 512, MEAN, STD, 1 / 255.0, pass_order)
    err = np.abs(got - want).max()
    print("preprocess %dx%d %s: max abs %.3g" % (hw[1], hw[0], pass_order, err))
    assert err <= 1e-3


@pytest.mark.gpu
def test_preprocess_fp16_input_buffer(kernels):
    from runtime.gpu_pipeline import GpuPipeline
    image = np.random.RandomState(1).randint(0, 256, (479, 641, 3)).astype(np.uint8)
    gpu = GpuPipeline(kernels, meta(), input_dtype=np.float16)
    gpu.upload(image)
    gpu.preprocess()
    want = reference.preprocess(image, 512, 512, MEAN, STD).astype(np.float16)
    assert np.abs(gpu.download_input().astype(np.float32) - want.astype(np.float32)).max() <= 2e-3


def gpu_masks(kernels, logits, hw, dtype, tiles=None):
    """(early-out mask, full mask) from the CUDA kernels (the early-out with only `tiles`'
    shapes allowed where given: () for the per-pixel early-out)."""
    from runtime.cuda_ops import TILES
    from runtime.gpu_pipeline import GpuPipeline
    gpu = GpuPipeline(kernels, meta(logits_shape=logits.shape), output_dtype=dtype,
                      tiles=TILES if tiles is None else tiles)
    gpu.upload(np.zeros(hw + (3,), np.uint8))
    gpu.upload_logits(logits)
    gpu.postprocess(early=False)
    full = gpu.download_mask()
    gpu.postprocess()
    return gpu.download_mask(), full


def assert_bit_identical(kernels, logits, hw, dtype, name, tiles=None):
    """Both kernels give exactly the CPU oracle's mask (for fp16: of the fp16 values)."""
    early, full = gpu_masks(kernels, logits, hw, dtype, tiles)
    want = reference.upsample_argmax_full(logits.astype(dtype).astype(np.float32), *hw)
    print("postprocess %s %dx%d %s: early %d, full %d pixels differ from the CPU oracle" % (
        name, hw[1], hw[0], np.dtype(dtype).name, int(np.sum(early != want)),
        int(np.sum(full != want))))
    assert np.array_equal(full, want) and np.array_equal(early, want)


@pytest.mark.parametrize("hw", SIZES)
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.gpu
def test_postprocess_bit_identical_to_cpu_oracle(kernels, hw, dtype):
    logits = smooth_logits(np.random.RandomState(hw[0] + hw[1]), (1, 35, 128, 128))
    assert_bit_identical(kernels, logits, hw, dtype, "smooth")


def adversarial_cases():
    rng = np.random.RandomState(21)
    ties = smooth_logits(rng, (1, 8, 32, 32))
    ties[0, 5], ties[0, 6] = ties[0, 2], ties[0, 7]
    near = smooth_logits(rng, (1, 6, 24, 24))
    top = near[0].max(axis=0)
    for k in range(6):
        near[0, k] = np.where(near[0].argmax(axis=0) > k, np.nextafter(top, -np.inf), near[0, k])
    dots = np.zeros((1, 3, 16, 16), np.float32)
    dots[0, 1, 7, 9], dots[0, 2, 3, 3] = 1.0, 1e-3
    bad = smooth_logits(rng, (1, 5, 16, 16))
    bad[0, 1, 4, 4], bad[0, 2, 9, 9], bad[0, :, 0, 0] = np.nan, np.inf, np.nan
    return [("ties", ties, (333, 517)), ("near-ties", near, (517, 333)),
            ("near-ties-1e30", near * 1e30, (100, 100)),
            ("one-texel", dots, (160, 160)), ("one-texel-down", dots, (5, 5)),
            ("non-finite", bad, (100, 120)),
            ("quantized", rng.randint(-2, 3, (1, 6, 40, 40)).astype(np.float32), (401, 399)),
            ("iid", rng.randn(1, 35, 64, 64).astype(np.float32), (720, 1280)),
            ("odd-shape", rng.randn(1, 35, 97, 61).astype(np.float32), (1080, 1920)),
            ("2x2-to-4k", rng.randn(1, 3, 2, 2).astype(np.float32), (2160, 4096)),
            ("all-equal", np.zeros((1, 4, 8, 8), np.float32), (50, 50))]


@pytest.mark.parametrize("case", range(11))
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.gpu
def test_postprocess_adversarial_bit_identical(kernels, case, dtype):
    name, logits, hw = adversarial_cases()[case]
    with np.errstate(over="ignore", invalid="ignore"):
        assert_bit_identical(kernels, logits, hw, dtype, name)


@pytest.mark.parametrize("tiles", [(), ((128, 8),), ((32, 4),), ((64, 2),), ((32, 1),)])
@pytest.mark.parametrize("case", [0, 1, 5, 7, 8])
@pytest.mark.gpu
def test_postprocess_every_early_out_path_bit_identical(kernels, tiles, case):
    """The per-pixel early-out (no tiles) and other tile shapes than the one chosen for speed
    (tiles end mid-cell and at odd offsets, and part of a warp runs past the frame's edge)."""
    from runtime.cuda_ops import choose_tile
    name, logits, hw = adversarial_cases()[case]
    chosen = choose_tile(logits.shape[1], logits.shape[2], logits.shape[3], hw[0], hw[1], tiles)
    assert (chosen is None) == (tiles == ())
    for dtype in (np.float32, np.float16):
        with np.errstate(over="ignore", invalid="ignore"):
            assert_bit_identical(kernels, logits, hw, dtype, "%s tiles %s" % (name, tiles), tiles)


@pytest.mark.gpu
def test_postprocess_golden_logits_bit_identical(kernels):
    import glob
    from conftest import ROOT
    found = sorted(glob.glob(os.path.join(ROOT, "artifacts", "golden", "*", "logits.npy")))
    if not found:
        pytest.skip("needs the host's artifacts (carry artifacts/ to the GPU machine)")
    for path in found:
        logits = np.load(path)
        for hw in ((1080, 1920), (479, 641), (1280, 720)):
            for dtype in (np.float32, np.float16):
                assert_bit_identical(kernels, logits, hw, dtype,
                                     os.path.basename(os.path.dirname(path)))


@pytest.mark.gpu
def test_postprocess_timing_early_vs_full(kernels):
    """1080p, 35x128x128 logits: the early-out against the full kernel, in the same run."""
    from runtime import benchmarks
    from runtime.gpu_pipeline import GpuPipeline
    logits = smooth_logits(np.random.RandomState(0), (1, 35, 128, 128))
    gpu = GpuPipeline(kernels, meta())
    gpu.upload(np.zeros((1080, 1920, 3), np.uint8))
    gpu.upload_logits(logits)
    res = benchmarks.gpu_post(gpu)
    print("postprocess timing 1080p: full p50 %.1f us, early p50 %.1f us (%.2fx, %s), identical "
          "%s, host enqueue %.1f us per call, GPU-bound %.2f" % (
              1000 * res["full_ms"]["p50"], 1000 * res["early_ms"]["p50"], res["speedup"],
              res["early_kernel"], res["identical"], 1000 * res["early_host_ms"]["p50"],
              res["gpu_bound"]))
    assert res["identical"] and res["early_ms"]["p50"] < res["full_ms"]["p50"]
    assert res["early_kernel"] == "tiles of 256x16 pixels"


@pytest.mark.gpu
def test_postprocess_differences_from_torch_are_near_ties(kernels):
    """Where the mask differs from PyTorch's float64 upsample + argmax, the scores tie to
    rounding."""
    import torch
    logits = smooth_logits(np.random.RandomState(5), (1, 35, 128, 128))
    got, _ = gpu_masks(kernels, logits, (1080, 1920), np.float32)
    up = torch.nn.functional.interpolate(torch.from_numpy(logits).double(), size=(1080, 1920),
                                         mode="bilinear", align_corners=False)[0].numpy()
    ys, xs = np.nonzero(got != up.argmax(axis=0))
    gaps = np.abs(up[got[ys, xs], ys, xs] - up.max(axis=0)[ys, xs])
    print("postprocess vs torch: %d differing pixels, largest score gap %.3g" % (
        len(ys), gaps.max() if len(ys) else 0))
    assert len(ys) == 0 or gaps.max() < 1e-4


@pytest.mark.parametrize("hw", [(1080, 1920), (479, 641), (1, 1)])
@pytest.mark.gpu
def test_overlay_within_one_level(kernels, hw):
    from runtime.gpu_pipeline import GpuPipeline
    rng = np.random.RandomState(3)
    image = rng.randint(0, 256, hw + (3,)).astype(np.uint8)
    logits = smooth_logits(rng, (1, 35, 128, 128))
    gpu = GpuPipeline(kernels, meta())
    gpu.upload(image)
    gpu.upload_logits(logits)
    gpu.postprocess()
    mask = gpu.download_mask()
    got = gpu.overlay(0.4)
    want = reference.blend(image, mask, pal.bgr_table(pal.palette_rgb(35)), 0.4)
    assert np.abs(got.astype(int) - want).max() <= 1


@pytest.mark.gpu
def test_buffers_are_reused_until_the_frame_size_changes(kernels):
    from runtime.gpu_pipeline import GpuPipeline
    gpu = GpuPipeline(kernels, meta())
    gpu.upload(np.zeros((100, 200, 3), np.uint8))
    first = gpu.frame
    gpu.upload(np.ones((100, 200, 3), np.uint8))
    assert gpu.frame is first
    gpu.upload(np.ones((101, 200, 3), np.uint8))
    assert gpu.frame is not first


def runtime_script(artifacts, kernels_folder):
    """The program test_gpu_runtime_through_tensorrt_double runs in a child Python."""
    from conftest import ROOT
    return (
        "import sys, json; sys.path.insert(0, %r)\nfrom stages.common.config import load\n"
        "from stages.common.layout import Layout\nfrom stages.device import engine\n"
        "from stages.common import files\nfrom stages.device.select import open_runtime\n"
        "from runtime.images import read_image\nfrom runtime.golden import load_case\n"
        "cfg = load(); cfg['artifacts'] = %r; L = Layout(cfg)\n"
        "import shutil; shutil.copytree(%r, L.onnx_dir); shutil.copytree(%r, L.golden_dir)\n"
        "engine.run_build(cfg, L)\nfrom runtime.cuda_ops import Kernels\n"
        "seg = open_runtime(L, 'tensorrt', pre_post='cpu')\n"
        "from runtime.segmenter import Segmenter\nseg = Segmenter(seg.backend, Kernels(%r))\n"
        "rec = files.read_json(L.golden_json)['images'][0]\n"
        "mask = seg.segment(read_image(rec['source'])).mask\n"
        "print('AGREE', (mask == load_case(rec)[2]).mean(), seg.backend.describe()['api'])\n"
    ) % (ROOT, artifacts, os.path.join(ROOT, "artifacts", "onnx"),
         os.path.join(ROOT, "artifacts", "golden"), kernels_folder)


def test_runtime_script_imports_resolve_on_the_host():
    """Every name the GPU runtime test's script imports exists (a rename cannot hide until the
    next GPU run)."""
    import importlib.util
    import re
    script = runtime_script("/nonexistent/artifacts", "/nonexistent/cubins")
    compile(script, "runtime_script", "exec")
    imports = re.findall(r"from ([\w.]+) import (\w+)", script)
    assert len(imports) >= 9
    for module, name in imports:
        found = (hasattr(importlib.import_module(module), name)
                 or importlib.util.find_spec(module + "." + name) is not None)
        assert found, (module, name)


def test_cases_and_tile_choices_prepare_on_the_host():
    """The adversarial cases build, and each tile list the early-out test passes gives a tile
    exactly when it is not empty."""
    from runtime.cuda_ops import choose_tile
    cases = adversarial_cases()
    assert len(cases) == 11 and len(set(c[0] for c in cases)) == 11
    for tiles in [(), ((128, 8),), ((32, 4),), ((64, 2),), ((32, 1),)]:
        for case in [0, 1, 5, 7, 8]:
            _, logits, hw = cases[case]
            chosen = choose_tile(logits.shape[1], logits.shape[2], logits.shape[3], hw[0], hw[1],
                                 tiles)
            assert (chosen is None) == (tiles == ()), (case, tiles)


@pytest.mark.parametrize("api", ["8.2", "10"])
@pytest.mark.gpu
def test_gpu_runtime_through_tensorrt_double(kernels, api, tmp_path, monkeypatch):
    """Real kernels + real pycuda buffers + the TensorRT double (ONNX Runtime inside) vs golden."""
    import subprocess
    import sys
    from conftest import ROOT, TRT_DOUBLE
    if not os.path.isfile(os.path.join(ROOT, "artifacts", "onnx", "model.onnx")):
        pytest.skip("needs the host's artifacts (carry artifacts/ to the GPU machine)")
    script = runtime_script(str(tmp_path / "artifacts"), kernels.folder)
    env = dict(os.environ, TRT_DOUBLE_API=api,
               PYTHONPATH=os.pathsep.join([TRT_DOUBLE, os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, universal_newlines=True).stdout
    print(out[-600:])
    agree = float(out.split("AGREE")[1].split()[0])
    assert agree >= 0.999
