"""CPU reference implementations of the three ops (preprocess, postprocess, overlay).

They are what the ONNX Runtime CPU backend runs and the oracles for the CUDA kernels.
Preprocess reproduces the HF image processor: Pillow's antialiased bilinear resize on uint8
(a horizontal then a vertical pass, 22-bit fixed-point weights, rounding to uint8 between
passes), then rescale and normalize. `resample_coeffs` computes Pillow's exact weights, which
the CUDA kernel also uses; `resize_fixed_point` replays Pillow's integer arithmetic in NumPy,
so the result does not depend on the Pillow installed on the device."""
import math

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
        mask[a:a + step] = first_max(_interpolate(hwc, *rows, xs=xs))
    return mask


def first_max(scores):
    """Argmax over the last axis as the kernel loop takes it: the first strictly larger value
    wins, starting from -inf at class 0 (so ties go to the lowest class and NaN never wins)."""
    best = np.full(scores.shape[:-1], -np.inf, np.float32)
    arg = np.zeros(scores.shape[:-1], np.uint8)
    for k in range(scores.shape[-1]):
        better = scores[..., k] > best
        best[better], arg[better] = scores[..., k][better], k
    return arg


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
    """The four corners of each cell (y0, x0) of a per-texel array: (y0,x0) (y0,x1) (y1,x0)
    (y1,x1)."""
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


def candidates(hwc, r, c, big):
    """Per cell (r, c): its corner logits (4 x cells x C) and which classes can win in it: a
    class whose largest corner value is below, by a safe margin, the smallest corner value of the
    class with the largest smallest corner value loses to that class at every pixel of the cell."""
    h, w = hwc.shape[:2]
    r1, c1 = np.minimum(r + 1, h - 1), np.minimum(c + 1, w - 1)
    cs = [hwc[r, c], hwc[r, c1], hwc[r1, c], hwc[r1, c1]]
    low, high = np.minimum(np.minimum(cs[0], cs[1]), np.minimum(cs[2], cs[3])), np.maximum(
        np.maximum(cs[0], cs[1]), np.maximum(cs[2], cs[3]))
    floor = low.max(axis=1).astype(np.float64) - (big * SAFE_REL + SAFE_ABS)
    return cs, (high >= floor[:, None]) | (big >= SAFE_MAX)[:, None]


BUDGET = 1 << 18  # values computed per vectorized step of the early-out (fits in cache)
TILE = 4096  # pixels per tile at most


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
        cs, can = candidates(np.ascontiguousarray(chw.transpose(1, 2, 0)), r, c, big[r, c])
        need = can.sum(axis=1)
        starts = [np.cumsum(n) - n for n in counts]
        cells = (starts[0][r], counts[0][r], starts[1][c], counts[1][c])
        cell, Y, X = tiles(cells,
                           *[int(max(1, n[1:-1].max() if len(n) > 2 else n.max())) for n in counts])
        work = Workspace(BUDGET)
        for k in np.unique(need):
            t = np.nonzero(need[cell] == k)[0]
            per = max(1, BUDGET // (k * Y.shape[0] * X.shape[0]))
            for p in (t[i:i + per] for i in range(0, len(t), per)):
                cls = np.nonzero(can[cell[p]])[1].reshape(len(p), k).T  # ascending per tile
                corner = [v[cell[p]] for v in cs]
                _fill_tiles(mask, cls, corner, (Y[:, p], X[:, p]), (ys, xs), work)
    return mask


class Workspace(object):
    """Buffers reused across the early-out's steps (fresh large temporaries cost page faults)."""

    def __init__(self, size):
        self.f = [np.empty(size, np.float32) for _ in range(3)]
        self.better, self.label, self.index = (np.empty(size, bool), np.empty(size, np.uint8),
                                               np.empty(size, np.intp))

    def get(self, name, shape, i=0):
        buf, n = getattr(self, name) if name != "f" else self.f[i], int(np.prod(shape))
        if n > len(buf):  # one tile of many classes
            buf = np.empty(n, buf.dtype)
        return buf[:n].reshape(shape)


def tiles(cells, ty, tx):
    """Cover each cell's pixel block (row start, rows, column start, columns) with tiles of
    ty x tx pixels (rows/columns past the block repeat its last one): (cell, Y, X) per tile."""
    tx = min(tx, TILE)
    ty = min(ty, max(1, TILE // tx))
    y0, rows, x0, cols = cells
    ny, nx = -(-rows // ty), -(-cols // tx)
    cell = np.repeat(np.arange(len(y0)), ny * nx)
    local = np.arange(len(cell)) - np.repeat(np.cumsum(ny * nx) - ny * nx, ny * nx)
    iy, ix = local // nx[cell], local % nx[cell]
    Y = y0[cell] + np.minimum(iy * ty + np.arange(ty)[:, None], rows[cell] - 1)
    X = x0[cell] + np.minimum(ix * tx + np.arange(tx)[:, None], cols[cell] - 1)
    return cell, Y, X


def _fill_tiles(mask, cls, corner, pixels, coords, work):
    """Upsample classes cls (k x tiles) at the tiles' pixels (rows Y, columns X: n x tiles)
    and write their argmax into the mask; vectorized with the tiles innermost."""
    (Y, X), (ys, xs) = pixels, coords
    a, b, d, e = (np.take_along_axis(v.T, cls, 0)[:, None, :] for v in corner)
    top, bottom = xs[2][X] * a + xs[3][X] * b, xs[2][X] * d + xs[3][X] * e  # k x tx x tiles
    shape = (len(cls), len(Y), len(X), Y.shape[1])
    v, tmp, best = work.get("f", shape, 0), work.get("f", shape, 1), work.get("f", shape[1:], 2)
    np.multiply(ys[2][Y][None, :, None], top[:, None], out=v)
    np.multiply(ys[3][Y][None, :, None], bottom[:, None], out=tmp)
    np.add(v, tmp, out=v)
    better, label = work.get("better", shape[1:]), work.get("label", shape[1:])
    best.fill(-np.inf)
    # all NaN: the first candidate, class 0 (all are candidates)
    label[...] = cls[0].astype(np.uint8)
    for j in range(len(cls)):
        np.greater(v[j], best, out=better)
        np.copyto(best, v[j], where=better)
        np.copyto(label, cls[j].astype(np.uint8), where=better)
    index = work.get("index", shape[1:])
    np.multiply(Y[:, None, :], mask.shape[1], out=index)
    np.add(index, X[None], out=index)
    mask.reshape(-1)[index] = label


def blend(image_bgr, mask, palette_bgr, alpha):
    """Colourize `mask` with the BGR lookup table and alpha-blend it over the image."""
    color = palette_bgr[mask].astype(np.float32)
    out = image_bgr.astype(np.float32) * (1.0 - alpha) + color * alpha
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
