import Foundation

/// Seeded pseudo-random generator (xoshiro256**, seeded through SplitMix64).
/// Everything random on the host (initialisation, shuffling, augmentation, dropout seeds)
/// draws from one of these, so a run is reproducible from its seed.
public struct SeededRNG: RandomNumberGenerator, Sendable, Equatable, Codable {
    public private(set) var state: [UInt64]

    public init(seed: UInt64) {
        var sm = seed
        var s: [UInt64] = []
        for _ in 0..<4 { s.append(SeededRNG.splitMix64(&sm)) }
        state = s
    }
    /// Restores a generator from `state` (as saved in a checkpoint).
    public init(state: [UInt64]) throws {
        try require(state.count == 4 && state.contains { $0 != 0 }, "an RNG state needs 4 words, not all zero")
        self.state = state
    }

    public static func splitMix64(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9E37_79B9_7F4A_7C15
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    public mutating func next() -> UInt64 {
        let result = SeededRNG.rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = SeededRNG.rotl(state[3], 45)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func nextFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }
    /// Uniform in [lo, hi).
    public mutating func uniform(_ lo: Float, _ hi: Float) -> Float { lo + (hi - lo) * nextFloat() }
    /// Uniform integer in 0..<n.
    public mutating func nextInt(_ n: Int) -> Int { Int.random(in: 0..<n, using: &self) }
    /// Standard normal (Box-Muller, double precision internally).
    public mutating func normal() -> Float {
        let u1 = max(Double(next() >> 11) * 0x1p-53, 0x1p-60)
        let u2 = Double(next() >> 11) * 0x1p-53
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }
    /// A child generator for an independent stream (e.g. one per worker thread or epoch).
    public mutating func fork() -> SeededRNG { SeededRNG(seed: next()) }
}

/// Counter-based random numbers: the value for element `index` depends only on (key, index),
/// so every device (CPU loops, OpenCL work-items in any order) draws the same dropout mask.
/// `Kernels/elementwise.cl` implements the same functions; `CounterRNGTests` pins values.
package enum CounterRNG {
    /// Chris Wellons' "lowbias32" integer hash (a bijection on UInt32).
    @inline(__always)
    package static func hash32(_ v: UInt32) -> UInt32 {
        var x = v
        x ^= x >> 16
        x = x &* 0x7FEB_352D
        x ^= x >> 15
        x = x &* 0x846C_A68B
        x ^= x >> 16
        return x
    }

    /// The 32-bit key a 64-bit seed becomes (computed on the host, passed to kernels).
    package static func key(seed: UInt64) -> UInt32 {
        hash32(UInt32(truncatingIfNeeded: seed) ^ hash32(UInt32(truncatingIfNeeded: seed >> 32) &+ 0x9E37_79B9))
    }

    /// Uniform in [0, 1) with 24 bits, for element `index` under `key`.
    @inline(__always)
    package static func uniform(key: UInt32, index: UInt32) -> Float {
        let h = hash32(hash32((index &* 0x9E37_79B1) ^ key) &+ key)
        return Float(h >> 8) * (1.0 / 16_777_216.0)
    }
}
