// postprocess: logits C x h x w (fp32 or fp16) -> uint8 mask H x W at the original size.
//
// Each output pixel upsamples every class bilinearly (align_corners=False, PyTorch's source
// index rule) and keeps the argmax (the first maximum wins, like torch.argmax), so the
// full-resolution logits never exist in memory. Every float operation is an explicitly rounded
// __fmul_rn/__fadd_rn/__fsub_rn (no contraction into FMA), in the order of the CPU reference
// (runtime/reference.py), so the masks are bit-identical to it.
//
// Two versions:
// - upsample_argmax_*: every class at every pixel (the oracle).
// - cell_labels_* then upsample_argmax_cells_* (or, for cells of over 4096 pixels,
//   upsample_argmax_early_*): the early-out. A cell is the square of four
//   texels (y0,x0)..(y1,x1) that an output pixel interpolates from. Where the same class k wins
//   at all four corners, with a margin over every lower class index larger than the worst
//   rounding gap, k wins at every pixel of the cell (rounded products and sums are monotone), so
//   those pixels take k without touching the logits. Only the other cells compute all classes.
//   upsample_argmax_cells_* runs one block per cell, so the threads of a warp are either all
//   filling a uniform cell or all computing a mixed one (no divergence inside a warp).
#include <cuda_fp16.h>

#define SAFE_REL 1.9073486328125e-06f  // 2^-19: four times the worst rounding gap, relative
#define SAFE_ABS 7.888609052210118e-31f  // 2^-100: covers products that underflow
#define SAFE_MAX 1.2676506002282294e+30f  // 2^100: larger or non-finite logits get no early-out
#define MIXED 255  // cell label: compute every class

__device__ __forceinline__ float load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, size_t i) { return __half2float(p[i]); }

__device__ __forceinline__ void source_index(int dst, int in_size, int out_size, int& i0, int& i1,
                                             float& w0, float& w1) {
    float scale = __fdiv_rn((float)in_size, (float)out_size);
    float s = __fsub_rn(__fmul_rn(__fadd_rn((float)dst, 0.5f), scale), 0.5f);
    if (s < 0.f) s = 0.f;
    i0 = (int)s;
    if (i0 > in_size - 1) i0 = in_size - 1;
    i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
    w1 = __fsub_rn(s, (float)i0);
    w0 = __fsub_rn(1.f, w1);
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
    size_t at[4] = {(size_t)y0 * w + x0, (size_t)y0 * w + x1, (size_t)y1 * w + x0, (size_t)y1 * w + x1};
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

extern "C" __global__ void upsample_argmax_early_f32(const float* logits, int classes, int h, int w,
                                                     const unsigned char* cells, unsigned char* mask,
                                                     int out_h, int out_w) {
    upsample_argmax<float>(logits, classes, h, w, cells, mask, out_h, out_w);
}

extern "C" __global__ void upsample_argmax_early_f16(const __half* logits, int classes, int h, int w,
                                                     const unsigned char* cells, unsigned char* mask,
                                                     int out_h, int out_w) {
    upsample_argmax<__half>(logits, classes, h, w, cells, mask, out_h, out_w);
}

// One block per cell (blockIdx = x0, y0); its pixels are rows start_y[y0] .. + count_y[y0] and
// columns start_x[x0] .. + count_x[x0] (from the same source_index arithmetic, on the host).
template <typename T>
__device__ void upsample_argmax_cells(const T* __restrict__ logits, int classes, int h, int w,
                                      const unsigned char* __restrict__ cells,
                                      const int* __restrict__ spans_y, const int* __restrict__ spans_x,
                                      unsigned char* __restrict__ mask, int out_h, int out_w) {
    int cx = blockIdx.x, cy = blockIdx.y;
    int x_first = spans_x[2 * cx], cols = spans_x[2 * cx + 1];
    int y_first = spans_y[2 * cy], rows = spans_y[2 * cy + 1];
    int label = cells[(size_t)cy * w + cx];
    for (int i = threadIdx.x; i < rows * cols; i += blockDim.x) {
        int x = x_first + i % cols, y = y_first + i / cols;
        int arg = label;
        if (label == MIXED) {
            int x0, x1, y0, y1;
            float wx0, wx1, wy0, wy1;
            source_index(x, w, out_w, x0, x1, wx0, wx1);
            source_index(y, h, out_h, y0, y1, wy0, wy1);
            size_t r0 = (size_t)y0 * w, r1 = (size_t)y1 * w;
            arg = all_classes(logits, classes, (size_t)h * w, r0 + x0, r0 + x1, r1 + x0, r1 + x1,
                              wx0, wx1, wy0, wy1);
        }
        mask[(size_t)y * out_w + x] = (unsigned char)arg;
    }
}

extern "C" __global__ void upsample_argmax_cells_f32(const float* logits, int classes, int h, int w,
                                                     const unsigned char* cells, const int* spans_y,
                                                     const int* spans_x, unsigned char* mask,
                                                     int out_h, int out_w) {
    upsample_argmax_cells<float>(logits, classes, h, w, cells, spans_y, spans_x, mask, out_h, out_w);
}

extern "C" __global__ void upsample_argmax_cells_f16(const __half* logits, int classes, int h, int w,
                                                     const unsigned char* cells, const int* spans_y,
                                                     const int* spans_x, unsigned char* mask,
                                                     int out_h, int out_w) {
    upsample_argmax_cells<__half>(logits, classes, h, w, cells, spans_y, spans_x, mask, out_h, out_w);
}
