// postprocess: logits C x h x w (fp32 or fp16) -> uint8 mask H x W at the original size.
//
// Each output pixel upsamples every class bilinearly (align_corners=False, PyTorch's source
// index rule) and keeps the argmax (the first maximum wins, like torch.argmax), so the
// full-resolution logits never exist in memory. Every float operation is an explicitly rounded
// __fmul_rn/__fadd_rn/__fsub_rn (no contraction into FMA), in the order of the CPU reference
// (runtime/reference.py), so the masks are bit-identical to it.
//
// - upsample_argmax_*: every class at every pixel (the oracle).
// - upsample_argmax_tiles_*: the early-out, one launch. A cell is the square of four texels
//   (y0,x0)..(y1,x1) that an output pixel interpolates from. Where the same class k wins at all
//   four corners, with a margin over every lower class index larger than the worst rounding gap,
//   k wins at every pixel of the cell (rounded products and sums are monotone), so those pixels
//   take k without touching the logits. In the other cells a class whose largest corner value is
//   below, by that margin, the largest smallest-corner value of any class loses at every pixel:
//   only the remaining candidates are interpolated (one candidate: it is the cell's class).
//   Each block copies the texel window of its output tile into shared memory first.
// - cell_labels_* then upsample_argmax_early_*: the same early-out (uniform cells only), one
//   thread per pixel, for frames whose tiles' texel windows do not fit in shared memory (a
//   strong downscale).
#include <cuda_fp16.h>

#ifndef INFINITY  // nvcc takes it from the host's math.h; NVRTC (tools/kernel_gate.py) has none
#define INFINITY __int_as_float(0x7f800000)
#endif

#define SAFE_REL 1.9073486328125e-06f  // 2^-19: four times the worst rounding gap, relative
#define SAFE_ABS 7.888609052210118e-31f  // 2^-100: covers products that underflow
#define SAFE_MAX 1.2676506002282294e+30f  // 2^100: larger or non-finite logits get no early-out
#define MIXED 255  // cell label: compute every class

__device__ __forceinline__ float load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, size_t i) { return __half2float(p[i]); }

// The source texels (i0, i1) and weights (w0, w1) of output index dst; scale = in / out.
__device__ __forceinline__ void source_at(int dst, float scale, int in_size, int& i0, int& i1,
                                          float& w0, float& w1) {
    float s = __fsub_rn(__fmul_rn(__fadd_rn((float)dst, 0.5f), scale), 0.5f);
    if (s < 0.f) s = 0.f;
    i0 = (int)s;
    if (i0 > in_size - 1) i0 = in_size - 1;
    i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
    w1 = __fsub_rn(s, (float)i0);
    w0 = __fsub_rn(1.f, w1);
}

__device__ __forceinline__ float scale_of(int in_size, int out_size) {
    return __fdiv_rn((float)in_size, (float)out_size);
}

__device__ __forceinline__ void source_index(int dst, int in_size, int out_size, int& i0, int& i1,
                                             float& w0, float& w1) {
    source_at(dst, scale_of(in_size, out_size), in_size, i0, i1, w0, w1);
}

__device__ __forceinline__ float lerp2(float w0, float a, float w1, float b) {
    return __fadd_rn(__fmul_rn(w0, a), __fmul_rn(w1, b));
}

template <typename T>
__device__ __forceinline__ int all_classes(const T* __restrict__ logits, int classes, size_t plane,
                                           size_t a, size_t b, size_t c, size_t d,
                                           float wx0, float wx1, float wy0, float wy1) {
    float best = -INFINITY;
    int arg = 0;
    for (int k = 0; k < classes; ++k) {
        const T* p = logits + k * plane;
        float top = lerp2(wx0, load(p, a), wx1, load(p, b));
        float bottom = lerp2(wx0, load(p, c), wx1, load(p, d));
        float v = lerp2(wy0, top, wy1, bottom);
        if (v > best) { best = v; arg = k; }
    }
    return arg;
}

