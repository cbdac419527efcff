// batchnorm.cl — BatchNorm over axis 1 of (N, C, S) tensors (S = product of the spatial dims).
//
// Statistics are per channel over M = N*S elements, in two launches:
//   1. *Partial: work-group (k, c) reduces chunk k of channel c — the flattened (n, s) range
//      [k*chunkLen, min((k+1)*chunkLen, M)) — in local memory (fixed-order tree).
//      Launch: 2-D, global (chunks*WG_SIZE, C), local (WG_SIZE, 1).
//   2. *Finalize: one work-item per channel combines the chunks in ascending order.
//      Launch: 1-D over C.
// Variance is numerically stable: each chunk is two-pass (mean, then squared deviations from it)
// and chunks merge with Chan et al.'s pairwise update — no E[x^2] - E[x]^2 cancellation.
// Elementwise passes: 1-D over total = N*C*S. Every tensor comes as (buffer, offset).

// partials[(c*chunks + k)*2 + 0] = chunk mean, [.. + 1] = chunk sum of squared deviations.
__kernel void batchNormStatsPartial(__global const float* x, int xOff, __global float* partials, int pOff,
                                    int N, int C, int S, int chunkLen) {
    __local float buf[WG_SIZE];
    int lid = get_local_id(0);
    int k = get_group_id(0);
    int c = get_group_id(1);
    int chunks = get_num_groups(0);
    int M = N * S;
    int start = k * chunkLen;
    int end = min(start + chunkLen, M);
    float acc = 0.0f;
    for (int j = start + lid; j < end; j += WG_SIZE) {
        int n = j / S;
        acc += x[xOff + (n * C + c) * S + (j - n * S)];
    }
    buf[lid] = acc;
    swiftcnn_local_sum(buf, lid);
    float mean = buf[0] / (float)(end - start);
    barrier(CLK_LOCAL_MEM_FENCE);   // everyone has read buf[0] before it is overwritten
    float m2 = 0.0f;
    for (int j = start + lid; j < end; j += WG_SIZE) {
        int n = j / S;
        float d = x[xOff + (n * C + c) * S + (j - n * S)] - mean;
        m2 += d * d;
    }
    buf[lid] = m2;
    swiftcnn_local_sum(buf, lid);
    if (lid == 0) {
        partials[pOff + (c * chunks + k) * 2] = mean;
        partials[pOff + (c * chunks + k) * 2 + 1] = buf[0];
    }
}

// Merges the chunks of channel c: saveMean = mean, saveInvStd = 1/sqrt(var + eps) with the biased
// variance; running stats as PyTorch: r = (1 - momentum)*r + momentum*stat (unbiased variance).
__kernel void batchNormStatsFinalize(__global const float* partials, int pOff,
                                     __global float* saveMean, int smOff, __global float* saveInvStd, int siOff,
                                     __global float* runningMean, int rmOff, __global float* runningVar, int rvOff,
                                     int C, int chunks, int chunkLen, int M, float momentum, float eps) {
    int c = get_global_id(0);
    if (c >= C) return;
    float n = 0.0f, mean = 0.0f, m2 = 0.0f;
    for (int k = 0; k < chunks; k++) {
        float nb = (float)min(chunkLen, M - k * chunkLen);
        float meanB = partials[pOff + (c * chunks + k) * 2];
        float m2B = partials[pOff + (c * chunks + k) * 2 + 1];
        float total = n + nb;
        float delta = meanB - mean;
        mean = mean + delta * (nb / total);
        m2 = m2 + m2B + delta * delta * (n * nb / total);
        n = total;
    }
    float var = m2 / (float)M;
    float unbiased = M > 1 ? m2 / (float)(M - 1) : var;
    saveMean[smOff + c] = mean;
    saveInvStd[siOff + c] = 1.0f / sqrt(var + eps);
    runningMean[rmOff + c] = (1.0f - momentum) * runningMean[rmOff + c] + momentum * mean;
    runningVar[rvOff + c] = (1.0f - momentum) * runningVar[rvOff + c] + momentum * unbiased;
}

