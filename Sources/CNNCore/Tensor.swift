/// Element type of a device tensor.
public enum DType: String, Sendable {
    case float32
    case int32
    public var byteSize: Int { 4 }
}

/// Memory owned by one backend. Each backend defines its own concrete class and downcasts;
/// a tensor handed to another backend is a programming error caught by that downcast.
package protocol BufferStorage: AnyObject {
    /// Capacity in elements of 4 bytes.
    var capacity: Int { get }
}

/// A view of device memory: storage, an element offset into it, a shape and an element type.
///
/// Views are cheap values; the storage is reference-counted and freed (or returned to its
/// backend's pool) when the last view goes away. Layout is row-major over `shape`
/// (NCHW for images, (N, features) for matrices).
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    package let storage: any BufferStorage
    /// Offset of element 0, in elements.
    public let offset: Int
    public let shape: Shape
    public let dtype: DType

    package init(storage: any BufferStorage, offset: Int = 0, shape: Shape, dtype: DType = .float32) {
        precondition(offset >= 0 && offset + shape.count <= storage.capacity,
                     "tensor view \(shape) at offset \(offset) exceeds its storage of \(storage.capacity) elements")
        self.storage = storage
        self.offset = offset
        self.shape = shape
        self.dtype = dtype
    }

    public var count: Int { shape.count }
    public var description: String { "Tensor\(shape) \(dtype)" }

    /// The same elements seen with another shape of equal element count.
    public func reshaped(_ newShape: Shape) -> Tensor {
        precondition(newShape.count == count, "cannot reshape \(shape) to \(newShape)")
        return Tensor(storage: storage, offset: offset, shape: newShape, dtype: dtype)
    }

    /// A contiguous sub-view of `shape.count` elements starting `elementOffset` elements into this view.
    public func view(elementOffset: Int, shape: Shape) -> Tensor {
        precondition(elementOffset >= 0 && elementOffset + shape.count <= count,
                     "view of \(shape) at \(elementOffset) exceeds \(self.shape)")
        return Tensor(storage: storage, offset: offset + elementOffset, shape: shape, dtype: dtype)
    }

    /// Rows `range` of the outermost dimension.
    public func slice(_ range: Range<Int>) -> Tensor {
        precondition(shape.rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0])
        let inner = count / max(shape[0], 1)
        var d = shape.dims
        d[0] = range.count
        return view(elementOffset: range.lowerBound * inner, shape: Shape(d))
    }

    /// True when both views are over the same storage and overlap.
    public func overlaps(_ other: Tensor) -> Bool {
        storage === other.storage && offset < other.offset + other.count && other.offset < offset + count
    }
}

/// A tensor in host memory: the unit of data exchange (datasets, checkpoints, tests).
public struct HostTensor: Sendable, Equatable, CustomStringConvertible {
    public var shape: Shape
    public var values: [Float]

    public init(shape: Shape, values: [Float]) {
        precondition(values.count == shape.count, "\(values.count) values for shape \(shape)")
        self.shape = shape
        self.values = values
    }
    public init(zeros shape: Shape) { self.init(shape: shape, values: [Float](repeating: 0, count: shape.count)) }
    public init(shape: Shape, repeating v: Float) { self.init(shape: shape, values: [Float](repeating: v, count: shape.count)) }
    /// Values from `f(flatIndex)`.
    public init(shape: Shape, _ f: (Int) -> Float) { self.init(shape: shape, values: (0..<shape.count).map(f)) }

    public var count: Int { shape.count }
    public var description: String { "HostTensor\(shape)" }
    public subscript(i: Int) -> Float {
        get { values[i] }
        set { values[i] = newValue }
    }
}