template <typename T>
__device__ void upsample_argmax(const T* __restrict__ logits, int classes, int h, int w,
                                const unsigned char* __restrict__ cells,
                                unsigned char* __restrict__ mask, int out_h, int out_w) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;
    int x0, x1, y0, y1;
    float wx0, wx1, wy0, wy1;
    source_index(x, w, out_w, x0, x1, wx0, wx1);
    source_index(y, h, out_h, y0, y1, wy0, wy1);
    int label = cells ? cells[(size_t)y0 * w + x0] : MIXED;
    if (label == MIXED) {
        size_t r0 = (size_t)y0 * w, r1 = (size_t)y1 * w;
        label = all_classes(logits, classes, (size_t)h * w, r0 + x0, r0 + x1, r1 + x0, r1 + x1,
                            wx0, wx1, wy0, wy1);
    }
    mask[(size_t)y * out_w + x] = (unsigned char)label;
}

// One thread per cell (y0, x0): the winner at each corner (first maximum), its margin over the
// lower classes, and the largest |logit|; the cell's class where it is safe, else MIXED.
template <typename T>
__device__ void cell_labels(const T* __restrict__ logits, int classes, int h, int w,
                            unsigned char* __restrict__ cells) {
    int x0 = blockIdx.x * blockDim.x + threadIdx.x;
    int y0 = blockIdx.y * blockDim.y + threadIdx.y;
    if (x0 >= w || y0 >= h) return;
    int x1 = x0 + (x0 < w - 1 ? 1 : 0), y1 = y0 + (y0 < h - 1 ? 1 : 0);
    size_t at[4] = {(size_t)y0 * w + x0, (size_t)y0 * w + x1,
                    (size_t)y1 * w + x0, (size_t)y1 * w + x1};
    size_t plane = (size_t)h * w;
    float best[4], lower[4], big = 0.f;
    int arg[4];
    bool finite = true;
    for (int i = 0; i < 4; ++i) { best[i] = -INFINITY; lower[i] = -INFINITY; arg[i] = 0; }
    for (int k = 0; k < classes; ++k) {
        for (int i = 0; i < 4; ++i) {
            float v = load(logits + k * plane, at[i]);
            finite = finite && fabsf(v) < SAFE_MAX;  // false for NaN and inf too
            big = fmaxf(big, fabsf(v));
            if (v > best[i]) { lower[i] = best[i]; best[i] = v; arg[i] = k; }
        }
    }
    float margin = INFINITY;
    for (int i = 0; i < 4; ++i) margin = fminf(margin, __fsub_rn(best[i], lower[i]));
    bool same = arg[0] == arg[1] && arg[0] == arg[2] && arg[0] == arg[3];
    bool safe = finite && same && margin > __fadd_rn(big * SAFE_REL, SAFE_ABS) && classes < MIXED;
    cells[(size_t)y0 * w + x0] = (unsigned char)(safe ? arg[0] : MIXED);
}

extern "C" __global__ void upsample_argmax_f32(const float* logits, int classes, int h, int w,
                                               unsigned char* mask, int out_h, int out_w) {
    upsample_argmax<float>(logits, classes, h, w, 0, mask, out_h, out_w);
}

extern "C" __global__ void upsample_argmax_f16(const __half* logits, int classes, int h, int w,
                                               unsigned char* mask, int out_h, int out_w) {
    upsample_argmax<__half>(logits, classes, h, w, 0, mask, out_h, out_w);
}

extern "C" __global__ void cell_labels_f32(const float* logits, int classes, int h, int w,
                                           unsigned char* cells) {
    cell_labels<float>(logits, classes, h, w, cells);
}

extern "C" __global__ void cell_labels_f16(const __half* logits, int classes, int h, int w,
                                           unsigned char* cells) {
    cell_labels<__half>(logits, classes, h, w, cells);
}

extern "C" __global__ void upsample_argmax_early_f32(const float* logits, int classes,
                                                     int h, int w, const unsigned char* cells,
                                                     unsigned char* mask, int out_h, int out_w) {
    upsample_argmax<float>(logits, classes, h, w, cells, mask, out_h, out_w);
}

extern "C" __global__ void upsample_argmax_early_f16(const __half* logits, int classes,
                                                     int h, int w, const unsigned char* cells,
                                                     unsigned char* mask, int out_h, int out_w) {
    upsample_argmax<__half>(logits, classes, h, w, cells, mask, out_h, out_w);
}

