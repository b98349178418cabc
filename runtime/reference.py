"""CPU reference implementations of the three ops (preprocess, postprocess, overlay).

They are what the ONNX Runtime CPU backend runs and the oracles for the CUDA kernels.
Preprocess reproduces the HF image processor: Pillow's antialiased bilinear resize on uint8
(a horizontal then a vertical pass, 22-bit fixed-point weights, rounding to uint8 between
passes), then rescale and normalize. `resample_coeffs` computes Pillow's exact weights, which
the CUDA kernel also uses; `resize_fixed_point` replays Pillow's integer arithmetic in NumPy,
so the result does not depend on the Pillow installed on the device."""
import math

import cv2
import numpy as np

PRECISION_BITS = 32 - 8 - 2  # Pillow's fixed-point precision for 8-bit images


def resample_coeffs(in_size, out_size):
    """Pillow's bilinear (triangle) filter weights for one axis.

    Returns (bounds, weights): bounds is (out_size, 2) int32 of (first input index, tap count),
    weights is (out_size, ksize) int32 fixed-point, zero past each row's tap count."""
    scale = float(in_size) / out_size
    filterscale = max(scale, 1.0)
    support = 1.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    bounds = np.zeros((out_size, 2), np.int32)
    weights = np.zeros((out_size, ksize), np.int32)
    inv_filterscale = 1.0 / filterscale
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        xmin = max(int(center - support + 0.5), 0)
        xmax = min(int(center + support + 0.5), in_size) - xmin
        w = [max(0.0, 1.0 - abs((x + xmin - center + 0.5) * inv_filterscale)) for x in range(xmax)]
        total = sum(w)
        w = [v / total if total != 0.0 else v for v in w]
        weights[xx, :xmax] = [int(0.5 + v * (1 << PRECISION_BITS)) for v in w]
        bounds[xx] = (xmin, xmax)
    return bounds, weights


def _pass(src, bounds, weights, axis):
    """One fixed-point pass along `axis` (1: horizontal, 0: vertical) of an HxWxC uint8 image.
    Accumulates tap by tap in int32, which cannot overflow: 255 * 2**22 summed over weights that
    add up to 2**22 stays below 2**31."""
    n_in = src.shape[axis]
    shape = (1, -1, 1) if axis == 1 else (-1, 1, 1)
    acc = None
    for j in range(weights.shape[1]):
        taps = np.take(src, np.minimum(bounds[:, 0] + j, n_in - 1), axis=axis).astype(np.int32)
        term = taps * weights[:, j].astype(np.int32).reshape(shape)
        acc = term if acc is None else acc + term
    acc += 1 << (PRECISION_BITS - 1)
    acc >>= PRECISION_BITS
    return np.clip(acc, 0, 255).astype(np.uint8)


def horizontal_first(in_h, in_w, out_h, out_w, pass_order="pillow13"):
    """Which pass Pillow runs first. Pillow < 13 always runs the horizontal pass first; Pillow 13
    runs the vertical pass first when the height shrinks by more than twice what the width does."""
    if pass_order == "horizontal_first":
        return True
    return not (in_h - out_h > 0 and in_h - out_h > (in_w - out_w) * 2)


def resize_fixed_point(rgb, out_h, out_w, pass_order="pillow13"):
    """Pillow's bilinear resize of an HxWxC uint8 image, replayed bit-exactly in NumPy."""
    h, w = rgb.shape[:2]
    passes = [(1, w, out_w), (0, h, out_h)]
    if not horizontal_first(h, w, out_h, out_w, pass_order):
        passes.reverse()
    for axis, n_in, n_out in passes:
        if n_in != n_out:
            rgb = _pass(rgb, *resample_coeffs(n_in, n_out), axis=axis)
    return rgb


def preprocess(image_bgr, height, width, mean, std, scale=1.0 / 255, pass_order="pillow13",
               dtype=np.float32):
    """BGR uint8 HxWx3 -> normalized 1x3xHxW tensor, exactly as the HF image processor."""
    rgb = resize_fixed_point(np.ascontiguousarray(image_bgr[..., ::-1]), height, width, pass_order)
    x = rgb.astype(np.float32) * np.float32(scale)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None]).astype(dtype)


