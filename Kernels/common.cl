// common.cl — helpers shared by every SwiftCNN kernel file (prepended to each program).
//
// Conventions of every kernel:
// - float32 tensors, NCHW images / row-major matrices; each tensor argument comes as a pair
//   (__global T* buf, int bufOff): element i of the tensor is buf[bufOff + i] (views have offsets).
// - Sizes and indices are int (the launcher rejects tensors over 2^31 elements).
// - 1-D launches are rounded up to whole work-groups: kernels check `i < n`.
// - Local-memory reductions run in work-groups of exactly WG_SIZE work-items (a power of two)
//   and sum in a fixed order, so results are deterministic run to run.
//
// Tunables (-D, with defaults so the file compiles standalone):
//   WG_SIZE   work-group size of the local-memory reductions (power of two), default 256.

#ifndef WG_SIZE
#define WG_SIZE 256
#endif

// No a*b+c -> fma contraction: results then round like the Swift reference, which never contracts.
#pragma OPENCL FP_CONTRACT OFF

// Counter-based RNG: must match CNNCore/RNG.swift `CounterRNG` bit for bit.
inline uint swiftcnn_hash32(uint x) {
    x ^= x >> 16; x *= 0x7feb352dU; x ^= x >> 15; x *= 0x846ca68bU; x ^= x >> 16;
    return x;
}
inline float swiftcnn_uniform(uint key, uint index) {
    uint h = swiftcnn_hash32(swiftcnn_hash32((index * 0x9e3779b1U) ^ key) + key);
    return (float)(h >> 8) * (1.0f / 16777216.0f);
}

// Tree sum of buf[0 .. WG_SIZE) into buf[0], in a fixed order. Every work-item of the group
// must call it (it contains barriers); the caller stores its own value in buf[lid] first.
inline void swiftcnn_local_sum(__local float* buf, int lid) {
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = WG_SIZE / 2; s > 0; s >>= 1) {
        if (lid < s) buf[lid] += buf[lid + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

// Activation codes passed by the launchers (CNNCore.Activation).
#define ACT_IDENTITY 0
#define ACT_RELU 1
// ReLU as the reference: v if v > 0, NaN stays NaN, everything else (-0 too) becomes +0.
inline float swiftcnn_relu(float v) { return (v > 0.0f || isnan(v)) ? v : 0.0f; }
inline float swiftcnn_activate(float v, int act) { return act == ACT_RELU ? swiftcnn_relu(v) : v; }
// The same per component of a float4, branch-free (same results as swiftcnn_relu per component).
inline float4 swiftcnn_relu4(float4 v) { return select((float4)(0.0f), v, (v > 0.0f) | isnan(v)); }
inline float4 swiftcnn_activate4(float4 v, int act) { return act == ACT_RELU ? swiftcnn_relu4(v) : v; }

// The order max pooling and argmax use: v beats the current best b when b is not NaN and v is
// larger or NaN (the first NaN wins, as PyTorch); ties keep the earlier element.
inline bool swiftcnn_greater(float v, float b) { return !isnan(b) && (v > b || isnan(v)); }

// Pooling: the first and last output index along one axis whose window (size K, stride S, padding P,
// O outputs) covers input position `pos` (pooling.cl and the fused BatchNorm block's backward).
inline int2 swiftcnn_covering(int pos, int K, int S, int P, int O) {
    int lo = pos + P - K + 1;
    int first = lo <= 0 ? 0 : (lo + S - 1) / S;
    int last = min((pos + P) / S, O - 1);
    return (int2)(first, last);
}
