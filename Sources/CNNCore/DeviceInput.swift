/// Building training batches on the device (the OpenCL backend): the host sends uint8 pixels (or
/// nothing, when the dataset is resident on the device) and a few KB of per-image parameters that
/// the host pipeline drew from its seeded functions; a kernel crops, flips, rotates, normalises,
/// cuts out and mixes, writing the same float batch the host pipeline builds.
///
/// The parameter layout (what `Datasets` writes and the kernel reads) is fixed here.
package enum DeviceInputLayout {
    /// Int32 values per row: source image, crop y, crop x, flip (0/1), rotated (0/1), cutout rows
    /// y1..<y2 and columns x1..<x2 (an empty range for none), MixUp/CutMix partner row.
    package static let intsPerRow = 10
    /// Float values per row: the rotation's cosine and sine (as the host's `Augmenter` rounds them).
    package static let floatsPerRow = 2
}

/// What stays the same for every batch of one input: the image geometry and normalisation.
package struct DeviceInputSpec: Sendable, Equatable {
    package var channels: Int
    package var height: Int
    package var width: Int
    /// (C, 256): the normalised value of each byte per channel (the host's lookup table).
    package var lut: [Float]
    /// Per channel (the rotated path normalises (v / 255 - mean) / std as the host does).
    package var mean: [Float]
    package var std: [Float]

    package init(channels: Int, height: Int, width: Int, lut: [Float], mean: [Float], std: [Float]) {
        self.channels = channels
        self.height = height
        self.width = width
        self.lut = lut
        self.mean = mean
        self.std = std
    }
    package var imageBytes: Int { channels * height * width }
}

/// One batch's parameters (see `DeviceInputLayout`).
package struct DeviceBatchParams: Sendable {
    package var count: Int
    /// count x `DeviceInputLayout.intsPerRow`. Source image = dataset index (resident) or row in
    /// the uploaded pixels (staged).
    package var ints: [Int32]
    /// count x `DeviceInputLayout.floatsPerRow`.
    package var floats: [Float]
    package var labels: [Int32]
    /// (count, classes) soft targets, or nil.
    package var soft: [Float]?
    /// Crop padding and padding mode, and nearest (true) or bilinear rotation.
    package var cropPadding: Int
    package var reflect: Bool
    package var nearest: Bool
    /// 0: none, 1: MixUp, 2: CutMix.
    package var mixKind: Int
    package var lambda: Float
    /// CutMix box rows y0..<y1, columns x0..<x1.
    package var box: (y0: Int, y1: Int, x0: Int, x1: Int)

    package init(count: Int, ints: [Int32], floats: [Float], labels: [Int32], soft: [Float]?, cropPadding: Int,
                 reflect: Bool, nearest: Bool, mixKind: Int = 0, lambda: Float = 1, box: (y0: Int, y1: Int, x0: Int, x1: Int) = (0, 0, 0, 0)) {
        self.count = count
        self.ints = ints
        self.floats = floats
        self.labels = labels
        self.soft = soft
        self.cropPadding = cropPadding
        self.reflect = reflect
        self.nearest = nearest
        self.mixKind = mixKind
        self.lambda = lambda
        self.box = box
    }
}

/// A batch builder on a device. Not thread-safe (like its backend).
package protocol DeviceBatchInput: AnyObject {
    /// Whether the dataset was uploaded (`makeResident`): batches then send parameters only.
    var isResident: Bool { get }
    /// Batches whose staging buffer was still being copied from (the host two batches ahead of the
    /// device): the only blocking calls of a steady-state step, counted in `blockingCalls` too.
    var inputWaits: Int { get }
    /// Device bytes the resident copy of `count` images would take.
    func residentBytes(images count: Int) -> Int
    /// Whether the resident dataset of `count` images fits the device's budget (see the backend).
    func residentFits(images count: Int) -> Bool
    /// Uploads `pixels` ((count, C, H, W) UInt8) once; later batches index into it.
    func makeResident(_ pixels: [UInt8], images count: Int) throws
    /// Enqueues the batch: its parameters (and, when not resident, `pixels(row, dst)` writes the
    /// uint8 source image of row `row` to `dst`) go to the device, and the kernel builds the
    /// images. Returns device tensors valid until the next `prepare`: images (N, C, H, W),
    /// labels (N) int32, soft targets (N, K) or nil.
    func prepare(_ p: DeviceBatchParams, pixels: ((Int, UnsafeMutablePointer<UInt8>) -> Void)?) throws
        -> (images: Tensor, labels: Tensor, soft: Tensor?)
}

/// A backend that can build batches on its device.
package protocol DeviceBatchInputProvider: Backend {
    /// An input for batches of up to `maxBatch` images with `classes` classes.
    func makeBatchInput(spec: DeviceInputSpec, maxBatch: Int, classes: Int) throws -> any DeviceBatchInput
    /// A non-blocking read of two scalars: enqueues a copy of `a[0]` and `b[0]` to the host (unless
    /// one is still in flight) and returns the newest completed read with the `tag` it was
    /// enqueued with (nil before the first completes).
    func readScalarsLater(_ a: Tensor, _ b: Tensor, tag: Int) throws -> (Float, Float, Int)?
}
