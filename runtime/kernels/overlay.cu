// overlay: colourize a uint8 mask with a BGR palette and alpha-blend it over the BGR image.
// out = round(image * (1 - alpha) + colour * alpha), as runtime/reference.py's blend().

extern "C" __global__ void blend_overlay(const unsigned char* __restrict__ image,
                                         const unsigned char* __restrict__ mask,
                                         const unsigned char* __restrict__ palette_bgr, int colors,
                                         float alpha, unsigned char* __restrict__ out,
                                         int h, int w) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) return;
    size_t at = (size_t)y * w + x;
    int cls = mask[at];
    if (cls >= colors) cls = 0;
    for (int c = 0; c < 3; ++c) {
        float v = image[at * 3 + c] * (1.f - alpha) + palette_bgr[cls * 3 + c] * alpha + 0.5f;
        out[at * 3 + c] = (unsigned char)(v < 0.f ? 0.f : (v > 255.f ? 255.f : v));
    }
}
