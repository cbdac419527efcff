import CNNCore

/// The layers a training-mode BatchNorm runs as ONE fused primitive (`Backend.batchNormBlockForwardTraining`
/// and `batchNormBlockBackward`): the (already fused) ReLU after it, then a Dropout, then a
/// non-global MaxPool2d — each optional, in that order — and the bias gradient of a Conv2d right
/// before it. `Sequential` finds them when it is built; the absorbed Dropout and MaxPool2d pass
/// tensors through in training (and work as usual in eval mode, where BatchNorm uses the unfused
/// inference op), the Conv2d skips its bias gradient. Module names and indices do not change, so
/// state dicts and the PyTorch exchange are as before.
///
/// Likewise a Linear with a bias runs bias + ReLU + Dropout as `biasActivationDropoutForward` and its
/// backward (with the bias gradient) as `biasActivationDropoutBackward`.
///
/// `SWIFTCNN_UNFUSED=1` turns the fusion off (the unfused layer chain; for comparisons; see `Fusion`).
struct BatchNormBlock {
    var dropout: Dropout?
    var pool: Pool2d?
    var conv: Conv2d?


    /// The tail for a batch whose BatchNorm input is x.
    func tail(activation: Activation, x: Shape, stepSeed: UInt64) throws -> BatchNormTail {
        let drop = dropout?.effectiveProbability ?? 0
        return BatchNormTail(activation: activation, dropout: drop,
                             dropoutSeed: drop > 0 ? dropout!.seed(forStep: stepSeed) : 0,
                             pool: try pool?.geometry(batch: x[0], input: perSampleShape(x)))
    }
}

extension Sequential {
    /// Marks every BatchNorm with what follows it as a fused block (after `fuseActivations`).
    func fuseBatchNormBlocks() {
        guard Fusion.enabled else { return }
        for i in children.indices {
            guard let bn = children[i].layer as? BatchNorm, bn.block == nil, bn.sync == nil else { continue }
            var j = i + 1
            if j < children.count, let r = children[j].layer as? ReLU, r.fused { j += 1 }
            var block = BatchNormBlock()
            if j < children.count, let d = children[j].layer as? Dropout {
                block.dropout = d
                d.fusedIntoPrevious = true
                j += 1
            }
            if bn.spatial, j < children.count, let p = children[j].layer as? Pool2d, p.kind == .max, !p.isGlobal {
                block.pool = p
                p.fusedIntoBatchNorm = true
            }
            if i > 0, let conv = children[i - 1].layer as? Conv2d, conv.hasBias, conv.fusedActivation == .identity {
                block.conv = conv
                conv.biasGradientFromNext = true
            }
            bn.block = block
        }
        // A Linear with a bias: a Dropout after it (and its fused ReLU) is applied with the bias in
        // one kernel, and the backward of all three is one kernel with the bias gradient.
        for i in children.indices {
            guard let fc = children[i].layer as? Linear, fc.hasBias, fc.fusedDropout == nil else { continue }
            var j = i + 1
            if j < children.count, let r = children[j].layer as? ReLU, r.fused { j += 1 }
            if j < children.count, let d = children[j].layer as? Dropout, !d.fusedIntoPrevious {
                fc.fusedDropout = d
                d.fusedIntoPrevious = true
            }
            fc.fusedBiasBackward = true
        }
    }
}

extension BatchNorm {
    /// Undoes `fuseBatchNormBlocks` for this layer (a synchronised BatchNorm computes its statistics
    /// across ranks, so it runs the unfused chain): its Dropout, MaxPool2d and the Conv2d's bias
    /// gradient go back to their own layers.
    func unfuseBlock() {
        guard let b = block else { return }
        b.dropout?.fusedIntoPrevious = false
        b.pool?.fusedIntoBatchNorm = false
        b.conv?.biasGradientFromNext = false
        block = nil
    }
}
