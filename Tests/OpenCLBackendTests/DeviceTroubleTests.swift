import CNNCore
@testable import OpenCLBackend
import Testing

/// What a user is told when the device runs out of room or a kernel faults (issue 12, item 5).
struct DeviceTroubleTests {
    @Test func largestBatchFitsAndOneMoreDoesNot() {
        for (perSample, maxBytes) in [(3072, UInt64(1 << 20)), (32 * 32 * 32, UInt64(256 << 20)), (7, UInt64(4096)), (100, UInt64(64 << 20))] {
            let b = BufferPool.largestBatch(perSample: perSample, maxAllocationBytes: maxBytes)
            #expect(b >= 1)
            #expect(UInt64(BufferPool.sizeClass(b * perSample) * 4) <= maxBytes, "\(perSample) x \(b) does not fit \(maxBytes)")
            #expect(UInt64(BufferPool.sizeClass((b + 1) * perSample) * 4) > maxBytes, "\(perSample) x \(b + 1) fits \(maxBytes) too")
        }
        #expect(BufferPool.largestBatch(perSample: 1 << 20, maxAllocationBytes: 1 << 20) == 0)
    }

    /// A tensor larger than CL_DEVICE_MAX_MEM_ALLOC_SIZE is refused before any allocation, naming
    /// a batch size that fits.
    @Test(.enabled(if: OCL.available, "no OpenCL device"))
    func oversizedTensorNamesABatchThatFits() throws {
        let backend = try OCL.backend()
        let maxBytes = backend.deviceInfo.maxAllocationBytes
        try #require(maxBytes > 0)
        let perSample = 3 * 512 * 512
        let batch = Int(maxBytes / UInt64(perSample * 4)) + 2
        let fits = BufferPool.largestBatch(perSample: perSample, maxAllocationBytes: maxBytes)
        let error = #expect(throws: CNNError.self) { try backend.makeTensor([batch, 3, 512, 512]) }
        // Where the device allows 8 GiB or more per allocation (PoCL on a large host), the tensor meets
        // the 2^31-element limit first; either way the message names the limit and a batch that fits.
        let limit = maxBytes >= UInt64(Int32.max) * 4 ? "2^31 elements" : "CL_DEVICE_MAX_MEM_ALLOC_SIZE"
        #expect(error?.message.contains(limit) == true, "\(error?.message ?? "")")
        #expect(error?.message.contains("a batch of at most \(fits) fits") == true, "\(error?.message ?? "")")
        _ = try backend.makeTensor([1, 3, 8, 8])   // the backend still works
    }

    /// NVIDIA reports a faulted kernel as CL_OUT_OF_RESOURCES on the next call that waits for the
    /// queue: there the message points at the kernels, not at the batch size.
    @Test func lateKernelFaultIsNotBlamedOnTheBatchSize() {
        for call in ["clFinish", "clWaitForEvents(profiling)", "clEnqueueReadBuffer(40 bytes from Tensor[10] float32)"] {
            let text = CLStatus.describe(-5, call: call)
            #expect(text.contains("faulted") && text.contains("will not help") && !text.contains("try a smaller batch size"), "\(call): \(text)")
        }
        for call in ["clCreateBuffer(4096 bytes for tensor [1024])", "clEnqueueNDRangeKernel(relu)"] {
            #expect(CLStatus.describe(-5, call: call).contains("try a smaller batch size"), "\(call)")
        }
        #expect(CLStatus.describe(-4, call: "clFinish").contains("try a smaller batch size"))
    }
}
