// augment.cl — training batches built on the device from uint8 images and per-image parameters
// drawn on the host (Sources/Datasets/DeviceBatch.swift), with the same float operations in the
// same order as the host pipeline (Sources/Datasets/Augmenter.swift, Mixing.swift), so the batch
// is bit-identical: crop (zero or reflect padding), horizontal flip, rotation (PIL's inverse
// affine map; nearest or bilinear), normalisation, cutout, then MixUp or CutMix.
//
// FP_CONTRACT OFF: the host computes a * b + c as two roundings; a fused multiply-add would not.
#pragma OPENCL FP_CONTRACT OFF

// Row parameters (DeviceInputLayout): int32 x 10 per row, float x 2 per row.
#define P_SRC 0
#define P_CROPY 1
#define P_CROPX 2
#define P_FLIP 3
#define P_ROTATED 4
#define P_CUTY1 5
#define P_CUTY2 6
#define P_CUTX1 7
#define P_CUTX2 8
#define P_PARTNER 9
#define P_INTS 10

// Index i of a padded axis of length n: itself inside, mirrored (no edge repeat) or -1 outside
// (Augmenter.padIndex; one reflection suffices because padding < n).
// (Written without |i|: Oclgrind 21.10 cannot run the llvm.abs intrinsic the compiler makes of it.)
inline int swiftcnn_pad_index(int i, int n, int reflect) {
    if (i >= 0 && i < n) return i;
    if (!reflect) return -1;
    int j;
    if (i < 0) {
        j = 0 - i;
        if (j >= n) j = 2 * (n - 1) - j;
    } else {
        j = 2 * (n - 1) - i;
    }
    return clamp(j, 0, n - 1);
}

// The source row of output row y / source column of output column x (crop, flip), or -1.
inline int swiftcnn_row_map(int y, __global const int* p, int H, int pad, int reflect) {
    return swiftcnn_pad_index(y + p[P_CROPY] - pad, H, reflect);
}
inline int swiftcnn_col_map(int x, __global const int* p, int W, int pad, int reflect) {
    return swiftcnn_pad_index((p[P_FLIP] ? W - 1 - x : x) + p[P_CROPX] - pad, W, reflect);
}

// Raw pixel (0...255) of plane `plane` at mapped (row, column), 0 for padding.
inline float swiftcnn_mapped(__global const uchar* plane, int r, int m, int W) {
    return (r < 0 || m < 0) ? 0.0f : (float)plane[r * W + m];
}

