import CNNCore
import CPUBackend
import Testing

/// Storage, transfers and tensors that do not belong to this backend.
@Suite struct CPUBackendMemoryTests {
    @Test func storageIsAlignedAndZeroFilled() throws {
        let be = CPUBackend()
        for n in [1, 3, 1000, 4099] {
            let t = try be.makeTensor([n])
            let s = try #require(t.storage as? CPUStorage)
            #expect(Int(bitPattern: s.raw) % 64 == 0, "allocation of \(n) elements is not 64-byte aligned")
            #expect(s.capacity == n)
            #expect(try be.floats(t).allSatisfy { $0 == 0 })
        }
        #expect(try be.ints(try be.makeTensor([5], dtype: .int32)) == [0, 0, 0, 0, 0])
        let empty = try be.makeTensor([0, 3])
        #expect(try be.floats(empty).isEmpty)
    }

    @Test func transfersAreCounted() throws {
        let be = CPUBackend()
        #expect(be.transferCounters == TransferCounters())
        let t = try be.refUpload([1, 2, 3], [3])                  // 1 upload, 12 bytes
        let i = try be.refUpload(ints: [4, 5], [2])                // 1 upload, 8 bytes
        #expect(try be.floats(t) == [1, 2, 3])                     // 1 download, 12 bytes
        #expect(try be.ints(i) == [4, 5])                          // 1 download, 8 bytes
        let c = try be.clone(t)                                    // device copy: not a transfer
        try be.relu(x: c, y: c)                                    // compute: not a transfer
        var expected = TransferCounters()
        (expected.uploads, expected.uploadBytes, expected.downloads, expected.downloadBytes) = (2, 20, 2, 20)
        #expect(be.transferCounters == expected)
    }

    @Test func copyAndViews() throws {
        let be = CPUBackend()
        let a = try be.refUpload([1, 2, 3, 4, 5, 6], [2, 3])
        let b = try be.makeTensor([3])
        try be.copy(a.slice(1..<2).reshaped([3]), to: b)
        #expect(try be.floats(b) == [4, 5, 6])
        try be.write([9, 8, 7] as [Float], to: a.slice(0..<1))
        #expect(try be.floats(a) == [9, 8, 7, 4, 5, 6])
        RefCheck.throwsInvalid("copy", "dst") { try be.copy(a, to: try be.makeTensor([6], dtype: .int32)) }
        RefCheck.throwsInvalid("copy", "src and dst") { try be.copy(a, to: b) }
        RefCheck.throwsInvalid("copy", "dst") { try be.copy(a.view(elementOffset: 0, shape: [3]), to: a.view(elementOffset: 2, shape: [3])) }
        RefCheck.throwsInvalid("write", "tensor") { try be.write([1, 2] as [Float], to: b) }
        RefCheck.throwsInvalid("write", "tensor") { try be.write([1, 2, 3] as [Int32], to: b) }
        var host = [Float](repeating: 0, count: 2)
        RefCheck.throwsInvalid("read", "tensor") { try host.withUnsafeMutableBufferPointer { try be.read(b, into: $0) } }
    }

    /// A tensor whose storage belongs to another backend is rejected with a message naming the argument.
    @Test func foreignStorageIsRejected() throws {
        final class ForeignStorage: BufferStorage { let capacity = 16 }
        let be = CPUBackend()
        let foreign = Tensor(storage: ForeignStorage(), shape: [4, 4])
        RefCheck.throwsInvalid("relu", "x") { try be.relu(x: foreign, y: try be.makeTensor([4, 4])) }
        RefCheck.throwsInvalid("read", "tensor") { _ = try be.floats(foreign) }
        #expect(be.transferCounters == TransferCounters(), "a rejected read must not count as a transfer")
    }

    @Test func deviceInfo() {
        let be = CPUBackend()
        #expect(be.info.kind == .cpu)
        #expect(CPUBackend(reference: true).usesReference)
    }
}
