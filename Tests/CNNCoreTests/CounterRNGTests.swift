import Testing
@testable import CNNCore

@Suite struct CounterRNGTests {
    @Test func hashIsTheLowbias32Bijection() {
        // lowbias32(1) computed by hand from the published constants.
        var x: UInt32 = 1
        x ^= x >> 16; x = x &* 0x7FEB_352D; x ^= x >> 15; x = x &* 0x846C_A68B; x ^= x >> 16
        #expect(CounterRNG.hash32(1) == x)
        #expect(CounterRNG.hash32(0) == 0)
        // Distinct inputs give distinct outputs on a sample (it is a bijection).
        let outs = Set((0..<10_000).map { CounterRNG.hash32(UInt32($0)) })
        #expect(outs.count == 10_000)
    }

    @Test func uniformIsInUnitIntervalAndRoughlyUniform() {
        let key = CounterRNG.key(seed: 42)
        var sum = 0.0
        var below = 0
        let n = 100_000
        for i in 0..<n {
            let u = CounterRNG.uniform(key: key, index: UInt32(i))
            #expect(u >= 0 && u < 1)
            sum += Double(u)
            if u < 0.25 { below += 1 }
        }
        #expect(abs(sum / Double(n) - 0.5) < 0.01)
        #expect(abs(Double(below) / Double(n) - 0.25) < 0.01)
    }

    @Test func differentSeedsGiveDifferentStreams() {
        let a = (0..<64).map { CounterRNG.uniform(key: CounterRNG.key(seed: 1), index: UInt32($0)) }
        let b = (0..<64).map { CounterRNG.uniform(key: CounterRNG.key(seed: 2), index: UInt32($0)) }
        #expect(a != b)
    }
}

@Suite struct SeededRNGTests {
    @Test func sameSeedSameSequence() {
        var a = SeededRNG(seed: 7), b = SeededRNG(seed: 7), c = SeededRNG(seed: 8)
        let sa = (0..<10).map { _ in a.next() }
        #expect(sa == (0..<10).map { _ in b.next() })
        #expect(sa != (0..<10).map { _ in c.next() })
    }
    @Test func stateRoundTrips() throws {
        var a = SeededRNG(seed: 3)
        _ = a.next()
        var b = try SeededRNG(state: a.state)
        #expect(a.next() == b.next())
    }
    @Test func normalHasUnitVariance() {
        var r = SeededRNG(seed: 11)
        let xs = (0..<50_000).map { _ in Double(r.normal()) }
        let mean = xs.reduce(0, +) / Double(xs.count)
        let v = xs.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(xs.count)
        #expect(abs(mean) < 0.02)
        #expect(abs(v - 1) < 0.03)
    }
}
