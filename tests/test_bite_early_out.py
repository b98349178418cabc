"""The exact early-out (runtime.reference.upsample_argmax) against its oracle, the full
computation (upsample_argmax_full), bit for bit, on the inputs that sit on its conditions:
+inf and very large logits at a cell's four corners, exact ties, one-ulp near ties, and margins
equal to the safety threshold. The strict/non-strict comparisons these do not separate are argued
equivalent in docs/mutation.md ("early-out")."""
import warnings

import numpy as np
import pytest

from runtime import reference

F32_MAX = np.finfo(np.float32).max
SIZES = [(37, 41), (8, 10), (4, 5), (61, 29)]


def same_as_oracle(logits, h, w):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 0 * inf in the oracle, on purpose
        want = reference.upsample_argmax_full(logits, h, w)
        got = reference.upsample_argmax(logits, h, w)
    diff = np.argwhere(got != want)
    assert len(diff) == 0, "%d pixels differ from the oracle, first at %s" % (
        len(diff), diff[:3].tolist())
    return got


@pytest.mark.parametrize("h,w", SIZES)
def test_a_class_at_plus_inf_on_every_corner_is_not_a_uniform_cell(h, w):
    """+inf times a zero bilinear weight is NaN, and NaN never wins: the oracle gives class 0 on
    the pixels where a weight is 0, so a cell whose corners are all +inf for class 1 must not be
    filled with class 1 (the SAFE_MAX guard)."""
    logits = np.zeros((1, 3, 4, 5), np.float32)
    logits[0, 1] = np.inf
    mask = same_as_oracle(logits, h, w)
    if (h, w) != (4, 5):
        assert (mask == 0).any() and (mask == 1).any()  # both outcomes occur: the test can fail


@pytest.mark.parametrize("h,w", SIZES)
def test_plus_inf_on_one_block_of_corners_among_finite_logits(h, w):
    rng = np.random.RandomState(1)
    logits = rng.randn(1, 4, 6, 7).astype(np.float32)
    logits[0, 2, 1:3, 2:4] = np.inf  # the four corners of cell (1, 2)
    logits[0, 3, 4:6, 0:2] = np.inf  # and of cell (4, 0), a border cell
    same_as_oracle(logits, h, w)


@pytest.mark.parametrize("scale", [1e38, F32_MAX / 4, F32_MAX])
def test_very_large_logits_at_the_corners(scale):
    """Finite logits near the float32 limit: products and sums may round to inf."""
    rng = np.random.RandomState(2)
    logits = (np.sign(rng.randn(1, 4, 6, 7)) * np.float32(scale)).astype(np.float32)
    logits[0, 1, 2:4, 2:4] = F32_MAX  # a cell whose winner is the largest float32 everywhere
    logits[0, 0, 2:4, 2:4] = np.nextafter(F32_MAX, np.float32(0))  # one ulp below it
    for h, w in SIZES:
        same_as_oracle(logits, h, w)


@pytest.mark.parametrize("h,w", SIZES)
def test_exact_ties_at_every_corner_go_to_the_lowest_class(h, w):
    rng = np.random.RandomState(3)
    logits = rng.randn(1, 4, 5, 6).astype(np.float32)
    logits[0, 3] = logits[0, 1] = np.abs(logits[0, 1]) + 10  # 1 and 3 tie, above 0 and 2
    mask = same_as_oracle(logits, h, w)
    assert (mask == 1).all()


def one_ulp_pairs(shape, seed):
    """Class 0 at a, class 1 at a + one ulp at every texel: class 1 wins every corner, but the
    rounded upsampled values can tie, and a tie goes to class 0."""
    a = np.random.RandomState(seed).uniform(1, 2, shape).astype(np.float32)
    return np.stack([a, np.nextafter(a, np.float32(np.inf))])[None]


@pytest.mark.parametrize("h,w", SIZES)
def test_one_ulp_margins_are_computed_in_full(h, w):
    logits = one_ulp_pairs((6, 7), 4)
    mask = same_as_oracle(logits, h, w)
    if h > 8:
        assert (mask == 0).any() and (mask == 1).any()  # the rounding ties really happen


def logits_with_margin(margin_rel, seed=5):
    """Class 1 above class 0 by margin_rel * (largest |logit| at the corners) exactly."""
    big = np.float32(1.5)
    top = np.full((6, 7), big, np.float32)
    below = (np.float64(big) - np.float64(big) * margin_rel).astype(np.float32)
    assert float(big) - float(below) == float(big) * margin_rel  # representable exactly
    logits = np.stack([np.full((6, 7), below, np.float32), top])[None]
    return logits


@pytest.mark.parametrize("margin_rel", [2.0 ** -19, 2.0 ** -18, 2.0 ** -20, 2.0 ** -22])
def test_margins_at_and_around_the_threshold(margin_rel):
    logits = logits_with_margin(margin_rel)
    for h, w in SIZES:
        assert (same_as_oracle(logits, h, w) == 1).all()


def test_the_threshold_separates_uniform_cells_at_the_stated_margin():
    """Above SAFE_REL (relative) a cell is filled at once; at one ulp it is computed in full."""
    _, uniform, _ = reference.cell_map(logits_with_margin(2.0 ** -16)[0])
    assert uniform.all()
    _, uniform, _ = reference.cell_map(one_ulp_pairs((6, 7), 4)[0])
    assert not uniform.any()
    _, uniform, _ = reference.cell_map(np.where(np.isfinite(logits_with_margin(2.0 ** -16)),
                                                np.float32(np.inf), 0)[0])
    assert not uniform.any()  # non-finite corners: never uniform
