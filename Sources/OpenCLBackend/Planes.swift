import CNNCore

extension OpenCLBackend {
    /// A per-plane kernel over an (N, C, P) NCHW tensor (convForwardEpilogue, convOutputGradColumns,
    /// the BatchNorm apply passes): 3-D NDRange over (position in the plane, channel, image), so the
    /// kernel takes c and n from the NDRange instead of a div/mod per element; float4 (one work-item
    /// per 4 positions, the `vec4` flag appended to `args`) when the plane size and the offsets of
    /// `tensors` (the element-indexed ones) are multiples of 4, else one work-item per element.
    func launchPlanes(_ family: KernelFamily, _ name: String, planeSize: Int, channels: Int, images: Int,
                      tensors: [Tensor], _ args: [KernelArg]) throws {
        guard planeSize > 0, channels > 0, images > 0 else { return }
        let total = planeSize * channels * images
        guard Int32(exactly: total) != nil else {
            throw CNNError.unsupported("\(name): size \(total) does not fit the kernels' 32-bit indices")
        }
        let vec4 = planeSize % 4 == 0 && tensors.allSatisfy { $0.offset % 4 == 0 }
        let k = try kernel(family, name)
        let g0 = vec4 ? planeSize / 4 : planeSize
        try launchTunable(k, global: [g0, channels, images], clip: true, args + [.int(vec4 ? 1 : 0)])
    }
}