// The apply passes below launch over a 3-D NDRange (S / w, C, N): c and n come from the NDRange
// (no div/mod per element); w = 4 when vec4 (the launcher sets it when S and the offsets of x and y
// are multiples of 4: aligned float4 loads and stores), else w = 1. The float4 arithmetic is the
// scalar arithmetic per component, so both paths give the same bits.
inline float4 swiftcnn_bn_apply4(float4 xv, float mean, float invStd, float g, float b, int act) {
    float4 xhat = (xv - mean) * invStd;
    float4 z = g * xhat + b;
    return swiftcnn_activate4(z, act);
}

// One work-item's part of the apply pass over plane (n, c) (3-D NDRange: position, channel, image):
// 4 positions when vec4 (S and the offsets multiples of 4), else one.
inline void swiftcnn_bn_apply_plane(__global const float* xp, __global float* yp, int S,
                                    float mc, float is, float g, float b, int act, int vec4) {
    if (vec4) {
        int s = 4 * get_global_id(0);
        if (s < S) *(__global float4*)(yp + s) = swiftcnn_bn_apply4(*(__global const float4*)(xp + s), mc, is, g, b, act);
        return;
    }
    int s = get_global_id(0);
    if (s < S) yp[s] = swiftcnn_activate(g * ((xp[s] - mc) * is) + b, act);
}

// y = act(gamma[c] * (x - mean[c]) * invStd[c] + beta[c]) (training: the batch statistics).
__kernel void batchNormForwardTraining(__global const float* x, int xOff, __global float* y, int yOff,
                                       __global const float* mean, int mOff, __global const float* invStd, int iOff,
                                       __global const float* gamma, int gOff, __global const float* beta, int bOff,
                                       int C, int S, int act, int vec4) {
    int c = get_global_id(1), n = get_global_id(2);
    int base = (n * C + c) * S;
    float mc = mean[mOff + c], is = invStd[iOff + c], g = gamma[gOff + c], b = beta[bOff + c];
    swiftcnn_bn_apply_plane(x + xOff + base, y + yOff + base, S, mc, is, g, b, act, vec4);
}

// The same with the running statistics: invStd = 1/sqrt(runningVar + eps).
__kernel void batchNormForwardInference(__global const float* x, int xOff, __global float* y, int yOff,
                                        __global const float* runningMean, int mOff, __global const float* runningVar, int vOff,
                                        __global const float* gamma, int gOff, __global const float* beta, int bOff,
                                        int C, int S, float eps, int act, int vec4) {
    int c = get_global_id(1), n = get_global_id(2);
    int base = (n * C + c) * S;
    float is = 1.0f / sqrt(runningVar[vOff + c] + eps);
    float mc = runningMean[mOff + c], g = gamma[gOff + c], b = beta[bOff + c];
    swiftcnn_bn_apply_plane(x + xOff + base, y + yOff + base, S, mc, is, g, b, act, vec4);
}

// partials[(c*chunks + k)*2 + 0] = chunk sum of dy, [.. + 1] = chunk sum of dy * xhat.
__kernel void batchNormBackwardPartial(__global const float* x, int xOff, __global const float* dy, int dyOff,
                                       __global const float* mean, int mOff, __global const float* invStd, int iOff,
                                       __global float* partials, int pOff, int N, int C, int S, int chunkLen) {
    __local float bufDy[WG_SIZE];
    __local float bufDyX[WG_SIZE];
    int lid = get_local_id(0);
    int k = get_group_id(0);
    int c = get_group_id(1);
    int chunks = get_num_groups(0);
    int M = N * S;
    int start = k * chunkLen;
    int end = min(start + chunkLen, M);
    float mu = mean[mOff + c], is = invStd[iOff + c];
    float sDy = 0.0f, sDyX = 0.0f;
    for (int j = start + lid; j < end; j += WG_SIZE) {
        int n = j / S;
        int e = (n * C + c) * S + (j - n * S);
        float g = dy[dyOff + e];
        sDy += g;
        sDyX += g * ((x[xOff + e] - mu) * is);
    }
    bufDy[lid] = sDy;
    bufDyX[lid] = sDyX;
    swiftcnn_local_sum(bufDy, lid);
    swiftcnn_local_sum(bufDyX, lid);
    if (lid == 0) {
        partials[pOff + (c * chunks + k) * 2] = bufDy[0];
        partials[pOff + (c * chunks + k) * 2 + 1] = bufDyX[0];
    }
}

