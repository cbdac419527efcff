// lightweight.cl — the primitives of MobileNetV2, ShuffleNetV2 and the `fast` model: grouped /
// depthwise convolution (forward, backward data, backward filter), GELU and its gradient, channel
// shuffle and channel copy (split / concatenation).
//
// Layouts: x (N, Cin, H, W), y / dy (N, Cout, OH, OW), weight (Cout, Cin/G, KH, KW); cpg = Cin/G input
// and opg = Cout/G output channels per group. Every tensor comes as (buffer, offset). Launch: 1-D,
// one work-item per output element, global = total rounded up to the work-group size; every kernel
// checks idx < total. Deterministic: each output is one work-item's sum in a fixed order (no atomics).
// The grouped convolutions are direct loops: the channels per group are few (depthwise: one), so
// there is no GEMM to hand to CLBlast; the bias gradient is conv.cl's biasGrad.

// y[n, co, oh, ow] = act(bias[co] + sum_(c, i, j) w[co, c, i, j] * x[n, k*cpg + c, oh*SH - PH + i, ow*SW - PW + j]).
__kernel void groupedConvForward(__global const float* x, int xOff, __global const float* w, int wOff,
                                 __global const float* bias, int biasOff, int hasBias, __global float* y, int yOff,
                                 int Cin, int H, int W, int Cout, int KH, int KW, int SH, int SW, int PH, int PW,
                                 int OH, int OW, int cpg, int opg, int act, int total) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int ow = idx % OW;
    int t = idx / OW;
    int oh = t % OH;
    t /= OH;
    int co = t % Cout;
    int n = t / Cout;
    int k = co / opg;
    float acc = hasBias ? bias[biasOff + co] : 0.0f;
    for (int c = 0; c < cpg; c++) {
        __global const float* xp = x + xOff + (n * Cin + k * cpg + c) * H * W;
        __global const float* wp = w + wOff + (co * cpg + c) * KH * KW;
        for (int i = 0; i < KH; i++) {
            int ih = oh * SH - PH + i;
            if (ih < 0 || ih >= H) continue;
            for (int j = 0; j < KW; j++) {
                int iw = ow * SW - PW + j;
                if (iw < 0 || iw >= W) continue;
                acc += wp[i * KW + j] * xp[ih * W + iw];
            }
        }
    }
    y[yOff + idx] = swiftcnn_activate(acc, act);
}

// dx[n, ci, h, w] = sum over the group's output channels co and every (i, j) whose window reads (h, w)
// of dy[n, co, oh, ow] * w[co, ci - k*cpg, i, j].
__kernel void groupedConvBackwardData(__global const float* dy, int dyOff, __global const float* w, int wOff,
                                      __global float* dx, int dxOff,
                                      int Cin, int H, int W, int Cout, int KH, int KW, int SH, int SW, int PH, int PW,
                                      int OH, int OW, int cpg, int opg, int total) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int iw = idx % W;
    int t = idx / W;
    int ih = t % H;
    t /= H;
    int ci = t % Cin;
    int n = t / Cin;
    int k = ci / cpg, c = ci - k * cpg;
    float acc = 0.0f;
    for (int co = k * opg; co < (k + 1) * opg; co++) {
        __global const float* dyp = dy + dyOff + (n * Cout + co) * OH * OW;
        __global const float* wp = w + wOff + (co * cpg + c) * KH * KW;
        for (int i = 0; i < KH; i++) {
            int th = ih + PH - i;
            if (th < 0 || th % SH != 0) continue;
            int oh = th / SH;
            if (oh >= OH) continue;
            for (int j = 0; j < KW; j++) {
                int tw = iw + PW - j;
                if (tw < 0 || tw % SW != 0) continue;
                int ow = tw / SW;
                if (ow >= OW) continue;
                acc += dyp[oh * OW + ow] * wp[i * KW + j];
            }
        }
    }
    dx[dxOff + idx] = acc;
}

// dW[co, c, i, j] = sum over (n, oh, ow) of dy[n, co, oh, ow] * x[n, k*cpg + c, oh*SH - PH + i, ow*SW - PW + j]
// (each image's sum in its own float, added in image order).
__kernel void groupedConvBackwardFilter(__global const float* x, int xOff, __global const float* dy, int dyOff,
                                        __global float* dw, int dwOff,
                                        int N, int Cin, int H, int W, int Cout, int KH, int KW, int SH, int SW, int PH, int PW,
                                        int OH, int OW, int cpg, int opg, int total) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int j = idx % KW;
    int t = idx / KW;
    int i = t % KH;
    t /= KH;
    int c = t % cpg;
    int co = t / cpg;
    int k = co / opg;
    float acc = 0.0f;
    for (int n = 0; n < N; n++) {
        __global const float* xp = x + xOff + (n * Cin + k * cpg + c) * H * W;
        __global const float* dyp = dy + dyOff + (n * Cout + co) * OH * OW;
        float s = 0.0f;
        for (int oh = 0; oh < OH; oh++) {
            int ih = oh * SH - PH + i;
            if (ih < 0 || ih >= H) continue;
            for (int ow = 0; ow < OW; ow++) {
                int iw = ow * SW - PW + j;
                if (iw < 0 || iw >= W) continue;
                s += dyp[oh * OW + ow] * xp[ih * W + iw];
            }
        }
        acc += s;
    }
    dw[dwOff + idx] = acc;
}

// y = x * Phi(x), Phi(v) = erfc(-v / sqrt 2) / 2. y may alias x.
__kernel void gelu(__global const float* x, int xOff, __global float* y, int yOff, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    float v = x[xOff + i];
    y[yOff + i] = v * 0.5f * erfc(-v * 0.70710678f);
}

// dx = dy * (Phi(x) + x * phi(x)). dx may alias dy.
__kernel void geluBackward(__global const float* x, int xOff, __global const float* dy, int dyOff,
                           __global float* dx, int dxOff, int n) {
    int i = get_global_id(0);
    if (i >= n) return;
    float v = x[xOff + i];
    float d = 0.5f * erfc(-v * 0.70710678f) + v * 0.39894228f * exp(-0.5f * v * v);
    dx[dxOff + i] = dy[dyOff + i] * d;
}

// y[n, j*G + i, s] = x[n, i*K + j, s], K = C / G. One work-item per element of y.
__kernel void channelShuffle(__global const float* x, int xOff, __global float* y, int yOff,
                             int C, int S, int G, int total) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int s = idx % S;
    int t = idx / S;
    int cy = t % C;
    int n = t / C;
    int K = C / G;
    int j = cy / G, i = cy - j * G;
    y[yOff + idx] = x[xOff + (n * C + i * K + j) * S + s];
}

// dst[n, dc + c, s] = src[n, sc + c, s] for c < count. One work-item per copied element.
__kernel void copyChannels(__global const float* src, int srcOff, __global float* dst, int dstOff,
                           int Cs, int sc, int Cd, int dc, int count, int S, int total) {
    int idx = get_global_id(0);
    if (idx >= total) return;
    int s = idx % S;
    int t = idx / S;
    int c = t % count;
    int n = t / count;
    dst[dstOff + (n * Cd + dc + c) * S + s] = src[srcOff + (n * Cs + sc + c) * S + s];
}
