"""The early-out post-processing (runtime.reference.upsample_argmax) gives bit-identical masks to
the full computation (upsample_argmax_full, every class at every pixel) on golden, adversarial
and random logits. CPU only: runs in CI. The CUDA kernels are held to the same oracle in
tests/test_gpu_kernels.py."""
import json
import os

import numpy as np
import pytest

from runtime import reference


def assert_exact(logits, h, w):
    want = reference.upsample_argmax_full(logits, h, w)
    got = reference.upsample_argmax(logits, h, w)
    assert got.shape == (h, w) and got.dtype == np.uint8
    diff = np.argwhere(got != want)
    assert len(diff) == 0, "%d pixels differ, first at %s" % (len(diff), diff[:3].tolist())
    return got


def smooth(rng, classes, h, w, blobs=9, gain=4.0):
    import cv2
    small = rng.randn(classes, blobs, blobs).astype(np.float32) * gain
    return np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_CUBIC) for c in small])[None]


def test_golden_logits(built_project):
    with open(os.path.join(built_project, "artifacts", "golden", "golden.json")) as f:
        records = json.load(f)["images"]
    assert records
    for rec in records:
        logits = np.load(os.path.join(built_project, rec["dir"], "logits.npy"))
        assert_exact(logits, rec["height"], rec["width"])
        assert_exact(logits.astype(np.float16).astype(np.float32), rec["height"], rec["width"])


@pytest.mark.parametrize("hw",
                         [(1080, 1920), (479, 641), (1, 1), (300, 7), (7, 300), (129, 127), (2, 3)])
@pytest.mark.parametrize("seed", [0, 1])
def test_smooth_random_logits_at_odd_sizes(hw, seed):
    rng = np.random.RandomState(seed * 1000 + hw[0])
    assert_exact(smooth(rng, 35, 128, 128), *hw)


def test_4096x2160_output():
    assert_exact(smooth(np.random.RandomState(3), 35, 128, 128), 2160, 4096)


@pytest.mark.parametrize("shape",
                         [(35, 97, 61), (3, 2, 2), (1, 5, 5), (2, 1, 1), (35, 1, 9), (200, 16, 16)])
def test_odd_logit_shapes_and_scales(shape):
    rng = np.random.RandomState(sum(shape))
    logits = rng.randn(1, *shape).astype(np.float32)
    for hw in ((1080, 1920), (33, 17), (1, 1), (shape[1], shape[2]),
               (shape[1] * 3 + 1, shape[2] * 2 + 1)):
        assert_exact(logits, *hw)


def test_iid_random_logits_where_almost_no_cell_is_uniform():
    logits = np.random.RandomState(7).randn(1, 35, 64, 64).astype(np.float32)
    _, uniform, _ = reference.cell_map(logits[0])
    assert uniform.mean() < 0.2
    assert_exact(logits, 720, 1280)


def test_exact_ties_go_to_the_lowest_class():
    rng = np.random.RandomState(11)
    logits = smooth(rng, 8, 32, 32)
    logits[0, 5] = logits[0, 2]  # class 5 ties class 2 everywhere: 5 must never win
    logits[0, 6] = logits[0, 7]  # class 6 ties class 7 everywhere: 7 must never win
    mask = assert_exact(logits, 333, 517)
    assert not np.isin(mask, [5, 7]).any()
    assert_exact(np.zeros((1, 4, 8, 8), np.float32), 50, 50)  # all classes tie: class 0
    assert not assert_exact(np.zeros((1, 4, 8, 8), np.float32), 50, 50).any()


def test_quantized_logits_with_many_exact_ties():
    logits = np.random.RandomState(12).randint(-2, 3, (1, 6, 40, 40)).astype(np.float32)
    assert_exact(logits, 401, 399)


def test_near_ties_one_ulp_apart():
    """A lower class one ulp below the winner at every corner: the margin test must send these
    cells to the full computation, where rounding can make the lower class tie and win."""
    rng = np.random.RandomState(13)
    logits = smooth(rng, 6, 24, 24)
    win = logits[0].argmax(axis=0)
    top = np.take_along_axis(logits[0], win[None], 0)[0]
    for k in range(6):
        below = np.nextafter(top, -np.inf).astype(np.float32)
        logits[0, k] = np.where(win > k, below, logits[0, k])
    assert_exact(logits, 517, 333)
    assert_exact(logits * np.float32(1e30), 100, 100)
    assert_exact(logits * np.float32(1e-38), 100, 100)  # subnormal products


def test_one_pixel_regions():
    logits = np.zeros((1, 3, 16, 16), np.float32)
    logits[0, 1, 7, 9] = 1.0  # one texel of class 1
    logits[0, 2, 3, 3] = 1e-6  # a faint one of class 2
    for hw in ((16, 16), (17, 15), (160, 160), (1, 1), (5, 5)):
        assert_exact(logits, *hw)
    assert (assert_exact(logits, 16, 16) == 1).sum() == 1


def test_non_finite_logits():
    logits = smooth(np.random.RandomState(14), 5, 16, 16)
    logits[0, 1, 4, 4], logits[0, 2, 9, 9], logits[0, 0, 12, 3] = np.nan, np.inf, -np.inf
    logits[0, :, 0, 0] = np.nan
    assert_exact(logits, 100, 120)


def test_cell_map_skips_most_of_a_smooth_scene():
    """The point of the early-out: on smooth logits most cells need no per-pixel work."""
    logits = smooth(np.random.RandomState(15), 35, 128, 128, blobs=6, gain=6.0)
    _, uniform, _ = reference.cell_map(logits[0])
    assert uniform.mean() > 0.6


def test_full_computation_is_the_bilinear_argmax():
    """The oracle itself: within rounding of a float64 bilinear upsample (ties aside)."""
    logits = smooth(np.random.RandomState(16), 7, 20, 30)
    h, w = 77, 123
    ys, xs = reference.source_coords(20, h), reference.source_coords(30, w)
    chw = logits[0].astype(np.float64)
    up = (chw[:, ys[0]][:, :, xs[0]] * ys[2][:, None] * xs[2] + chw[:, ys[0]][:, :, xs[1]]
          * ys[2][:, None] * xs[3]
          + chw[:, ys[1]][:, :, xs[0]] * ys[3][:, None] * xs[2] + chw[:, ys[1]][:, :, xs[1]]
          * ys[3][:, None] * xs[3])
    got = reference.upsample_argmax_full(logits, h, w)
    gap = up.max(axis=0) - np.take_along_axis(up, got[None].astype(int), 0)[0]
    assert gap.max() < 1e-5
    assert np.mean(got == up.argmax(axis=0)) > 0.999


def test_source_coords_follow_align_corners_false():
    i0, i1, w0, w1 = reference.source_coords(4, 8)
    assert i0.tolist() == [0, 0, 0, 1, 1, 2, 2, 3] and i1.tolist() == [1, 1, 1, 2, 2, 3, 3, 3]
    assert np.allclose(w1, [0, 0.25, 0.75, 0.25, 0.75, 0.25, 0.75, 0.25])
    assert np.allclose(w0 + w1, 1)