// dBeta[c] = sum(dy), dGamma[c] = sum(dy * xhat), chunks in ascending order.
__kernel void batchNormBackwardFinalize(__global const float* partials, int pOff,
                                        __global float* dGamma, int dgOff, __global float* dBeta, int dbOff,
                                        int C, int chunks) {
    int c = get_global_id(0);
    if (c >= C) return;
    float sDy = 0.0f, sDyX = 0.0f;
    for (int k = 0; k < chunks; k++) {
        sDy += partials[pOff + (c * chunks + k) * 2];
        sDyX += partials[pOff + (c * chunks + k) * 2 + 1];
    }
    dBeta[dbOff + c] = sDy;
    dGamma[dgOff + c] = sDyX;
}

// dx = gamma*invStd * (dy - dBeta/M - xhat * dGamma/M), with dBeta, dGamma from the finalize pass.
__kernel void batchNormBackwardData(__global const float* x, int xOff, __global const float* dy, int dyOff,
                                    __global const float* mean, int mOff, __global const float* invStd, int iOff,
                                    __global const float* gamma, int gOff,
                                    __global const float* dGamma, int dgOff, __global const float* dBeta, int dbOff,
                                    __global float* dx, int dxOff, int C, int S, int total, int M) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int c = (idx / S) % C;
    float is = invStd[iOff + c];
    float xhat = (x[xOff + idx] - mean[mOff + c]) * is;
    float meanDy = dBeta[dbOff + c] / (float)M;
    float meanDyX = dGamma[dgOff + c] / (float)M;
    dx[dxOff + idx] = gamma[gOff + c] * is * (dy[dyOff + idx] - meanDy - xhat * meanDyX);
}

// ---------------------------------------------------------------------------------------------
// Fused BatchNorm block (training): BatchNorm + activation + dropout + max pooling forward, and
// its whole backward chain, each ONE launch: one work-group per channel (global (C*WG_SIZE),
// local WG_SIZE), which owns all N*S values of its channel, so the statistics, the running
// statistics and the apply pass need no second launch and no cross-group combine.
// - Statistics in one pass over x: shifted sums around the channel's first value K,
//   sum(x - K) and sum((x - K)^2); var = E[(x-K)^2] - E[x-K]^2 stays accurate while K is a
//   sample of the channel (no cancellation of two large sums as with raw E[x^2] - E[x]^2).
// - The dropout mask is regenerated from the counter RNG at the BatchNorm output's flat index
//   (the same mask dropoutForward draws with the same key); nothing is stored.
// - Backward: the pooled gradient is gathered through the argmax, times the mask, times the
//   ReLU mask (the pre-activation recomputed from x and the saved statistics), reduced to
//   sum(g) and sum(g * xhat) in the same pass; a second pass over the channel writes dx and
//   reduces it to the bias gradient of the layer before the BatchNorm.
// Channel loops walk the flat (n, s) range of the channel with a carried (n, s) pair: no
// per-element division or modulo.
// ---------------------------------------------------------------------------------------------

