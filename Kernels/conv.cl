// conv.cl — convolution helpers: im2col / col2im (the GEMM itself is CLBlast's), the forward
// epilogue (GEMM result -> NCHW with bias and activation), the output-gradient reorder for the
// backward GEMMs, bias add with a fused activation and the bias gradient.
//
// Layouts: x (N, C, H, W); y / dy (N, Cout, S) with S = P = OH*OW. Columns: row r = (c*KH + i)*KW + j,
// image n's column p = oh*OW + ow at cols[n*imageStride + r*rowStride + p]: the primitive's
// (N, K, P) layout has imageStride K*P, rowStride P; the convolution launchers' (K, N*P) layout
// (column n*P + p, one GEMM for the whole chunk) has imageStride P, rowStride N*P.
// Every tensor comes as (buffer, offset). Deterministic: col2im is a gather (no atomics), sums run
// in a fixed order.

// cols[n, (c,i,j), (oh,ow)] = x[n, c, oh*SH - PH + i, ow*SW - PW + j], 0 outside the image.
// Launch: 1-D over total = N * C * OH*OW: one work-item per (image, channel, output position)
// writes that position's KH*KW column entries (rows (c,i,j), rowStride apart; neighbouring
// work-items write neighbouring columns, so writes stay coalesced). Index arithmetic is done
// once per work-item, not once per element.
__kernel void im2col(__global const float* x, int xOff, __global float* cols, int colsOff,
                     int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                     int OH, int OW, int rowStride, int imageStride, int total) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int P = OH * OW;
    int p = idx % P;
    int nc = idx / P;                        // n*C + c
    int n = nc / C;
    int c = nc - n * C;
    int h0 = (p / OW) * SH - PH;
    int w0 = (p % OW) * SW - PW;
    __global const float* xp = x + xOff + nc * H * W;
    __global float* out = cols + colsOff + n * imageStride + c * KH * KW * rowStride + p;
    for (int i = 0; i < KH; i++) {
        int h = h0 + i;
        bool rowInside = h >= 0 && h < H;
        for (int j = 0; j < KW; j++) {
            int w = w0 + j;
            out[(i * KW + j) * rowStride] = (rowInside && w >= 0 && w < W) ? xp[h * W + w] : 0.0f;
        }
    }
}

// The adjoint of im2col, as a gather: x[n, c, h, w] = sum over the (i, j) whose window position
// (oh, ow) covers (h, w), in ascending (i, j) order — the order the reference's scatter adds in.
// Launch: 1-D over total = N*C*H*W, one work-item per input element. Overwrites x.
__kernel void col2im(__global const float* cols, int colsOff, __global float* x, int xOff,
                     int C, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                     int OH, int OW, int rowStride, int imageStride, int total) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int w = idx % W;
    int h = (idx / W) % H;
    int c = (idx / (H * W)) % C;
    int n = idx / (C * H * W);
    __global const float* cn = cols + colsOff + n * imageStride;
    float acc = 0.0f;
    for (int i = 0; i < KH; i++) {
        int th = h + PH - i;
        if (th < 0 || th % SH != 0) continue;
        int oh = th / SH;
        if (oh >= OH) continue;
        for (int j = 0; j < KW; j++) {
            int tw = w + PW - j;
            if (tw < 0 || tw % SW != 0) continue;
            int ow = tw / SW;
            if (ow >= OW) continue;
            acc += cn[((c * KH + i) * KW + j) * rowStride + oh * OW + ow];
        }
    }
    x[xOff + idx] = acc;
}


// The forward epilogue of one chunk of N images: y[n, c, p] = act(ym[c, n*P + p] + bias[c]) —
// the GEMM's (Cout, N*P) result reordered into NCHW, with the bias (hasBias) and the activation
// fused (the same float operations, in the same order, as biasAdd). Launch: 3-D over
// (P / w, C, N), so c and n come from the NDRange (no div/mod per element): w = 4 when vec4 (the
// launcher sets it when P, ymOff and yOff are multiples of 4: aligned float4 loads and stores of a
// run of 4 positions), else w = 1. Runs of P are contiguous in both layouts.
__kernel void convForwardEpilogue(__global const float* ym, int ymOff, __global float* y, int yOff,
                                  __global const float* bias, int bOff, int hasBias,
                                  int N, int C, int P, int act, int vec4) {
    int c = get_global_id(1), n = get_global_id(2);
    __global const float* src = ym + ymOff + c * (N * P) + n * P;
    __global float* dst = y + yOff + (n * C + c) * P;
    float b = hasBias ? bias[bOff + c] : 0.0f;
    if (vec4) {
        int p = 4 * get_global_id(0);
        if (p >= P) return;
        float4 v = *(__global const float4*)(src + p);
        if (hasBias) v += b;
        *(__global float4*)(dst + p) = swiftcnn_activate4(v, act);
        return;
    }
    int p = get_global_id(0);
    if (p >= P) return;
    float v = src[p];
    if (hasBias) v += b;
    dst[p] = swiftcnn_activate(v, act);
}

