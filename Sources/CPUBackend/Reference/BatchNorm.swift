import CNNCore

// Reference BatchNorm over axis 1 of (N, C, S) tensors (S = product of the trailing dimensions:
// H*W for BatchNorm2d, 1 for BatchNorm1d). Per-channel statistics are computed in Double with two
// passes (mean, then squared deviations) over the M = N*S values of the channel.

extension CPUBackend.Reference {
    /// Training-mode BatchNorm (PyTorch's `BatchNorm{1,2}d` in train mode).
    /// x, y: (N, C, S); gamma, beta, runningMean, runningVar, saveMean, saveInvStd: (C).
    ///
    /// For each channel c, over its M = N*S values:
    ///   mean = sum(x) / M,  var = sum((x - mean)^2) / M (biased, used to normalise),
    ///   invStd = 1 / sqrt(var + epsilon),
    ///   y = activation(gamma * (x - mean) * invStd + beta)   (computed in Double, rounded once),
    ///   saveMean = mean, saveInvStd = invStd                  (for `batchNormBackward`),
    ///   runningMean = (1 - momentum) * runningMean + momentum * mean,
    ///   runningVar  = (1 - momentum) * runningVar  + momentum * var * M / (M - 1)   (unbiased).
    ///
    /// M must be at least 2: with one value per channel the unbiased variance is 0/0 (PyTorch raises
    /// "Expected more than 1 value per channel when training"); `CPUBackend` throws before calling this.
    package static func batchNormForwardTraining<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, gamma: UnsafePointer<T>, beta: UnsafePointer<T>, y: UnsafeMutablePointer<T>,
        runningMean: UnsafeMutablePointer<T>, runningVar: UnsafeMutablePointer<T>,
        saveMean: UnsafeMutablePointer<T>, saveInvStd: UnsafeMutablePointer<T>,
        batch: Int, channels: Int, spatial: Int, momentum: T, epsilon: T, activation: Activation
    ) {
        let M = batch * spatial
        precondition(M >= 2, "batchNormForwardTraining: needs at least 2 values per channel, got N*S = \(M)")
        let mom = Double(momentum)
        for c in 0..<channels {
            var sum = 0.0
            forEachPlane(batch, channels, spatial, c) { off in for s in 0..<spatial { sum += Double(x[off + s]) } }
            let mean = sum / Double(M)
            var squares = 0.0
            forEachPlane(batch, channels, spatial, c) { off in
                for s in 0..<spatial { let d = Double(x[off + s]) - mean; squares += d * d }
            }
            let variance = squares / Double(M)
            let invStd = 1 / (variance + Double(epsilon)).squareRoot()
            let (gc, bc) = (Double(gamma[c]), Double(beta[c]))
            forEachPlane(batch, channels, spatial, c) { off in
                for s in 0..<spatial {
                    y[off + s] = T(activate(gc * (Double(x[off + s]) - mean) * invStd + bc, activation))
                }
            }
            saveMean[c] = T(mean)
            saveInvStd[c] = T(invStd)
            runningMean[c] = T((1 - mom) * Double(runningMean[c]) + mom * mean)
            runningVar[c] = T((1 - mom) * Double(runningVar[c]) + mom * variance * Double(M) / Double(M - 1))
        }
    }

    /// Inference-mode BatchNorm. x, y: (N, C, S); gamma, beta, runningMean, runningVar: (C).
    /// y = activation(gamma * (x - runningMean) / sqrt(runningVar + epsilon) + beta), in Double, rounded once.
    package static func batchNormForwardInference<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, gamma: UnsafePointer<T>, beta: UnsafePointer<T>,
        runningMean: UnsafePointer<T>, runningVar: UnsafePointer<T>, y: UnsafeMutablePointer<T>,
        batch: Int, channels: Int, spatial: Int, epsilon: T, activation: Activation
    ) {
        for c in 0..<channels {
            let mean = Double(runningMean[c])
            let invStd = 1 / (Double(runningVar[c]) + Double(epsilon)).squareRoot()
            let (gc, bc) = (Double(gamma[c]), Double(beta[c]))
            forEachPlane(batch, channels, spatial, c) { off in
                for s in 0..<spatial {
                    y[off + s] = T(activate(gc * (Double(x[off + s]) - mean) * invStd + bc, activation))
                }
            }
        }
    }

    /// Gradients of training-mode BatchNorm without activation (apply `reluBackward` first).
    /// x, dy, dx: (N, C, S); gamma, saveMean, saveInvStd, dGamma, dBeta: (C). Overwrites dx, dGamma, dBeta.
    /// With xhat = (x - saveMean) * saveInvStd and means over the channel's M = N*S values (in Double):
    ///   dx = gamma * invStd * (dy - mean(dy) - xhat * mean(dy * xhat)),
    ///   dGamma = sum(dy * xhat),  dBeta = sum(dy).
    package static func batchNormBackward<T: BinaryFloatingPoint>(
        x: UnsafePointer<T>, dy: UnsafePointer<T>, gamma: UnsafePointer<T>,
        saveMean: UnsafePointer<T>, saveInvStd: UnsafePointer<T>,
        dx: UnsafeMutablePointer<T>, dGamma: UnsafeMutablePointer<T>, dBeta: UnsafeMutablePointer<T>,
        batch: Int, channels: Int, spatial: Int
    ) {
        let M = Double(batch * spatial)
        for c in 0..<channels {
            let (mean, invStd) = (Double(saveMean[c]), Double(saveInvStd[c]))
            var sumDy = 0.0, sumDyXhat = 0.0
            forEachPlane(batch, channels, spatial, c) { off in
                for s in 0..<spatial {
                    let d = Double(dy[off + s])
                    sumDy += d
                    sumDyXhat += d * (Double(x[off + s]) - mean) * invStd
                }
            }
            let (meanDy, meanDyXhat) = (sumDy / M, sumDyXhat / M)
            let k = Double(gamma[c]) * invStd
            forEachPlane(batch, channels, spatial, c) { off in
                for s in 0..<spatial {
                    let xhat = (Double(x[off + s]) - mean) * invStd
                    dx[off + s] = T(k * (Double(dy[off + s]) - meanDy - xhat * meanDyXhat))
                }
            }
            dGamma[c] = T(sumDyXhat)
            dBeta[c] = T(sumDy)
        }
    }

    /// Calls `body` with the element offset of plane (n, c) of an (N, C, S) tensor, for n = 0..<N.
    @inline(__always)
    static func forEachPlane(_ batch: Int, _ channels: Int, _ spatial: Int, _ c: Int, _ body: (Int) -> Void) {
        for n in 0..<batch { body((n * channels + c) * spatial) }
    }
}
