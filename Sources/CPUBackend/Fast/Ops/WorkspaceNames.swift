// The fast paths' named scratch buffers in their `Workspace` (SGEMM/Workspace.swift: the one scratch
// allocator of the SGEMM and the fast ops; per-task scratch comes from its slots).

import SGEMM

/// Named buffers of the fast paths' workspace.
enum WorkspaceName: Int, CaseIterable {
    /// Packed op(A) of a convolution (weights in GEMM panels), all depth blocks.
    case convA
    /// Flipped, transposed weights of a stride-1 backward-data convolution.
    case convFlipped
    /// Per-group partial weight gradients.
    case convPartials
    /// im2col columns (strided backward data, the im2col primitive path).
    case columns
    /// Per-channel statistics and small per-op tables.
    case small
    /// Patch row offsets of a convolution (Int).
    case rowOffsets
    /// Per-group bias-gradient partials of a weight gradient (Double).
    case biasPartials
}

extension Workspace {
    /// A workspace with one named buffer per `WorkspaceName`.
    static func fastPaths() -> Workspace { Workspace(namedBuffers: WorkspaceName.allCases.count) }

    /// At least `count` floats under `name` (contents undefined).
    func floats(_ name: WorkspaceName, _ count: Int) -> UnsafeMutablePointer<Float> {
        buffer(named: name.rawValue, count)
    }

    /// At least `count` values of type T under `name` (contents undefined).
    func buffer<T>(_ name: WorkspaceName, _ count: Int, as type: T.Type = T.self) -> UnsafeMutablePointer<T> {
        buffer(named: name.rawValue, count, as: type)
    }
}