// The augmented, normalised value of channel c, pixel (y, x) of the image row p describes.
// lut: (C, 256) normalised byte values, then mean (C), then std (C).
inline float swiftcnn_augmented(__global const uchar* px, __global const int* p, __global const float* pf,
                                __global const float* lut, int c, int y, int x, int C, int H, int W,
                                int pad, int reflect, int nearest) {
    int HW = H * W;
    __global const uchar* plane = px + (long)p[P_SRC] * (long)(C * HW) + c * HW;
    float v;
    if (!p[P_ROTATED]) {
        int r = swiftcnn_row_map(y, p, H, pad, reflect);
        int m = swiftcnn_col_map(x, p, W, pad, reflect);
        v = (r < 0 || m < 0) ? lut[c * 256] : lut[c * 256 + plane[r * W + m]];
    } else {
        // Augmenter.rotate, per output pixel.
        float cs = pf[0], sn = pf[1];
        float halfW = (float)W / 2.0f, halfH = (float)H / 2.0f;
        float yy = (float)y + 0.5f - halfH;
        float bx = -sn * yy + halfW;
        float by = cs * yy + halfH;
        float xx = (float)x + 0.5f - halfW;
        float xin = cs * xx + bx;
        float yin = sn * xx + by;
        float raw = 0.0f;
        if (xin >= 0.0f && xin < (float)W && yin >= 0.0f && yin < (float)H) {
            int x0, y0;
            float dx, dy;
            if (nearest) {
                x0 = (int)xin; y0 = (int)yin; dx = 0.0f; dy = 0.0f;
            } else {
                float xs = xin - 0.5f, ys = yin - 0.5f;
                x0 = (int)(xs + 1.0f) - 1; y0 = (int)(ys + 1.0f) - 1;
                dx = xs - (float)x0; dy = ys - (float)y0;
            }
            int ca = swiftcnn_col_map(max(x0, 0), p, W, pad, reflect);
            int cb = swiftcnn_col_map(min(x0 + 1, W - 1), p, W, pad, reflect);
            int ra = swiftcnn_row_map(max(y0, 0), p, H, pad, reflect);
            int rb = swiftcnn_row_map(min(y0 + 1, H - 1), p, H, pad, reflect);
            float w0 = (1.0f - dx) * (1.0f - dy);
            float w1 = dx * (1.0f - dy);
            float w2 = (1.0f - dx) * dy;
            float w3 = dx * dy;
            raw = w0 * swiftcnn_mapped(plane, ra, ca, W) + w1 * swiftcnn_mapped(plane, ra, cb, W)
                + w2 * swiftcnn_mapped(plane, rb, ca, W) + w3 * swiftcnn_mapped(plane, rb, cb, W);
        }
        // Nearest gives a byte value: the table holds (v / 255 - mean) / std for it. Bilinear
        // divides as the host does (the program is built with correctly rounded division where
        // the device offers it).
        v = nearest ? lut[c * 256 + (int)raw] : (raw / 255.0f - lut[C * 256 + c]) / lut[C * 257 + c];
    }
    if (y >= p[P_CUTY1] && y < p[P_CUTY2] && x >= p[P_CUTX1] && x < p[P_CUTX2]) v = 0.0f;
    return v;
}

// out (N, C, H, W) = the augmented batch, mixed: mixKind 0 none, 1 MixUp (lambda * own +
// (1 - lambda) * partner's), 2 CutMix (the partner's pixels inside rows by0..<by1, columns
// bx0..<bx1). px: uint8 images (pxOff in 4-byte units), params: (N, 10) int32, pfl: (N, 2).
// Launch: 1-D over N*C*H*W.
__kernel void augmentBatch(__global const uchar* px, int pxOff, __global const int* params, int paramsOff,
                           __global const float* pfl, int pflOff, __global const float* lut, int lutOff,
                           __global float* out, int outOff, int N, int C, int H, int W, int pad, int reflect,
                           int nearest, int mixKind, float lambda, int by0, int by1, int bx0, int bx1) {
    int idx = get_global_id(0);
    int HW = H * W, CHW = C * HW;
    if (idx >= N * CHW) return;
    int i = idx / CHW, rem = idx - i * CHW;
    int c = rem / HW, yx = rem - c * HW;
    int y = yx / W, x = yx - y * W;
    __global const uchar* base = px + 4 * (long)pxOff;
    __global const int* p = params + paramsOff + i * P_INTS;
    __global const float* tables = lut + lutOff;
    float v = swiftcnn_augmented(base, p, pfl + pflOff + 2 * i, tables, c, y, x, C, H, W, pad, reflect, nearest);
    if (mixKind != 0) {
        int j = p[P_PARTNER];
        __global const int* q = params + paramsOff + j * P_INTS;
        if (mixKind == 1) {
            float other = swiftcnn_augmented(base, q, pfl + pflOff + 2 * j, tables, c, y, x, C, H, W, pad, reflect, nearest);
            float b = 1.0f - lambda;
            v = lambda * v + b * other;
        } else if (y >= by0 && y < by1 && x >= bx0 && x < bx1) {
            v = swiftcnn_augmented(base, q, pfl + pflOff + 2 * j, tables, c, y, x, C, H, W, pad, reflect, nearest);
        }
    }
    out[outOff + idx] = v;
}
