import CNNCore
import Foundation

/// Learning-rate schedules. Epoch-level schedules are asked once per epoch (`epochEnd`), step-level
/// ones every step (`lr(step:)`); both are pure functions of their config plus the little state
/// they save in checkpoints, so `--resume` continues them exactly.
public enum ScheduleKind: String, Codable, Sendable, CaseIterable {
    case constant, plateau, cosine, onecycle, step
    /// Linear warmup from lr·warmupStart to lr over the first pctStart of the steps, then linear
    /// decay to lr·endFraction at the last step (airbench94's triangle: warmupStart 0.2, pctStart 0.23,
    /// endFraction 0.07).
    case triangle
}

public struct ScheduleConfig: Codable, Sendable, Equatable {
    public var kind: ScheduleKind = .constant
    /// ReduceLROnPlateau (on validation loss): factor, patience (epochs), threshold (relative), min lr.
    public var factor: Double = 0.1
    public var patience: Int = 3
    public var threshold: Double = 1e-4
    public var minLR: Double = 0
    /// StepLR: multiply by `gamma` every `stepSize` epochs.
    public var stepSize: Int = 10
    public var gamma: Double = 0.1
    /// Linear warmup over this many epochs (any schedule), from lr * warmupStart.
    public var warmupEpochs: Double = 0
    public var warmupStart: Double = 0.1
    /// One-cycle: peak = lr * maxFactor ... here `lr` is the peak; starts at lr/25, ends at lr/1e4 (PyTorch defaults).
    public var pctStart: Double = 0.3
    /// Triangle: the learning rate at the last step, as a fraction of lr.
    public var endFraction: Double = 0
    public init() {}

    enum CodingKeys: String, CodingKey {
        case kind, factor, patience, threshold, minLR, stepSize, gamma, warmupEpochs, warmupStart, pctStart, endFraction
    }
    /// Missing keys keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = ScheduleConfig()
        kind = try c.decodeIfPresent(ScheduleKind.self, forKey: .kind) ?? d.kind
        factor = try c.decodeIfPresent(Double.self, forKey: .factor) ?? d.factor
        patience = try c.decodeIfPresent(Int.self, forKey: .patience) ?? d.patience
        threshold = try c.decodeIfPresent(Double.self, forKey: .threshold) ?? d.threshold
        minLR = try c.decodeIfPresent(Double.self, forKey: .minLR) ?? d.minLR
        stepSize = try c.decodeIfPresent(Int.self, forKey: .stepSize) ?? d.stepSize
        gamma = try c.decodeIfPresent(Double.self, forKey: .gamma) ?? d.gamma
        warmupEpochs = try c.decodeIfPresent(Double.self, forKey: .warmupEpochs) ?? d.warmupEpochs
        warmupStart = try c.decodeIfPresent(Double.self, forKey: .warmupStart) ?? d.warmupStart
        pctStart = try c.decodeIfPresent(Double.self, forKey: .pctStart) ?? d.pctStart
        endFraction = try c.decodeIfPresent(Double.self, forKey: .endFraction) ?? d.endFraction
    }
}

/// The state of a schedule over a run.
public struct LRSchedule: Codable, Sendable, Equatable {
    public let config: ScheduleConfig
    public let baseLR: Double
    public let totalSteps: Int
    public let stepsPerEpoch: Int
    /// Current multiplier from epoch-level decisions (plateau, step).
    public private(set) var epochFactor: Double = 1
    /// Plateau tracking (PyTorch's ReduceLROnPlateau, mode "min", threshold_mode "rel").
    public private(set) var best: Double = .infinity
    public private(set) var badEpochs = 0
    public private(set) var reductions = 0

    public init(config: ScheduleConfig, baseLR: Double, epochs: Int, stepsPerEpoch: Int) {
        self.config = config
        self.baseLR = baseLR
        self.stepsPerEpoch = max(stepsPerEpoch, 1)
        totalSteps = max(epochs * self.stepsPerEpoch, 1)
    }

    /// Learning rate for global step `step` (0-based).
    public func lr(step: Int) -> Double {
        let t = Double(step)
        var lr: Double
        switch config.kind {
        case .constant, .plateau, .step:
            lr = baseLR * epochFactor
        case .cosine:
            let p = min(t / Double(totalSteps), 1)
            lr = config.minLR + (baseLR - config.minLR) * 0.5 * (1 + cos(Double.pi * p))
        case .triangle:
            let peak = Double(Int(config.pctStart * Double(totalSteps)))   // np.interp's knot, as airbench
            let total = Double(totalSteps)
            if t < peak {
                lr = baseLR * (config.warmupStart + (1 - config.warmupStart) * t / peak)
            } else {
                let left = max(0, (total - t) / max(total - peak, 1))   // 1 at the peak, 0 at the last step
                lr = baseLR * (config.endFraction + (1 - config.endFraction) * left)
            }
        case .onecycle:
            // torch.optim.lr_scheduler.OneCycleLR with cos annealing: initial = max/25, final = initial/1e4.
            let initial = baseLR / 25, final = initial / 1e4
            let up = max(config.pctStart * Double(totalSteps) - 1, 1)
            let s = t
            if s <= up {
                lr = initial + (baseLR - initial) * 0.5 * (1 - cos(Double.pi * s / up))
            } else {
                let p = min((s - up) / max(Double(totalSteps) - 1 - up, 1), 1)
                lr = final + (baseLR - final) * 0.5 * (1 + cos(Double.pi * p))
            }
        }
        let warmSteps = config.warmupEpochs * Double(stepsPerEpoch)
        if config.kind != .onecycle && config.kind != .triangle && warmSteps > 0 && t < warmSteps {
            lr *= config.warmupStart + (1 - config.warmupStart) * t / warmSteps
        }
        return lr
    }

    /// Epoch-level update after epoch `epoch` (1-based) with validation loss `valLoss`.
    /// Returns a message when the learning rate changed.
    public mutating func epochEnd(epoch: Int, valLoss: Double?) -> String? {
        switch config.kind {
        case .plateau:
            guard let v = valLoss, v.isFinite else { return nil }
            if v < best * (1 - config.threshold) {
                best = v
                badEpochs = 0
            } else {
                badEpochs += 1
                if badEpochs > config.patience {
                    let old = baseLR * epochFactor
                    let new = max(old * config.factor, config.minLR)
                    badEpochs = 0
                    if old - new > 1e-12 {
                        epochFactor = new / baseLR
                        reductions += 1
                        return String(format: "validation loss has not improved for %d epochs: learning rate %.3g -> %.3g", config.patience + 1, old, new)
                    }
                }
            }
        case .step:
            if epoch % max(config.stepSize, 1) == 0 {
                let old = baseLR * epochFactor
                epochFactor *= config.gamma
                return String(format: "step schedule: learning rate %.3g -> %.3g", old, baseLR * epochFactor)
            }
        default: break
        }
        return nil
    }
}
