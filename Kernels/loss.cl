// loss.cl — row-wise softmax and softmax cross-entropy (forward and gradient in one pass).
//
// Layout: logits / probabilities / dLogits (N, K) row-major; labels (N) int32; soft targets (N, K);
// losses (N). Every tensor comes as (buffer, offset).
// Launch: 1-D over N, one work-item per row (K is the class count, small for classifiers; each
// row is max, sum of exponentials, then one more pass — a fixed order, deterministic).
// Smoothing s: target = (1 - s) * t + s / K, with t the one-hot label or the soft target row.
// A label outside [0, K) yields a NaN loss and a NaN gradient row (the host cannot be told
// without a round-trip; the NaN surfaces in the loss the trainer reads).

// y = softmax(x) per row.
__kernel void softmax(__global const float* x, int xOff, __global float* y, int yOff, int N, int K) {
    int r = get_global_id(0);
    if (r >= N) return;
    __global const float* xr = x + xOff + r * K;
    __global float* yr = y + yOff + r * K;
    float m = xr[0];
    for (int k = 1; k < K; k++) m = fmax(m, xr[k]);
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += exp(xr[k] - m);
    for (int k = 0; k < K; k++) yr[k] = exp(xr[k] - m) / s;
}

// losses[r] = -sum_k target_k * log softmax_k; dLogits (if hasGrad) = gradScale * (softmax - target).
__kernel void softmaxCrossEntropyLabels(__global const float* logits, int lOff, __global const int* labels, int yOff,
                                        __global float* losses, int lsOff, __global float* dLogits, int dOff,
                                        int N, int K, float smoothing, float gradScale, int hasGrad) {
    int r = get_global_id(0);
    if (r >= N) return;
    __global const float* xr = logits + lOff + r * K;
    int label = labels[yOff + r];
    if (label < 0 || label >= K) {
        losses[lsOff + r] = NAN;
        if (hasGrad) for (int k = 0; k < K; k++) dLogits[dOff + r * K + k] = NAN;
        return;
    }
    float m = xr[0];
    for (int k = 1; k < K; k++) m = fmax(m, xr[k]);
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += exp(xr[k] - m);
    float logS = log(s);
    float offTarget = smoothing / (float)K;
    float loss = 0.0f;
    for (int k = 0; k < K; k++) {
        float t = (k == label ? 1.0f - smoothing : 0.0f) + offTarget;
        loss -= t * (xr[k] - m - logS);
        if (hasGrad) dLogits[dOff + r * K + k] = gradScale * (exp(xr[k] - m) / s - t);
    }
    losses[lsOff + r] = loss;
}

// The same with soft targets (N, K) (MixUp / CutMix).
__kernel void softmaxCrossEntropySoft(__global const float* logits, int lOff, __global const float* targets, int tOff,
                                      __global float* losses, int lsOff, __global float* dLogits, int dOff,
                                      int N, int K, float smoothing, float gradScale, int hasGrad) {
    int r = get_global_id(0);
    if (r >= N) return;
    __global const float* xr = logits + lOff + r * K;
    __global const float* tr = targets + tOff + r * K;
    float m = xr[0];
    for (int k = 1; k < K; k++) m = fmax(m, xr[k]);
    float s = 0.0f;
    for (int k = 0; k < K; k++) s += exp(xr[k] - m);
    float logS = log(s);
    float offTarget = smoothing / (float)K;
    float loss = 0.0f;
    for (int k = 0; k < K; k++) {
        float t = (1.0f - smoothing) * tr[k] + offTarget;
        loss -= t * (xr[k] - m - logS);
        if (hasGrad) dLogits[dOff + r * K + k] = gradScale * (exp(xr[k] - m) / s - t);
    }
    losses[lsOff + r] = loss;
}

// softmaxCrossEntropyLabels / Soft for all N rows in ONE work-group, then lossSum[0] += the sum of
// the losses and correctSum[0] += the rows whose first-maximum logit equals labels[r] (as sum and
// countCorrect: work-item lid takes rows lid, lid + WG_SIZE, ..., then a fixed-order tree).
// labels (N) int32 always (the count); soft targets (N, K) when soft == 1.
// Launch: global WG_SIZE, local WG_SIZE.
__kernel void softmaxCrossEntropyTotals(__global const float* logits, int lOff, __global const int* labels, int yOff,
                                        __global const float* targets, int tOff, int soft,
                                        __global float* losses, int lsOff, __global float* dLogits, int dOff,
                                        int N, int K, float smoothing, float gradScale, int hasGrad,
                                        __global float* lossSum, int sOff, __global float* correctSum, int cOff) {
    __local float bufL[WG_SIZE];
    __local float bufC[WG_SIZE];
    int lid = get_local_id(0);
    float accL = 0.0f, accC = 0.0f;
    for (int r = lid; r < N; r += WG_SIZE) {
        __global const float* xr = logits + lOff + r * K;
        int label = labels[yOff + r];
        float best = xr[0];
        int bestK = 0;
        for (int k = 1; k < K; k++) {
            if (swiftcnn_greater(xr[k], best)) { best = xr[k]; bestK = k; }
        }
        accC += (bestK == label) ? 1.0f : 0.0f;
        float loss;
        if (!soft && (label < 0 || label >= K)) {
            loss = NAN;
            if (hasGrad) for (int k = 0; k < K; k++) dLogits[dOff + r * K + k] = NAN;
        } else {
            float m = xr[0];
            for (int k = 1; k < K; k++) m = fmax(m, xr[k]);
            float s = 0.0f;
            for (int k = 0; k < K; k++) s += exp(xr[k] - m);
            float logS = log(s);
            float offTarget = smoothing / (float)K;
            loss = 0.0f;
            for (int k = 0; k < K; k++) {
                float t = soft ? (1.0f - smoothing) * targets[tOff + r * K + k] + offTarget
                               : (k == label ? 1.0f - smoothing : 0.0f) + offTarget;
                loss -= t * (xr[k] - m - logS);
                if (hasGrad) dLogits[dOff + r * K + k] = gradScale * (exp(xr[k] - m) / s - t);
            }
        }
        losses[lsOff + r] = loss;
        accL += loss;
    }
    bufL[lid] = accL;
    bufC[lid] = accC;
    swiftcnn_local_sum(bufL, lid);
    swiftcnn_local_sum(bufC, lid);
    if (lid == 0) {
        lossSum[sOff] = lossSum[sOff] + bufL[0];
        correctSum[cOff] = correctSum[cOff] + bufC[0];
    }
}