# Post-processing: logits (1x)Cxhxw -> uint8 mask at out_h x out_w, bilinear upsample
# (align_corners=False) then argmax over classes, the first maximum winning. Every float32
# operation is one correctly rounded multiply, add or subtract in a fixed order, the same as the
# CUDA kernel's (__fmul_rn/__fadd_rn, no fused multiply-add), so both give bit-identical masks.
#
# The early-out (`upsample_argmax`) is exact: the upsampled value of a class is a fixed expression
# of its four corner texels with non-negative weights, and correctly rounded products and sums are
# monotone, so if class k is >= class j at the four corners it is >= j at every pixel of the cell.
# Classes j > k then lose the tie to k; classes j < k must lose strictly, so their corner margin
# must exceed SAFE_REL * (largest |logit| at the corners), four times the worst rounding gap
# (about 8 units of 2**-24 relative). Cells failing that are computed in full.
SAFE_REL = 2.0 ** -19
SAFE_ABS = 2.0 ** -100  # covers products that underflow
SAFE_MAX = 2.0 ** 100  # larger (or non-finite) logits: no early-out, nothing can overflow


def source_coords(in_size, out_size):
    """Per output index: first and second source index and their float32 weights (w0, w1)."""
    scale = np.float32(in_size) / np.float32(out_size)
    s = (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5)
    s = np.maximum(s, np.float32(0.0))
    i0 = np.minimum(s.astype(np.int64), in_size - 1)
    i1 = np.minimum(i0 + 1, in_size - 1)
    w1 = s - i0.astype(np.float32)
    return i0, i1, np.float32(1.0) - w1, w1


def _hwc(logits):
    chw = np.asarray(logits).reshape(np.shape(logits)[-3:])
    return np.ascontiguousarray(chw.transpose(1, 2, 0), dtype=np.float32)


def _interpolate(hwc, y0, y1, wy0, wy1, xs):
    """Upsampled scores (rows, len(x0), C) for texel rows y0/y1 (per output row) and columns
    xs = (x0, x1, wx0, wx1), in the kernel's operation order."""
    x0, x1, wx0, wx1 = (a[:, None] for a in xs)
    top = wx0 * hwc[y0][:, x0[:, 0]] + wx1 * hwc[y0][:, x1[:, 0]]
    bottom = wx0 * hwc[y1][:, x0[:, 0]] + wx1 * hwc[y1][:, x1[:, 0]]
    return wy0[:, None, None] * top + wy1[:, None, None] * bottom


