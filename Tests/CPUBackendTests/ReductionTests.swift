import CNNCore
import CPUBackend
import Testing

@Suite struct ReductionTests {
    @Test func sumAndSumOfSquares() throws {
        let be = CPUBackend()
        let x = try be.refUpload([1, 2, 3, 4], [2, 2]), out = try be.refUpload([5], [1])
        try be.sum(x, into: out, accumulate: true)
        RefCheck.exact(try be.floats(out), [15], "5 + (1 + 2 + 3 + 4)")
        try be.sum(x, into: out, accumulate: false)
        RefCheck.exact(try be.floats(out), [10], "sum")
        try be.sumOfSquares(x, into: out, accumulate: false)
        RefCheck.exact(try be.floats(out), [30], "1 + 4 + 9 + 16")
        try be.sumOfSquares(x, into: out, accumulate: true)
        RefCheck.exact(try be.floats(out), [60], "30 + 30")
    }

    /// 1e8 + 1 - 1e8: a Float running sum loses the 1 (1e8 + 1 rounds to 1e8); a Double accumulator keeps it.
    @Test func sumsAccumulateInDouble() throws {
        let be = CPUBackend()
        let out = try be.makeTensor([1])
        try be.sum(try be.refUpload([1e8, 1, -1e8], [3]), into: out, accumulate: false)
        RefCheck.exact(try be.floats(out), [1], "sum in Double")
        // biasGrad is a reduction too: channel 1 of (N=3, C=2).
        let dB = try be.makeTensor([2])
        try be.biasGrad(dy: try be.refUpload([0, 1e8, 0, 1, 0, -1e8], [3, 2]), dBias: dB)
        RefCheck.exact(try be.floats(dB), [0, 1], "biasGrad in Double")
    }

    @Test func argmaxTakesTheFirstMaximum() throws {
        let be = CPUBackend()
        let x = try be.refUpload([1, 3, 3,
                                  -5, -7, -5,
                                  2, .nan, 9,
                                  0, 0, 0], [4, 3])
        let out = try be.makeTensor([4], dtype: .int32)
        try be.argmax(x, into: out)
        #expect(try be.ints(out) == [1, 0, 1, 0], "ties -> first index; NaN counts as the maximum")
    }

    @Test func countCorrect() throws {
        let be = CPUBackend()
        let logits = try be.refUpload([0.1, 0.9, 0.0,    // argmax 1
                                       0.5, 0.2, 0.3,    // argmax 0
                                       0.3, 0.3, 0.1,    // tie -> 0
                                       0.0, 0.0, 1.0], [4, 3])   // argmax 2
        let out = try be.refUpload([10], [1])
        try be.countCorrect(logits: logits, labels: try be.refUpload(ints: [1, 2, 0, 2], [4]), into: out, accumulate: false)
        RefCheck.exact(try be.floats(out), [3], "rows 0, 2, 3 correct")
        try be.countCorrect(logits: logits, labels: try be.refUpload(ints: [1, 0, 1, -1], [4]), into: out, accumulate: true)
        RefCheck.exact(try be.floats(out), [5], "3 + 2 (a label of -1 never matches)")
    }

    @Test func badArgumentsThrow() throws {
        let be = CPUBackend()
        let x = try be.makeTensor([2, 3])
        RefCheck.throwsInvalid("sum", "out") { try be.sum(x, into: try be.makeTensor([2]), accumulate: false) }
        RefCheck.throwsInvalid("sumOfSquares", "out") { try be.sumOfSquares(x, into: x.view(elementOffset: 0, shape: [1]), accumulate: false) }
        RefCheck.throwsInvalid("argmax", "out") { try be.argmax(x, into: try be.makeTensor([2])) }
        RefCheck.throwsInvalid("argmax", "x") { try be.argmax(try be.makeTensor([6]), into: try be.makeTensor([6], dtype: .int32)) }
        RefCheck.throwsInvalid("countCorrect", "labels") {
            try be.countCorrect(logits: x, labels: try be.makeTensor([3], dtype: .int32), into: try be.makeTensor([1]), accumulate: false)
        }
        RefCheck.throwsInvalid("countCorrect", "out") {
            try be.countCorrect(logits: x, labels: try be.makeTensor([2], dtype: .int32), into: try be.makeTensor([1], dtype: .int32),
                                accumulate: false)
        }
    }
}
