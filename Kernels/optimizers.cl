// optimizers.cl — parameter updates over flat buffers (all parameters of a model in one launch).
//
// Layout: params, grads and optimizer state are flat float32 vectors of n elements, each as
// (buffer, offset). Launch: 1-D over n, one work-item per parameter.
// Semantics: PyTorch's torch.optim.SGD / Adam / AdamW (see CNNCore.SGDHyper, AdamHyper).

// g += wd*p; buf = momentum*buf + (1 - dampening)*g; g = nesterov ? g + momentum*buf : buf; p -= lr*g.
// Without a momentum buffer (useMomentum == 0): p -= lr*(grad + wd*p).
__kernel void sgdStep(__global float* p, int pOff, __global const float* g, int gOff,
                      __global float* buf, int bufOff, int n,
                      float lr, float momentum, float dampening, int nesterov, float weightDecay, int useMomentum) {
    int i = get_global_id(0);
    if (i >= n) return;
    float pv = p[pOff + i];
    float gv = g[gOff + i];
    if (weightDecay != 0.0f) gv = gv + weightDecay * pv;
    if (useMomentum) {
        float b = momentum * buf[bufOff + i] + (1.0f - dampening) * gv;
        buf[bufOff + i] = b;
        gv = nesterov ? gv + momentum * b : b;
    }
    p[pOff + i] = pv - lr * gv;
}

// Adam (decoupled == 0: g += wd*p) or AdamW (decoupled == 1: p *= 1 - lr*wd), then
// m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; p -= stepSize * m / (sqrt(v) / sqrtBc2 + eps)
// with stepSize = lr / (1 - b1^t) and sqrtBc2 = sqrt(1 - b2^t) computed on the host (in Double,
// rounded to float, as the reference).
__kernel void adamStep(__global float* p, int pOff, __global const float* g, int gOff,
                       __global float* m, int mOff, __global float* v, int vOff, int n,
                       float lr, float beta1, float beta2, float eps, float weightDecay, int decoupled,
                       float stepSize, float sqrtBc2) {
    int i = get_global_id(0);
    if (i >= n) return;
    float pv = p[pOff + i];
    float gv = g[gOff + i];
    if (weightDecay != 0.0f) {
        if (decoupled) pv = pv * (1.0f - lr * weightDecay);
        else gv = gv + weightDecay * pv;
    }
    float mv = beta1 * m[mOff + i] + (1.0f - beta1) * gv;
    float vv = beta2 * v[vOff + i] + (1.0f - beta2) * gv * gv;
    m[mOff + i] = mv;
    v[vOff + i] = vv;
    p[pOff + i] = pv - stepSize * (mv / (sqrt(vv) / sqrtBc2 + eps));   // PyTorch's addcdiv order
}
