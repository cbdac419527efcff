// reductions.cl — sums to a scalar, row argmax, and the correct-prediction count.
//
// Scalar reductions take two launches, both deterministic (fixed assignment, fixed-order trees):
//   1. *Partial: G work-groups of WG_SIZE; work-item (g, lid) takes elements
//      g*WG_SIZE + lid + t*G*WG_SIZE, sums them, the group reduces in local memory -> partials[g].
//      Launch: 1-D, global G*WG_SIZE, local WG_SIZE.
//   2. sumFinalize: one work-group of WG_SIZE reduces partials[0 .. G) -> out[0] (= or +=).
// With G == 1 the partial pass writes out[0] itself (its `accumulate` flag) and there is no second
// launch: the same value, since the finalize pass would add one partial to zeros.
// Every tensor comes as (buffer, offset); x is a flat float32 vector of n elements.

// partials[g] = sum of x (square == 0) or of x^2 (square == 1) over group g's elements.
__kernel void sumPartial(__global const float* x, int xOff, __global float* partials, int pOff, int n, int square,
                         int accumulate) {
    __local float buf[WG_SIZE];
    int lid = get_local_id(0);
    int g = get_group_id(0);
    int stride = get_num_groups(0) * WG_SIZE;
    float acc = 0.0f;
    for (int i = g * WG_SIZE + lid; i < n; i += stride) {
        float v = x[xOff + i];
        acc += square ? v * v : v;
    }
    buf[lid] = acc;
    swiftcnn_local_sum(buf, lid);
    if (lid == 0) partials[pOff + g] = accumulate ? partials[pOff + g] + buf[0] : buf[0];
}

// out[0] = (accumulate ? out[0] : 0) + sum of partials[0 .. count). Launch: one work-group.
__kernel void sumFinalize(__global const float* partials, int pOff, __global float* out, int outOff,
                          int count, int accumulate) {
    __local float buf[WG_SIZE];
    int lid = get_local_id(0);
    float acc = 0.0f;
    for (int i = lid; i < count; i += WG_SIZE) acc += partials[pOff + i];
    buf[lid] = acc;
    swiftcnn_local_sum(buf, lid);
    if (lid == 0) out[outOff] = accumulate ? out[outOff] + buf[0] : buf[0];
}

// out[r] = index of the first maximum of row r (a NaN beats numbers, see swiftcnn_greater). x: (N, K), out: (N) int32. Launch: 1-D over N.
__kernel void argmax(__global const float* x, int xOff, __global int* out, int outOff, int N, int K) {
    int r = get_global_id(0);
    if (r >= N) return;
    __global const float* xr = x + xOff + r * K;
    float best = xr[0];
    int bestK = 0;
    for (int k = 1; k < K; k++) {
        if (swiftcnn_greater(xr[k], best)) { best = xr[k]; bestK = k; }
    }
    out[outOff + r] = bestK;
}

// partials[g] = number of rows (of group g's rows, assigned as in sumPartial) whose first-maximum
// argmax equals the label. logits: (N, K), labels: (N) int32.
__kernel void countCorrectPartial(__global const float* logits, int lOff, __global const int* labels, int yOff,
                                  __global float* partials, int pOff, int N, int K, int accumulate) {
    __local float buf[WG_SIZE];
    int lid = get_local_id(0);
    int g = get_group_id(0);
    int stride = get_num_groups(0) * WG_SIZE;
    float acc = 0.0f;
    for (int r = g * WG_SIZE + lid; r < N; r += stride) {
        __global const float* xr = logits + lOff + r * K;
        float best = xr[0];
        int bestK = 0;
        for (int k = 1; k < K; k++) {
            if (swiftcnn_greater(xr[k], best)) { best = xr[k]; bestK = k; }
        }
        acc += (bestK == labels[yOff + r]) ? 1.0f : 0.0f;
    }
    buf[lid] = acc;
    swiftcnn_local_sum(buf, lid);
    if (lid == 0) partials[pOff + g] = accumulate ? partials[pOff + g] + buf[0] : buf[0];
}
