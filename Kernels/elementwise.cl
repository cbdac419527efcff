// elementwise.cl — ReLU, dropout and the vector ops of the Backend protocol.
//
// Layout: flat float32 vectors of n elements (any shape, contiguous), each as (buffer, offset).
// Launch: 1-D, one work-item per element, global = n rounded up to the work-group size
// (chosen by the launcher from the kernel's preferred multiple); every kernel checks i < n.
// Outputs may alias inputs (each work-item reads its element before writing it).

// y = relu(x) (NaN propagates, -0 becomes +0; see swiftcnn_relu)
__kernel void relu(__global const float* x, int xOff, __global float* y, int yOff, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    y[yOff + i] = swiftcnn_relu(x[xOff + i]);
}

// dx = y > 0 ? dy : 0, y = the ReLU's output.
__kernel void reluBackward(__global const float* y, int yOff, __global const float* dy, int dyOff,
                           __global float* dx, int dxOff, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    dx[dxOff + i] = y[yOff + i] > 0.0f ? dy[dyOff + i] : 0.0f;
}

// Inverted dropout: mask[i] = uniform(key, i) >= p ? scale : 0 (scale = 1 / (1 - p), computed on
// the host exactly as the CPU reference does); y = x * mask. Same mask as CounterRNG on the CPU.
__kernel void dropoutForward(__global const float* x, int xOff, __global float* y, int yOff,
                             __global float* mask, int maskOff, int n, uint key, float p, float scale) {
    int i = get_global_id(0);
    if (i >= n) return;
    float m = swiftcnn_uniform(key, (uint)i) >= p ? scale : 0.0f;
    mask[maskOff + i] = m;
    y[yOff + i] = x[xOff + i] * m;
}

// y = a + b
__kernel void add(__global const float* a, int aOff, __global const float* b, int bOff,
                  __global float* y, int yOff, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    y[yOff + i] = a[aOff + i] + b[bOff + i];
}

// y = a * b
__kernel void mul(__global const float* a, int aOff, __global const float* b, int bOff,
                  __global float* y, int yOff, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    y[yOff + i] = a[aOff + i] * b[bOff + i];
}

// y = alpha * x
__kernel void scale(__global const float* x, int xOff, __global float* y, int yOff, int n, float alpha) {
    int i = get_global_id(0);
    if (i >= n) return;
    y[yOff + i] = alpha * x[xOff + i];
}

// y += alpha * x (no fused multiply-add: FP_CONTRACT is off, as in the reference)
__kernel void axpy(__global const float* x, int xOff, __global float* y, int yOff, int n, float alpha) {
    int i = get_global_id(0);
    if (i >= n) return;
    y[yOff + i] = y[yOff + i] + alpha * x[xOff + i];
}

// t = value
__kernel void fill(__global float* t, int tOff, int n, float value) {
    int i = get_global_id(0);
    if (i >= n) return;
    t[tOff + i] = value;
}
