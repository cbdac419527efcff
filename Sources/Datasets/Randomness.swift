import CNNCore
import Foundation

/// Seeds and draws for the data pipeline. Every random choice is a pure function of
/// (seed, stream, epoch, item), so results do not depend on thread count or scheduling.
package enum DataRandom {
    /// Independent streams derived from one run seed.
    package enum Stream: UInt64, Sendable {
        case sample = 1    // per-sample augmentation: item = dataset index
        case shuffle = 2   // epoch order: item = 0
        case batch = 3     // MixUp/CutMix: item = batch index
        case flip = 4      // alternating flip: the image's coin for the run (epoch 0), item = dataset index
    }

    /// A 64-bit seed for (seed, stream, epoch, item), mixed through SplitMix64.
    package static func seed(_ seed: UInt64, _ stream: Stream, epoch: Int, item: Int) -> UInt64 {
        var x = seed
        var h = SeededRNG.splitMix64(&x)
        x = h ^ (stream.rawValue &* 0xD6E8_FEB8_6659_FD93)
        h = SeededRNG.splitMix64(&x)
        x = h ^ UInt64(bitPattern: Int64(epoch))
        h = SeededRNG.splitMix64(&x)
        x = h ^ UInt64(bitPattern: Int64(item))
        return SeededRNG.splitMix64(&x)
    }

    package static func rng(_ seed: UInt64, _ stream: Stream, epoch: Int, item: Int) -> SeededRNG {
        SeededRNG(seed: self.seed(seed, stream, epoch: epoch, item: item))
    }

    /// Uniform integer in 0..<n (n > 0) by Lemire's multiply-and-reject; defined here, not by
    /// the standard library, so orders stay the same across Swift versions.
    package static func int(_ n: Int, _ rng: inout SeededRNG) -> Int {
        precondition(n > 0)
        let bound = UInt64(n)
        var m = rng.next().multipliedFullWidth(by: bound)
        if m.low < bound {
            let threshold = (0 &- bound) % bound
            while m.low < threshold { m = rng.next().multipliedFullWidth(by: bound) }
        }
        return Int(m.high)
    }

    /// Fisher-Yates shuffle with `int`.
    package static func shuffle<T>(_ a: inout [T], _ rng: inout SeededRNG) {
        guard a.count > 1 else { return }
        for i in stride(from: a.count - 1, to: 0, by: -1) {
            let j = int(i + 1, &rng)
            if j != i { a.swapAt(i, j) }
        }
    }

    /// A random permutation of 0..<n.
    package static func permutation(_ n: Int, _ rng: inout SeededRNG) -> [Int] {
        var p = Array(0..<n)
        shuffle(&p, &rng)
        return p
    }

    /// Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 through Gamma(shape + 1) * U^(1/shape).
    package static func gamma(_ shape: Double, _ rng: inout SeededRNG) -> Double {
        precondition(shape > 0)
        if shape < 1 {
            let u = max(Double(rng.next() >> 11) * 0x1p-53, 0x1p-60)
            return gamma(shape + 1, &rng) * pow(u, 1 / shape)
        }
        let d = shape - 1.0 / 3.0
        let c = 1 / (9 * d).squareRoot()
        while true {
            let x = Double(rng.normal())
            let v0 = 1 + c * x
            if v0 <= 0 { continue }
            let v = v0 * v0 * v0
            let u = max(Double(rng.next() >> 11) * 0x1p-53, 0x1p-60)
            if log(u) < 0.5 * x * x + d - d * v + d * log(v) { return d * v }
        }
    }

    /// Beta(a, b) from two Gamma draws.
    package static func beta(_ a: Double, _ b: Double, _ rng: inout SeededRNG) -> Double {
        let x = gamma(a, &rng)
        let y = gamma(b, &rng)
        return x + y > 0 ? x / (x + y) : 0.5
    }
}