// ---- The tiled early-out. One block of blockDim.y warps (blockDim.x = 32) per output tile of
// tile_w x tile_h pixels. Shared memory: per texel of the window its candidate set (as a cell),
// every class's value, winner margin, largest |logit|; the tile's column axis; per texel its
// winner and cell label. The lanes of a warp write consecutive pixels of a row, so they mostly
// share a cell (and its candidates): little divergence.
#define FULL_WARP 0xffffffffu

// The shared-memory layout, region by region in this order: name, element type, its bytes,
// elements. The kernel carves its buffers from this table, and the host sizes each launch from
// the same table (runtime/kernels/__init__.py reads it for cuda_ops.tile_shared_bytes), so the
// two cannot disagree: change the layout here only.
#define TILE_SHARED(REGION)                          \
    REGION(cands, unsigned long long, 8, texels)     \
    REGION(vals, float, 4, classes * texels)         \
    REGION(gap, float, 4, texels)                    \
    REGION(big, float, 4, texels)                    \
    REGION(xa, Axis, 16, tile_w)                     \
    REGION(arg, unsigned char, 1, texels)            \
    REGION(label, unsigned char, 1, texels)

#define TILE_CARVE(name, type, bytes, count)                                           \
    static_assert(sizeof(type) == (bytes), "TILE_SHARED: " #name " is not " #bytes " bytes"); \
    type* name = (type*)at;                                                            \
    at = (unsigned char*)(name + (count));

struct Axis {  // one output index: window-relative source texels and their weights
    int i0, i1;
    float w0, w1;
};

__device__ __forceinline__ Axis axis_at(int dst, float scale, int in_size, int origin) {
    Axis a;
    source_at(dst, scale, in_size, a.i0, a.i1, a.w0, a.w1);
    a.i0 -= origin;
    a.i1 -= origin;
    return a;
}

// Every class's texels of the window (rows x cols from (ty, tx)) into vals: one line (class k,
// row y) per warp at a time, lanes over its columns, LOAD_UNROLL loads in flight per lane.
#define LOAD_UNROLL 8

template <typename T>
__device__ __forceinline__ void load_window(const T* __restrict__ logits, int classes, int h,
                                            int w, int ty, int tx, int rows, int cols,
                                            float* vals) {
    const int warps = blockDim.y, lines = classes * rows, dk = warps / rows, dy = warps % rows;
    for (int c = threadIdx.x; c - (int)threadIdx.x < cols; c += 32) {  // warp-uniform
        int k = threadIdx.y / rows, y = threadIdx.y % rows;  // of the warp's next line
        for (int line0 = threadIdx.y; line0 < lines; line0 += LOAD_UNROLL * warps) {
            float v[LOAD_UNROLL];
#pragma unroll
            for (int u = 0; u < LOAD_UNROLL; ++u) {
                if (line0 + u * warps < lines && c < cols)
                    v[u] = load(logits, (size_t)k * h * w + (size_t)(ty + y) * w + tx + c);
                k += dk;
                y += dy;
                if (y >= rows) { y -= rows; ++k; }
            }
#pragma unroll
            for (int u = 0; u < LOAD_UNROLL; ++u) {
                int line = line0 + u * warps;
                if (line < lines && c < cols) vals[line * cols + c] = v[u];
            }
        }
    }
}

// One texel's winner (first maximum), its margin over the lower class indices and the largest
// |logit| (infinite where a logit is not finite or not below SAFE_MAX), as in cell_labels.
__device__ void texel_stats(const float* v, int stride, int classes, float* gap, float* big,
                            unsigned char* arg) {
    float best = -INFINITY, lower = -INFINITY, top = 0.f;
    int a = 0;
    bool finite = true;
#pragma unroll 5
    for (int k = 0; k < classes; ++k) {
        float x = v[k * stride];
        finite = finite && fabsf(x) < SAFE_MAX;  // false for NaN and inf too
        top = fmaxf(top, fabsf(x));
        if (x > best) { lower = best; best = x; a = k; }
    }
    *gap = __fsub_rn(best, lower);
    *big = finite ? top : INFINITY;
    *arg = (unsigned char)a;
}

__device__ __forceinline__ float corner_min(const float* v, const int c[4]) {
    return fminf(fminf(v[c[0]], v[c[1]]), fminf(v[c[2]], v[c[3]]));
}

__device__ __forceinline__ float corner_max(const float* v, const int c[4]) {
    return fmaxf(fmaxf(v[c[0]], v[c[1]]), fmaxf(v[c[2]], v[c[3]]));
}

// A cell of corners c[0..3] (texel indices in the window), by one warp (lane k: classes k and
// k + 32): its class where one class must win at every pixel, else MIXED with the candidate
// classes as a bit set (0: every class). A class whose largest corner value is below the
// largest smallest-corner value of any class by more than `safe` loses at every pixel.
__device__ void cell_class(const float* vals, int texels, int classes, const float* gap,
                           const float* big, const unsigned char* arg, const int c[4],
                           unsigned char* label, unsigned long long* cands) {
    int lane = threadIdx.x;
    float b = fmaxf(fmaxf(big[c[0]], big[c[1]]), fmaxf(big[c[2]], big[c[3]]));
    float margin = fminf(fminf(gap[c[0]], gap[c[1]]), fminf(gap[c[2]], gap[c[3]]));
    float safe = __fadd_rn(b * SAFE_REL, SAFE_ABS);
    bool finite = b < SAFE_MAX;
    bool same = arg[c[0]] == arg[c[1]] && arg[c[0]] == arg[c[2]] && arg[c[0]] == arg[c[3]];
    bool uniform = finite && same && margin > safe && classes < MIXED;
    if (uniform || !finite || classes > 64) {
        if (lane == 0) { *label = uniform ? arg[c[0]] : MIXED; *cands = 0; }
        return;
    }
    bool has0 = lane < classes, has1 = lane + 32 < classes;
    float floor = fmaxf(has0 ? corner_min(vals + lane * texels, c) : -INFINITY,
                        has1 ? corner_min(vals + (lane + 32) * texels, c) : -INFINITY);
    for (int m = 16; m; m >>= 1) floor = fmaxf(floor, __shfl_xor_sync(FULL_WARP, floor, m));
    bool can0 = has0 && !(__fsub_rn(floor, corner_max(vals + lane * texels, c)) > safe);
    bool can1 = has1 && !(__fsub_rn(floor, corner_max(vals + (lane + 32) * texels, c)) > safe);
    unsigned long long set = __ballot_sync(FULL_WARP, can0) |
                             (unsigned long long)__ballot_sync(FULL_WARP, can1) << 32;
    if (lane == 0) {
        *label = (unsigned char)(__popcll(set) == 1 ? __ffsll(set) - 1 : MIXED);
        *cands = set;
    }
}

__device__ __forceinline__ void upsample_one(const float* v, int a, int b, int c, int d, Axis ax,
                                             Axis ay, int k, float& best, int& arg) {
    float top = lerp2(ax.w0, v[a], ax.w1, v[b]);
    float bottom = lerp2(ax.w0, v[c], ax.w1, v[d]);
    float s = lerp2(ay.w0, top, ay.w1, bottom);
    if (s > best) { best = s; arg = k; }
}

// The argmax at one pixel of a mixed cell over its candidates in ascending order (all classes
// where the set is empty): the same first maximum as all_classes, the others lose strictly.
__device__ int candidates_argmax(const float* vals, int texels, int classes, int cols,
                                 unsigned long long set, Axis ax, Axis ay) {
    int a = ay.i0 * cols + ax.i0, b = ay.i0 * cols + ax.i1, c = ay.i1 * cols + ax.i0,
        d = ay.i1 * cols + ax.i1;
    float best = -INFINITY;
    int arg = 0;
    if (set == 0) {
        for (int k = 0; k < classes; ++k)
            upsample_one(vals + k * texels, a, b, c, d, ax, ay, k, best, arg);
    }
    for (; set; set &= set - 1) {
        int k = __ffsll(set) - 1;
        upsample_one(vals + k * texels, a, b, c, d, ax, ay, k, best, arg);
    }
    return arg;
}

template <typename T>
__device__ void upsample_argmax_tiles(const T* __restrict__ logits, int classes, int h, int w,
                                      unsigned char* __restrict__ mask, int out_h, int out_w,
                                      int tile_w, int tile_h) {
    extern __shared__ unsigned long long shared[];
    int ox = blockIdx.x * tile_w, oy = blockIdx.y * tile_h;
    int nx = min(tile_w, out_w - ox), ny = min(tile_h, out_h - oy);
    int tid = threadIdx.y * 32 + threadIdx.x, threads = 32 * blockDim.y, warps = blockDim.y;
    float sx = scale_of(w, out_w), sy = scale_of(h, out_h);
    Axis fx = axis_at(ox, sx, w, 0), lx = axis_at(ox + nx - 1, sx, w, 0);
    Axis fy = axis_at(oy, sy, h, 0), ly = axis_at(oy + ny - 1, sy, h, 0);
    int tx = fx.i0, ty = fy.i0, cols = lx.i1 - tx + 1, rows = ly.i1 - ty + 1, texels = rows * cols;
    unsigned char* at = (unsigned char*)shared;
    TILE_SHARED(TILE_CARVE)
    for (int x = tid; x < nx; x += threads) xa[x] = axis_at(ox + x, sx, w, tx);
    load_window(logits, classes, h, w, ty, tx, rows, cols, vals);
    __syncthreads();
    for (int r = tid; r < texels; r += threads)
        texel_stats(vals + r, texels, classes, gap + r, big + r, arg + r);
    __syncthreads();
    int cell_cols = lx.i0 - tx + 1, cells = (ly.i0 - ty + 1) * cell_cols;
    for (int i = threadIdx.y; i < cells; i += warps) {  // warp-uniform: one cell per warp
        int y = i / cell_cols, x = i - y * cell_cols;
        int y1 = y + (ty + y < h - 1 ? 1 : 0), x1 = x + (tx + x < w - 1 ? 1 : 0);
        int c[4] = {y * cols + x, y * cols + x1, y1 * cols + x, y1 * cols + x1};
        cell_class(vals, texels, classes, gap, big, arg, c, label + c[0], cands + c[0]);
    }
    __syncthreads();
    for (int r = threadIdx.y; r < ny; r += warps) {
        Axis ay = axis_at(oy + r, sy, h, ty);
        unsigned char* out = mask + (size_t)(oy + r) * out_w + ox;
#pragma unroll 4
        for (int x = threadIdx.x; x < nx; x += 32) {
            Axis ax = xa[x];
            int at = ay.i0 * cols + ax.i0, k = label[at];
            if (k == MIXED) k = candidates_argmax(vals, texels, classes, cols, cands[at], ax, ay);
            out[x] = (unsigned char)k;
        }
    }
}

// At most 8 warps. On sm_90 and later 48 registers, so that five 256-thread blocks fit an SM (one
// wave at 1080p on an H100). On the Jetson GPUs (sm_53 to sm_87) that bound makes ptxas spill 4 to
// 64 bytes to local memory, so four blocks there: 64 registers, no spill (tools/kernel_gate.py).
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 900
#define TILE_MIN_BLOCKS 4
#else
#define TILE_MIN_BLOCKS 5
#endif
extern "C" __global__ void __launch_bounds__(256, TILE_MIN_BLOCKS)
upsample_argmax_tiles_f32(const float* logits, int classes, int h, int w, unsigned char* mask,
                          int out_h, int out_w, int tile_w, int tile_h) {
    upsample_argmax_tiles<float>(logits, classes, h, w, mask, out_h, out_w, tile_w, tile_h);
}

extern "C" __global__ void __launch_bounds__(256, TILE_MIN_BLOCKS)
upsample_argmax_tiles_f16(const __half* logits, int classes, int h, int w, unsigned char* mask,
                          int out_h, int out_w, int tile_w, int tile_h) {
    upsample_argmax_tiles<__half>(logits, classes, h, w, mask, out_h, out_w, tile_w, tile_h);
}
