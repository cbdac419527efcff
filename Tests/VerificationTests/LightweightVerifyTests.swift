import CNNCore
import CPUBackend
import SGEMM
import Testing
@testable import Verification

/// The new primitives' descriptors: the fast CPU paths against the reference (one thread and two,
/// at shapes large enough to split), and a wrong one is caught.
@Suite struct LightweightVerifyTests {
    @Test func everyNewPrimitiveIsInTheQuickSuite() {
        let ops = Set(VerifySuite.quick.map(\.op))
        let new: Set = ["groupedConv2DForward", "groupedConv2DBackwardData", "groupedConv2DBackwardFilter", "gelu", "geluBackward",
                        "channelShuffle", "copyChannels"]
        #expect(new.subtracting(ops).isEmpty, "missing: \(new.subtracting(ops).sorted())")
    }

    @Test(arguments: [1, 2])
    func fastPathsMatchTheReference(threads: Int) {
        let device = CPUBackend(pool: ThreadPool(threadCount: threads))
        let rows = verify(device: device, reference: CPUBackend(reference: true),
                          cases: VerifySuite.lightweightOps(modelBatch: 4).map(\.verifyCase))
        #expect(allPassed(rows), "\(rows.filter { !$0.passed })")
    }

    @Test(arguments: [("groupedConv2DBackwardFilter", Float(1.001)), ("gelu", Float(1.0001)), ("channelShuffle", Float(1) + 0x1p-20)])
    func aWrongPrimitiveIsReported(op: String, factor: Float) {
        let device = PerturbingBackend(CPUBackend(reference: true), op: op, factor: factor)
        let rows = verify(device: device, reference: CPUBackend(reference: true), cases: VerifySuite.lightweightOps().map(\.verifyCase))
        #expect(Set(rows.filter { !$0.passed }.map(\.op)) == [op])
    }

    @Test func badArgumentsAreRejectedWithTheirReason() throws {
        let b = CPUBackend()
        let g = Conv2DGeometry(batch: 1, inChannels: 6, height: 5, width: 5, outChannels: 6, kernel: 3, padding: 1)
        let x = try b.makeTensor(g.inputShape), y = try b.makeTensor(g.outputShape)
        let w = try b.makeTensor([6, 1, 3, 3])
        #expect(throws: CNNError.self) { try b.groupedConv2DForward(x: x, weight: w, bias: nil, y: y, geometry: g, groups: 4, activation: .identity) }
        #expect(throws: CNNError.self) { try b.groupedConv2DForward(x: x, weight: w, bias: nil, y: y, geometry: g, groups: 3, activation: .identity) }
        try b.groupedConv2DForward(x: x, weight: w, bias: nil, y: y, geometry: g, groups: 6, activation: .identity)
        #expect(throws: CNNError.self) { try b.channelShuffle(x: x, y: x, groups: 2) }
        #expect(throws: CNNError.self) { try b.channelShuffle(x: x, y: y, groups: 4) }
        #expect(throws: CNNError.self) { try b.copyChannels(src: x, srcChannel: 4, dst: y, dstChannel: 0, count: 3) }
        do {
            try b.groupedConv2DForward(x: x, weight: w, bias: nil, y: y, geometry: g, groups: 4, activation: .identity)
        } catch let e as CNNError {
            #expect(e.message.contains("groups = 4 must divide"), "\(e.message)")
        }
    }
}
