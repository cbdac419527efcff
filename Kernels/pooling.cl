// pooling.cl — max and average pooling, forward and backward.
//
// Layout: x / dx (N, C, H, W), y / dy / argmax (N, C, OH, OW); planes = N*C. Every tensor comes
// as (buffer, offset). Window of output (oh, ow): rows oh*SH - PH + [0, KH), columns
// ow*SW - PW + [0, KW). Backward passes are gathers (one work-item per input element, no atomics),
// summing the covering windows in ascending (oh, ow) order — the reference's scatter order.

// y = window max; argmax = h*W + w of the first maximum in row-major window order (padding never
// wins; a NaN beats numbers, see swiftcnn_greater). Launch: 1-D over planes*OH*OW.
__kernel void maxPool2DForward(__global const float* x, int xOff, __global float* y, int yOff,
                               __global int* argmax, int aOff,
                               int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                               int OH, int OW) {
    int idx = get_global_id(0);
    if (idx >= planes * OH * OW) return;
    int ow = idx % OW;
    int oh = (idx / OW) % OH;
    int plane = idx / (OH * OW);
    int h0 = oh * SH - PH, w0 = ow * SW - PW;
    __global const float* xp = x + xOff + plane * H * W;
    float best = 0.0f;
    int bestIdx = -1;
    for (int i = 0; i < KH; i++) {
        int h = h0 + i;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < KW; j++) {
            int w = w0 + j;
            if (w < 0 || w >= W) continue;
            float v = xp[h * W + w];
            if (bestIdx < 0 || swiftcnn_greater(v, best)) { best = v; bestIdx = h * W + w; }
        }
    }
    y[yOff + idx] = best;
    argmax[aOff + idx] = bestIdx;
}

// dx[plane, h, w] = sum of dy over the windows of the plane whose argmax is h*W + w. Overwrites dx.
// Launch: 1-D over planes*H*W.
__kernel void maxPool2DBackward(__global const float* dy, int dyOff, __global const int* argmax, int aOff,
                                __global float* dx, int dxOff,
                                int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                int OH, int OW) {
    int idx = get_global_id(0);
    if (idx >= planes * H * W) return;
    int w = idx % W;
    int h = (idx / W) % H;
    int plane = idx / (H * W);
    int2 rh = swiftcnn_covering(h, KH, SH, PH, OH);
    int2 rw = swiftcnn_covering(w, KW, SW, PW, OW);
    int target = h * W + w;
    int base = plane * OH * OW;
    float acc = 0.0f;
    for (int oh = rh.x; oh <= rh.y; oh++)
        for (int ow = rw.x; ow <= rw.y; ow++) {
            int o = base + oh * OW + ow;
            if (argmax[aOff + o] == target) acc += dy[dyOff + o];
        }
    dx[dxOff + idx] = acc;
}

// y = sum of the window / (KH*KW) (padded zeros count). Launch: 1-D over planes*OH*OW.
__kernel void avgPool2DForward(__global const float* x, int xOff, __global float* y, int yOff,
                               int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                               int OH, int OW) {
    int idx = get_global_id(0);
    if (idx >= planes * OH * OW) return;
    int ow = idx % OW;
    int oh = (idx / OW) % OH;
    int plane = idx / (OH * OW);
    int h0 = oh * SH - PH, w0 = ow * SW - PW;
    __global const float* xp = x + xOff + plane * H * W;
    float acc = 0.0f;
    for (int i = 0; i < KH; i++) {
        int h = h0 + i;
        if (h < 0 || h >= H) continue;
        for (int j = 0; j < KW; j++) {
            int w = w0 + j;
            if (w < 0 || w >= W) continue;
            acc += xp[h * W + w];
        }
    }
    y[yOff + idx] = acc / (float)(KH * KW);
}

// dx[plane, h, w] = sum over covering windows of dy / (KH*KW). Overwrites dx.
// Launch: 1-D over planes*H*W.
__kernel void avgPool2DBackward(__global const float* dy, int dyOff, __global float* dx, int dxOff,
                                int planes, int H, int W, int KH, int KW, int SH, int SW, int PH, int PW,
                                int OH, int OW) {
    int idx = get_global_id(0);
    if (idx >= planes * H * W) return;
    int w = idx % W;
    int h = (idx / W) % H;
    int plane = idx / (H * W);
    int2 rh = swiftcnn_covering(h, KH, SH, PH, OH);
    int2 rw = swiftcnn_covering(w, KW, SW, PW, OW);
    float area = (float)(KH * KW);
    int base = plane * OH * OW;
    float acc = 0.0f;
    for (int oh = rh.x; oh <= rh.y; oh++)
        for (int ow = rw.x; ow <= rw.y; ow++) acc += dy[dyOff + base + oh * OW + ow] / area;
    dx[dxOff + idx] = acc;
}
