// postprocess: logits C x h x w (fp32 or fp16) -> uint8 mask H x W at the original size.
//
// One fused kernel: each thread upsamples every class bilinearly at its output pixel
// (align_corners=False, PyTorch's source index rule) and keeps the argmax (the first maximum
// wins, like torch.argmax), so the full-resolution logits never exist in memory.
#include <cuda_fp16.h>

__device__ __forceinline__ float load(const float* p, size_t i) { return p[i]; }
__device__ __forceinline__ float load(const __half* p, size_t i) { return __half2float(p[i]); }

__device__ __forceinline__ void source_index(int dst, int in_size, float scale, int& i0, int& i1, float& frac) {
    float s = (dst + 0.5f) * scale - 0.5f;
    if (s < 0.f) s = 0.f;
    i0 = (int)s;
    if (i0 > in_size - 1) i0 = in_size - 1;
    i1 = i0 + (i0 < in_size - 1 ? 1 : 0);
    frac = s - (float)i0;
}

template <typename T>
__device__ void upsample_argmax(const T* __restrict__ logits, int classes, int h, int w,
                                unsigned char* __restrict__ mask, int out_h, int out_w) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= out_w || y >= out_h) return;
    int x0, x1, y0, y1;
    float fx, fy;
    source_index(x, w, (float)w / (float)out_w, x0, x1, fx);
    source_index(y, h, (float)h / (float)out_h, y0, y1, fy);
    size_t plane = (size_t)h * w;
    size_t a = (size_t)y0 * w + x0, b = (size_t)y0 * w + x1, c = (size_t)y1 * w + x0, d = (size_t)y1 * w + x1;
    float best = -INFINITY;
    int arg = 0;
    for (int k = 0; k < classes; ++k) {
        const T* p = logits + k * plane;
        float top = (1.f - fx) * load(p, a) + fx * load(p, b);
        float bottom = (1.f - fx) * load(p, c) + fx * load(p, d);
        float v = (1.f - fy) * top + fy * bottom;
        if (v > best) { best = v; arg = k; }
    }
    mask[(size_t)y * out_w + x] = (unsigned char)arg;
}

extern "C" __global__ void upsample_argmax_f32(const float* logits, int classes, int h, int w,
                                               unsigned char* mask, int out_h, int out_w) {
    upsample_argmax<float>(logits, classes, h, w, mask, out_h, out_w);
}

extern "C" __global__ void upsample_argmax_f16(const __half* logits, int classes, int h, int w,
                                               unsigned char* mask, int out_h, int out_w) {
    upsample_argmax<__half>(logits, classes, h, w, mask, out_h, out_w);
}
