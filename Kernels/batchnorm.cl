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

// y = act(gamma[c] * (x - mean[c]) * invStd[c] + beta[c]) (training: the batch statistics).
__kernel void batchNormForwardTraining(__global const float* x, int xOff, __global float* y, int yOff,
                                       __global const float* mean, int mOff, __global const float* invStd, int iOff,
                                       __global const float* gamma, int gOff, __global const float* beta, int bOff,
                                       int C, int S, int total, int act) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int c = (idx / S) % C;
    float xhat = (x[xOff + idx] - mean[mOff + c]) * invStd[iOff + c];
    y[yOff + idx] = swiftcnn_activate(gamma[gOff + c] * xhat + beta[bOff + c], act);
}

// The same with the running statistics: invStd = 1/sqrt(runningVar + eps).
__kernel void batchNormForwardInference(__global const float* x, int xOff, __global float* y, int yOff,
                                        __global const float* runningMean, int mOff, __global const float* runningVar, int vOff,
                                        __global const float* gamma, int gOff, __global const float* beta, int bOff,
                                        int C, int S, int total, float eps, int act) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int c = (idx / S) % C;
    float invStd = 1.0f / sqrt(runningVar[vOff + c] + eps);
    float xhat = (x[xOff + idx] - runningMean[mOff + c]) * invStd;
    y[yOff + idx] = swiftcnn_activate(gamma[gOff + c] * xhat + beta[bOff + c], act);
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
