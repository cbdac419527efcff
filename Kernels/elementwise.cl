// elementwise.cl — ReLU, dropout and the vector ops of the Backend protocol.
//
// Layout: flat float32 vectors of n elements (any shape, contiguous), each as (buffer, offset).
// Launch: 1-D, global rounded up to the work-group size (chosen by the launcher from the kernel's
// preferred multiple); every kernel takes a last flag `vec4`:
// - vec4 == 0 (scalar path): one work-item per element i < n, global = n.
// - vec4 != 0 (float4 path; the launcher sets it only when every buffer offset is a multiple of 4,
//   so that the loads and stores are 16-byte aligned): global = ceil(n / 4); work-item i handles
//   elements 4i .. 4i+3 with one float4 load or store per buffer, and the last work-item the tail of
//   n % 4 elements one by one. The float4 arithmetic is the scalar arithmetic per component
//   (FP_CONTRACT is off), so both paths give bit-identical results.
// The float4 accesses are through float4 pointers, so they are 16-byte aligned accesses (buffers
// start at CL_DEVICE_MEM_BASE_ADDR_ALIGN, at least 16 bytes for a float4-capable device) — hence the
// launcher's offset condition; vload4/vstore4 would only assume 4-byte alignment.
// Outputs may alias inputs exactly (each work-item reads its elements before writing them).

#define SWIFTCNN_LOAD4(p) (*(__global const float4*)(p))
#define SWIFTCNN_STORE4(v, p) (*(__global float4*)(p) = (v))

// y = relu(x) (NaN propagates, -0 becomes +0; see swiftcnn_relu)
__kernel void relu(__global const float* x, int xOff, __global float* y, int yOff, int n, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            float4 v = SWIFTCNN_LOAD4(x + xOff + e);
            SWIFTCNN_STORE4(swiftcnn_relu4(v), y + yOff + e);
        } else {
            for (; e < n; e++) y[yOff + e] = swiftcnn_relu(x[xOff + e]);
        }
        return;
    }
    if (i >= n) return;
    y[yOff + i] = swiftcnn_relu(x[xOff + i]);
}

// dx = y > 0 ? dy : 0, y = the ReLU's output.
__kernel void reluBackward(__global const float* y, int yOff, __global const float* dy, int dyOff,
                           __global float* dx, int dxOff, int n, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            float4 yv = SWIFTCNN_LOAD4(y + yOff + e);
            float4 g = SWIFTCNN_LOAD4(dy + dyOff + e);
            SWIFTCNN_STORE4((float4)(yv.x > 0.0f ? g.x : 0.0f, yv.y > 0.0f ? g.y : 0.0f,
                                     yv.z > 0.0f ? g.z : 0.0f, yv.w > 0.0f ? g.w : 0.0f), dx + dxOff + e);
        } else {
            for (; e < n; e++) dx[dxOff + e] = y[yOff + e] > 0.0f ? dy[dyOff + e] : 0.0f;
        }
        return;
    }
    if (i >= n) return;
    dx[dxOff + i] = y[yOff + i] > 0.0f ? dy[dyOff + i] : 0.0f;
}

// Inverted dropout: mask[i] = uniform(key, i) >= p ? scale : 0 (scale = 1 / (1 - p), computed on
// the host exactly as the CPU reference does); y = x * mask. Same mask as CounterRNG on the CPU:
// the counter is the element index on both paths.
inline float swiftcnn_dropout_mask(uint key, int e, float p, float scale) {
    return swiftcnn_uniform(key, (uint)e) >= p ? scale : 0.0f;
}

__kernel void dropoutForward(__global const float* x, int xOff, __global float* y, int yOff,
                             __global float* mask, int maskOff, int n, uint key, float p, float scale, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            float4 m = (float4)(swiftcnn_dropout_mask(key, e, p, scale), swiftcnn_dropout_mask(key, e + 1, p, scale),
                                swiftcnn_dropout_mask(key, e + 2, p, scale), swiftcnn_dropout_mask(key, e + 3, p, scale));
            float4 v = SWIFTCNN_LOAD4(x + xOff + e);
            SWIFTCNN_STORE4(m, mask + maskOff + e);
            SWIFTCNN_STORE4(v * m, y + yOff + e);
        } else {
            for (; e < n; e++) {
                float m = swiftcnn_dropout_mask(key, e, p, scale);
                float v = x[xOff + e];
                mask[maskOff + e] = m;
                y[yOff + e] = v * m;
            }
        }
        return;
    }
    if (i >= n) return;
    float m = swiftcnn_dropout_mask(key, i, p, scale);
    float v = x[xOff + i];
    mask[maskOff + i] = m;
    y[yOff + i] = v * m;
}

// y = a + b
__kernel void add(__global const float* a, int aOff, __global const float* b, int bOff,
                  __global float* y, int yOff, int n, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            SWIFTCNN_STORE4(SWIFTCNN_LOAD4(a + aOff + e) + SWIFTCNN_LOAD4(b + bOff + e), y + yOff + e);
        } else {
            for (; e < n; e++) y[yOff + e] = a[aOff + e] + b[bOff + e];
        }
        return;
    }
    if (i >= n) return;
    y[yOff + i] = a[aOff + i] + b[bOff + i];
}

// y = a * b
__kernel void mul(__global const float* a, int aOff, __global const float* b, int bOff,
                  __global float* y, int yOff, int n, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            SWIFTCNN_STORE4(SWIFTCNN_LOAD4(a + aOff + e) * SWIFTCNN_LOAD4(b + bOff + e), y + yOff + e);
        } else {
            for (; e < n; e++) y[yOff + e] = a[aOff + e] * b[bOff + e];
        }
        return;
    }
    if (i >= n) return;
    y[yOff + i] = a[aOff + i] * b[bOff + i];
}

// y = alpha * x
__kernel void scale(__global const float* x, int xOff, __global float* y, int yOff, int n, float alpha, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            SWIFTCNN_STORE4(alpha * SWIFTCNN_LOAD4(x + xOff + e), y + yOff + e);
        } else {
            for (; e < n; e++) y[yOff + e] = alpha * x[xOff + e];
        }
        return;
    }
    if (i >= n) return;
    y[yOff + i] = alpha * x[xOff + i];
}

// y += alpha * x (no fused multiply-add: FP_CONTRACT is off, as in the reference)
__kernel void axpy(__global const float* x, int xOff, __global float* y, int yOff, int n, float alpha, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            float4 prod = alpha * SWIFTCNN_LOAD4(x + xOff + e);
            SWIFTCNN_STORE4(SWIFTCNN_LOAD4(y + yOff + e) + prod, y + yOff + e);
        } else {
            for (; e < n; e++) y[yOff + e] = y[yOff + e] + alpha * x[xOff + e];
        }
        return;
    }
    if (i >= n) return;
    y[yOff + i] = y[yOff + i] + alpha * x[xOff + i];
}

// t = value
__kernel void fill(__global float* t, int tOff, int n, float value, int vec4) {
    int i = get_global_id(0);
    if (vec4) {
        int e = 4 * i;
        if (e + 4 <= n) {
            SWIFTCNN_STORE4((float4)(value), t + tOff + e);
        } else {
            for (; e < n; e++) t[tOff + e] = value;
        }
        return;
    }
    if (i >= n) return;
    t[tOff + i] = value;
}