// The output gradients of one chunk of N images as the backward GEMMs' operand:
// dym[c, n*P + p] = dy[n, c, p]. Launch: 3-D over (P / w, C, N) as convForwardEpilogue (w = 4 when
// vec4: P, dyOff and dymOff multiples of 4), no div/mod per element.
__kernel void convOutputGradColumns(__global const float* dy, int dyOff, __global float* dym, int dymOff,
                                    int N, int C, int P, int vec4) {
    int c = get_global_id(1), n = get_global_id(2);
    __global const float* src = dy + dyOff + (n * C + c) * P;
    __global float* dst = dym + dymOff + c * (N * P) + n * P;
    if (vec4) {
        int p = 4 * get_global_id(0);
        if (p >= P) return;
        *(__global float4*)(dst + p) = *(__global const float4*)(src + p);
        return;
    }
    int p = get_global_id(0);
    if (p >= P) return;
    dst[p] = src[p];
}

// y = act(y + bias[c]) in place. y: (N, C, S). Launch: 1-D over total = N*C*S.
__kernel void biasAdd(__global float* y, int yOff, __global const float* bias, int bOff,
                      int C, int S, int total, int act) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int c = (idx / S) % C;
    y[yOff + idx] = swiftcnn_activate(y[yOff + idx] + bias[bOff + c], act);
}

// y = act(y + bias[c]) * mask in place: biasAdd's operations, then dropout's mask regenerated from
// the counter RNG at the flat index (drop == 0: no dropout). y: (N, C, S).
// Launch: 2-D, global (C*S, N): the channel is i / S, no per-element modulo.
__kernel void biasActivationDropout(__global float* y, int yOff, __global const float* bias, int bOff,
                                    int N, int C, int S, int act, int drop, uint key, float p, float scale) {
    int i = get_global_id(0);
    int n = get_global_id(1);
    if (i >= C * S || n >= N) return;
    int idx = n * C * S + i;
    float v = swiftcnn_activate(y[yOff + idx] + bias[bOff + i / S], act);
    if (drop) v = v * (swiftcnn_uniform(key, (uint)idx) >= p ? scale : 0.0f);
    y[yOff + idx] = v;
}

// Its backward in place: dy = dy * mask, zero where the forward output y is not > 0 (ReLU);
// dBias[c] = the sum of the result over (N, S) — the bias gradient in the same pass.
// Launch: one work-group of WG_SIZE per channel (global C*WG_SIZE, local WG_SIZE).
__kernel void biasActivationDropoutBackward(__global const float* y, int yOff, __global float* dy, int dyOff,
                                            __global float* dBias, int dbOff, int N, int C, int S, int act,
                                            int drop, uint key, float p, float scale) {
    __local float buf[WG_SIZE];
    int lid = get_local_id(0);
    int c = get_group_id(0);
    int M = N * S;
    float acc = 0.0f;
    for (int j = lid; j < M; j += WG_SIZE) {
        int n = j / S;
        int e = (n * C + c) * S + (j - n * S);
        float g = dy[dyOff + e];
        if (drop) g = g * (swiftcnn_uniform(key, (uint)e) >= p ? scale : 0.0f);
        if (act == ACT_RELU && !(y[yOff + e] > 0.0f)) g = 0.0f;
        dy[dyOff + e] = g;
        acc += g;
    }
    buf[lid] = acc;
    swiftcnn_local_sum(buf, lid);
    if (lid == 0) dBias[dbOff + c] = buf[0];
}

// Partial bias gradients: partials[c * chunks + k] = sum of dy[:, c, :] over the flattened
// (n, s) range [k*chunkLen, min((k+1)*chunkLen, N*S)).
// Launch: 2-D, global (chunks*WG_SIZE, C), local (WG_SIZE, 1): work-group (k, c).
__kernel void biasGradPartial(__global const float* dy, int dyOff, __global float* partials, int pOff,
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
        acc += dy[dyOff + (n * C + c) * S + (j - n * S)];
    }
    buf[lid] = acc;
    swiftcnn_local_sum(buf, lid);
    if (lid == 0) partials[pOff + c * chunks + k] = buf[0];
}

// dBias[c] = sum of partials[c * chunks + 0 .. chunks) in order. Launch: 1-D over C.
__kernel void biasGradFinalize(__global const float* partials, int pOff, __global float* dBias, int dbOff,
                               int C, int chunks) {
    int c = get_global_id(0);
    if (c >= C) return;
    float acc = 0.0f;
    for (int k = 0; k < chunks; k++) acc += partials[pOff + c * chunks + k];
    dBias[dbOff + c] = acc;
}
