/// The dimensions of a tensor, outermost first. Tensors are row-major; images are NCHW.
public struct Shape: Hashable, Sendable, CustomStringConvertible, ExpressibleByArrayLiteral {
    public var dims: [Int]

    public init(_ dims: [Int]) {
        precondition(dims.allSatisfy { $0 >= 0 }, "negative dimension in shape \(dims)")
        self.dims = dims
    }
    public init(_ dims: Int...) { self.init(dims) }
    public init(arrayLiteral elements: Int...) { self.init(elements) }

    /// Number of elements (1 for a scalar shape `[]`).
    public var count: Int { dims.reduce(1, *) }
    public var rank: Int { dims.count }
    public subscript(i: Int) -> Int { dims[i] }
    public var description: String { "(" + dims.map(String.init).joined(separator: ", ") + ")" }

    /// For an (N, C, ...) shape: the product of the dimensions after the channel axis (1 for (N, C)).
    public var spatialCount: Int { dims.count <= 2 ? 1 : dims[2...].reduce(1, *) }
}