def upsample_argmax_full(logits, out_h, out_w):
    """Every class at every pixel: the oracle of the early-out (and of the CUDA kernels)."""
    hwc = _hwc(logits)
    ys, xs = source_coords(hwc.shape[0], out_h), source_coords(hwc.shape[1], out_w)
    mask = np.empty((out_h, out_w), np.uint8)
    step = max(1, 2 ** 21 // max(1, out_w * hwc.shape[2]))
    for a in range(0, out_h, step):
        rows = [c[a:a + step] for c in ys]
        mask[a:a + step] = _interpolate(hwc, *rows, xs=xs).argmax(axis=2)
    return mask


def texel_stats(chw):
    """Per texel: the winning class (first maximum), its margin over every lower class index,
    and the largest |logit| (NaN or inf make it SAFE_MAX)."""
    best = np.zeros(chw.shape[1:], np.int64)
    top, lower = chw[0].astype(np.float64), np.full(chw.shape[1:], -np.inf)
    big = np.abs(top)
    for k in range(1, chw.shape[0]):
        v = chw[k].astype(np.float64)
        better = v > top
        lower[better] = top[better]
        top[better], best[better] = v[better], k
        np.maximum(big, np.abs(v), out=big)
    big[~np.isfinite(chw).all(axis=0)] = SAFE_MAX
    return best, top - lower, big


def corners(a, nx, ny):
    """The four corners of each cell (y0, x0) of a per-texel array: (y0,x0) (y0,x1) (y1,x0) (y1,x1)."""
    return a[..., :, :], a[..., :, nx], a[..., ny, :], a[..., ny, :][..., nx]


def cell_map(chw):
    """(label, uniform) per cell (y0, x0) of the texel grid: uniform where the same class wins all
    four corners with a safe margin over every lower class index."""
    best, gap, big = texel_stats(chw)
    h, w = best.shape
    nx, ny = np.minimum(np.arange(w) + 1, w - 1), np.minimum(np.arange(h) + 1, h - 1)
    big_cell = np.maximum.reduce(corners(big, nx, ny))
    uniform = np.minimum.reduce(corners(gap, nx, ny)) > big_cell * SAFE_REL + SAFE_ABS
    uniform &= big_cell < SAFE_MAX
    b = corners(best, nx, ny)
    uniform &= (b[0] == b[1]) & (b[0] == b[2]) & (b[0] == b[3])
    return best.astype(np.uint8), uniform, big_cell


def candidates(chw, r, c, big):
    """Per cell (r, c): its corner logits (4 x cells x C) and the classes in the order to scan
    them, those that can win first (ascending), then those that cannot: a class whose largest
    corner value is below, by a safe margin, the smallest corner value of the class with the
    largest smallest corner value loses to it at every pixel of the cell."""
    h, w = chw.shape[1:]
    cs = [chw[:, r, c].T, chw[:, r, np.minimum(c + 1, w - 1)].T,
          chw[:, np.minimum(r + 1, h - 1), c].T, chw[:, np.minimum(r + 1, h - 1), np.minimum(c + 1, w - 1)].T]
    low, high = np.minimum.reduce(cs).astype(np.float64), np.maximum.reduce(cs)
    floor = low.max(axis=1) - (big * SAFE_REL + SAFE_ABS)
    can = (high >= floor[:, None]) | (big >= SAFE_MAX)[:, None]
    return cs, np.argsort(~can, axis=1, kind="stable"), can.sum(axis=1)


BUDGET = 1 << 20  # values computed per vectorized step of the early-out


def upsample_argmax(logits, out_h, out_w):
    """The early-out: uniform cells are filled with their class; in the others only the classes
    that can win are upsampled. Bit-identical to upsample_argmax_full (tests prove it)."""
    chw = np.ascontiguousarray(np.asarray(logits).reshape(np.shape(logits)[-3:]), dtype=np.float32)
    h, w = chw.shape[1:]
    label, uniform, big = cell_map(chw)
    ys, xs = source_coords(h, out_h), source_coords(w, out_w)
    counts = np.bincount(ys[0], minlength=h), np.bincount(xs[0], minlength=w)
    mask = np.repeat(np.repeat(label, counts[1], axis=1), counts[0], axis=0)
    r, c = np.nonzero(~uniform & (counts[0][:, None] > 0) & (counts[1][None, :] > 0))
    if len(r):
        cs, order, need = candidates(chw, r, c, big[r, c])
        starts = [np.cumsum(n) - n for n in counts]
        width = np.minimum(2 ** np.ceil(np.log2(np.maximum(need, 1))), len(chw)).astype(int)
        for k in np.unique(width):
            g = np.nonzero(width == k)[0]
            cells = (r[g], c[g], [v[g] for v in cs], order[g, :k])
            _fill_cells(mask, cells, ys, xs, starts, counts)
    return mask


def _fill_cells(mask, cells, ys, xs, starts, counts):
    """Upsample the listed classes of the listed cells and write their argmax into the mask,
    in blocks of rows x columns per cell (short cells repeat their last row/column)."""
    r, c, cs, cls = cells
    cls8 = cls.astype(np.uint8)
    span_x, k, rows = int(counts[1][c].max()), cls.shape[1], int(counts[0][r].max())
    span_y = max(1, min(rows, BUDGET // (k * span_x)))
    a, b, d, e = (np.take_along_axis(v, cls, 1)[:, :, None, None] for v in cs)
    X = starts[1][c][:, None] + np.minimum(np.arange(span_x), counts[1][c][:, None] - 1)
    wx0, wx1 = xs[2][X][:, None, None, :], xs[3][X][:, None, None, :]
    top, bottom = wx0 * a + wx1 * b, wx0 * d + wx1 * e
    step = max(1, BUDGET // (k * span_x * span_y))
    for y in range(0, rows, span_y):
        Y = starts[0][r][:, None] + np.minimum(y + np.arange(span_y), counts[0][r][:, None] - 1)
        for i in range(0, len(r), step):
            p = slice(i, i + step)
            v = ys[2][Y[p]][:, None, :, None] * top[p] + ys[3][Y[p]][:, None, :, None] * bottom[p]
            best, arg = v[:, 0], np.empty((len(v), span_y, span_x), np.uint8)
            arg[...] = cls8[p, 0, None, None]
            for j in range(1, k):
                better = v[:, j] > best
                np.copyto(best, v[:, j], where=better)
                np.copyto(arg, cls8[p, j, None, None], where=better)
            mask[Y[p][:, :, None], X[p][:, None, :]] = arg


def blend(image_bgr, mask, palette_bgr, alpha):
    """Colourize `mask` with the BGR lookup table and alpha-blend it over the image."""
    color = palette_bgr[mask].astype(np.float32)
    out = image_bgr.astype(np.float32) * (1.0 - alpha) + color * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