// The first (n, s) of work-item lid, and the step WG_SIZE = dn*S + ds, for a channel loop.
#define BN_CHANNEL_LOOP_BEGIN(S) { \
    int n_ = lid / (S), s_ = lid - n_ * (S); \
    int dn_ = WG_SIZE / (S), ds_ = WG_SIZE - dn_ * (S); \
    for (; n_ < N; s_ += ds_, n_ += dn_ + (s_ >= (S) ? 1 : 0), s_ -= (s_ >= (S) ? (S) : 0)) {
#define BN_CHANNEL_LOOP_END } }

inline float swiftcnn_bn_mask(int drop, uint key, float p, float scale, int index) {
    return drop ? (swiftcnn_uniform(key, (uint)index) >= p ? scale : 0.0f) : 1.0f;
}

__kernel void batchNormBlockForward(__global const float* x, int xOff, __global float* y, int yOff,
                                    __global int* argmax, int aOff,
                                    __global const float* gamma, int gOff, __global const float* beta, int bOff,
                                    __global float* runningMean, int rmOff, __global float* runningVar, int rvOff,
                                    __global float* saveMean, int smOff, __global float* saveInvStd, int siOff,
                                    int N, int C, int S, float momentum, float eps, int act,
                                    int drop, uint key, float p, float scale,
                                    int pool, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW) {
    __local float bufA[WG_SIZE];
    __local float bufB[WG_SIZE];
    int lid = get_local_id(0);
    int c = get_group_id(0);
    int M = N * S;
    __global const float* xc = x + xOff + c * S;   // plane (n, c) starts at xc + n*C*S
    int plane = C * S;
    float K = xc[0];
    float s1 = 0.0f, s2 = 0.0f;
    BN_CHANNEL_LOOP_BEGIN(S)
        float d = xc[n_ * plane + s_] - K;
        s1 += d;
        s2 += d * d;
    BN_CHANNEL_LOOP_END
    bufA[lid] = s1;
    bufB[lid] = s2;
    swiftcnn_local_sum(bufA, lid);
    swiftcnn_local_sum(bufB, lid);
    float dm = bufA[0] / (float)M;
    float mean = K + dm;
    float var = max(bufB[0] / (float)M - dm * dm, 0.0f);
    float is = 1.0f / sqrt(var + eps);
    if (lid == 0) {
        float unbiased = M > 1 ? var * ((float)M / (float)(M - 1)) : var;
        saveMean[smOff + c] = mean;
        saveInvStd[siOff + c] = is;
        runningMean[rmOff + c] = (1.0f - momentum) * runningMean[rmOff + c] + momentum * mean;
        runningVar[rvOff + c] = (1.0f - momentum) * runningVar[rvOff + c] + momentum * unbiased;
    }
    float g = gamma[gOff + c], b = beta[bOff + c];
    if (!pool) {
        BN_CHANNEL_LOOP_BEGIN(S)
            int e = n_ * plane + c * S + s_;
            float z = swiftcnn_activate(g * ((x[xOff + e] - mean) * is) + b, act);
            y[yOff + e] = z * swiftcnn_bn_mask(drop, key, p, scale, e);
        BN_CHANNEL_LOOP_END
        return;
    }
    // Max pooling: one work-item per pooled output (n, oh, ow) of the channel, its window's values
    // computed on the fly; first maximum in row-major window order, padding never wins.
    int OS = OH * OW;
    for (int q = lid; q < N * OS; q += WG_SIZE) {
        int n = q / OS;
        int r = q - n * OS;
        int oh = r / OW;
        int ow = r - oh * OW;
        int h0 = oh * SH - PH, w0 = ow * SW - PW;
        int base = (n * C + c) * S;
        float best = 0.0f;
        int bestIdx = -1;
        for (int i = 0; i < KH; i++) {
            int h = h0 + i;
            if (h < 0 || h >= H) continue;
            for (int j = 0; j < KW; j++) {
                int w = w0 + j;
                if (w < 0 || w >= W) continue;
                int e = base + h * W + w;
                float z = swiftcnn_activate(g * ((x[xOff + e] - mean) * is) + b, act) * swiftcnn_bn_mask(drop, key, p, scale, e);
                if (bestIdx < 0 || swiftcnn_greater(z, best)) { best = z; bestIdx = h * W + w; }
            }
        }
        int o = (n * C + c) * OS + r;
        y[yOff + o] = best;
        argmax[aOff + o] = bestIdx;
    }
}

// dx = gamma*invStd * (g - sum(g)/M - xhat * sum(g*xhat)/M), dGamma = sum(g*xhat), dBeta = sum(g),
// dBias = sum(dx) (when hasBias), with g the gradient at the BatchNorm output (see above). dx holds
// g between the two passes; each work-item reads back only what it wrote itself.
__kernel void batchNormBlockBackward(__global const float* x, int xOff, __global const float* dy, int dyOff,
                                     __global const float* gamma, int gOff, __global const float* beta, int bOff,
                                     __global const float* mean, int mOff, __global const float* invStd, int iOff,
                                     __global const int* argmax, int aOff,
                                     __global float* dx, int dxOff, __global float* dGamma, int dgOff, __global float* dBeta, int dbOff,
                                     __global float* dBias, int dBiasOff, int hasBias,
                                     int N, int C, int S, int act, int drop, uint key, float p, float scale,
                                     int pool, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW, int OH, int OW) {
    __local float bufA[WG_SIZE];
    __local float bufB[WG_SIZE];
    int lid = get_local_id(0);
    int c = get_group_id(0);
    int M = N * S;
    int plane = C * S;
    int OS = OH * OW;
    float mu = mean[mOff + c], is = invStd[iOff + c];
    float gm = gamma[gOff + c], bt = beta[bOff + c];
    float sG = 0.0f, sGX = 0.0f;
    BN_CHANNEL_LOOP_BEGIN(S)
        int e = n_ * plane + c * S + s_;
        float grad;
        if (pool) {
            int h = s_ / W;
            int w = s_ - h * W;
            int2 rh = swiftcnn_covering(h, KH, SH, PH, OH);
            int2 rw = swiftcnn_covering(w, KW, SW, PW, OW);
            int obase = (n_ * C + c) * OS;
            grad = 0.0f;
            for (int oh = rh.x; oh <= rh.y; oh++)
                for (int ow = rw.x; ow <= rw.y; ow++) {
                    int o = obase + oh * OW + ow;
                    if (argmax[aOff + o] == s_) grad += dy[dyOff + o];
                }
        } else {
            grad = dy[dyOff + e];
        }
        grad *= swiftcnn_bn_mask(drop, key, p, scale, e);
        float xhat = (x[xOff + e] - mu) * is;
        if (act == ACT_RELU && !(swiftcnn_relu(gm * xhat + bt) > 0.0f)) grad = 0.0f;
        dx[dxOff + e] = grad;
        sG += grad;
        sGX += grad * xhat;
    BN_CHANNEL_LOOP_END
    bufA[lid] = sG;
    bufB[lid] = sGX;
    swiftcnn_local_sum(bufA, lid);
    swiftcnn_local_sum(bufB, lid);
    float sumG = bufA[0], sumGX = bufB[0];
    float meanG = sumG / (float)M, meanGX = sumGX / (float)M;
    float k = gm * is;
    float sD = 0.0f;
    BN_CHANNEL_LOOP_BEGIN(S)
        int e = n_ * plane + c * S + s_;
        float xhat = (x[xOff + e] - mu) * is;
        float v = k * (dx[dxOff + e] - meanG - xhat * meanGX);
        dx[dxOff + e] = v;
        sD += v;
    BN_CHANNEL_LOOP_END
    if (hasBias) {
        barrier(CLK_LOCAL_MEM_FENCE);   // everyone has read bufA[0] before it is overwritten
        bufA[lid] = sD;
        swiftcnn_local_sum(bufA, lid);
    }
    if (lid == 0) {
        dGamma[dgOff + c] = sumGX;
        dBeta[dbOff + c] = sumG;
        if (hasBias) dBias[dBiasOff + c] = bufA[0];
    }
}
