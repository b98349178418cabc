// preprocess: uint8 BGR HWC (any size) -> normalized RGB CHW (fp32 or fp16) at the model size.
//
// Reproduces the HF image processor bit for bit: Pillow's antialiased bilinear resize on uint8
// (two separable passes with 22-bit fixed-point weights from runtime/reference.py's
// resample_coeffs, rounding to uint8 between the passes, pass order chosen on the host), then
// x * scale, - mean, / std in fp32 with no FMA contraction, exactly as NumPy computes it.
#include <cuda_fp16.h>

#define PRECISION_BITS 22

__device__ __forceinline__ unsigned char clip8(int v) {
    v >>= PRECISION_BITS;
    return (unsigned char)(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// Weighted taps along one axis at output (x, y); src is rows x cols x 3 uint8.
__device__ __forceinline__ void taps(const unsigned char* __restrict__ src, int src_w, int x, int y,
                                     const int* __restrict__ bounds,
                                     const int* __restrict__ weights,
                                     int ksize, int horizontal, int acc[3]) {
    int o = horizontal ? x : y;
    int first = bounds[2 * o], count = bounds[2 * o + 1];
    const int* k = weights + (size_t)o * ksize;
    acc[0] = acc[1] = acc[2] = 1 << (PRECISION_BITS - 1);
    for (int i = 0; i < count; ++i) {
        int sx = horizontal ? first + i : x;
        int sy = horizontal ? y : first + i;
        const unsigned char* p = src + ((size_t)sy * src_w + sx) * 3;
        acc[0] += p[0] * k[i];
        acc[1] += p[1] * k[i];
        acc[2] += p[2] * k[i];
    }
}

// First pass: uint8 -> uint8 intermediate (dst_h x dst_w x 3).
extern "C" __global__ void resample_u8(const unsigned char* __restrict__ src, int src_w,
                                       unsigned char* __restrict__ dst, int dst_h, int dst_w,
                                       const int* __restrict__ bounds,
                                       const int* __restrict__ weights,
                                       int ksize, int horizontal) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    int acc[3];
    taps(src, src_w, x, y, bounds, weights, ksize, horizontal, acc);
    unsigned char* q = dst + ((size_t)y * dst_w + x) * 3;
    q[0] = clip8(acc[0]);
    q[1] = clip8(acc[1]);
    q[2] = clip8(acc[2]);
}

// Normalization constants: scale, then mean and std per RGB channel (kernel arguments).
struct Norm { float scale, mean[3], std[3]; };

__device__ __forceinline__ float normalize(unsigned char v, const Norm& n, int c) {
    return __fdiv_rn(__fsub_rn(__fmul_rn((float)v, n.scale), n.mean[c]), n.std[c]);
}

#define NORM_ARGS float scale, float m0, float m1, float m2, float s0, float s1, float s2
#define NORM_INIT {scale, {m0, m1, m2}, {s0, s1, s2}}

template <typename T> __device__ __forceinline__ T store(float v);
template <> __device__ __forceinline__ float store<float>(float v) { return v; }
template <> __device__ __forceinline__ __half store<__half>(float v) { return __float2half_rn(v); }

// Second pass: uint8 -> RGB planar, normalized, straight into the engine's input buffer.
template <typename T>
__device__ void resample_normalize(const unsigned char* __restrict__ src, int src_w,
                                   T* __restrict__ dst, int dst_h, int dst_w,
                                   const int* __restrict__ bounds,
                                   const int* __restrict__ weights, int ksize, int horizontal,
                                   Norm n) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= dst_w || y >= dst_h) return;
    int acc[3];
    taps(src, src_w, x, y, bounds, weights, ksize, horizontal, acc);
    size_t plane = (size_t)dst_h * dst_w, at = (size_t)y * dst_w + x;
    for (int c = 0; c < 3; ++c) {  // output channel c (RGB) comes from source channel 2 - c (BGR)
        float v = normalize(clip8(acc[2 - c]), n, c);
        dst[c * plane + at] = store<T>(v);
    }
}

extern "C" __global__ void resample_normalize_f32(const unsigned char* src, int src_w,
                                                  float* dst, int dst_h, int dst_w,
                                                  const int* bounds, const int* weights,
                                                  int ksize, int horizontal, NORM_ARGS) {
    Norm n = NORM_INIT;
    resample_normalize<float>(src, src_w, dst, dst_h, dst_w, bounds, weights, ksize, horizontal, n);
}

extern "C" __global__ void resample_normalize_f16(const unsigned char* src, int src_w,
                                                  __half* dst, int dst_h, int dst_w,
                                                  const int* bounds, const int* weights,
                                                  int ksize, int horizontal, NORM_ARGS) {
    Norm n = NORM_INIT;
    resample_normalize<__half>(src, src_w, dst, dst_h, dst_w, bounds, weights, ksize, horizontal,
                               n);
}
