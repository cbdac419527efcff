import CNNCore

/// One rank's part of the data in data-parallel training (DistributedSampler semantics): every
/// rank shuffles the same seeded epoch order; global batch b is the 1-rank run's batch b of
/// `count` x the per-rank batch size, and rank r takes its images r, r + count, r + 2 count, ...
/// So the ranks' batches are disjoint, their union is the 1-rank batch, and per-sample augmentation
/// (seeded by dataset index) is unchanged.
public struct DataShard: Sendable, Equatable, CustomStringConvertible {
    public let rank: Int
    public let count: Int

    /// The whole data set (one process).
    public static let whole = DataShard(uncheckedRank: 0, count: 1)

    public init(rank: Int, count: Int) throws {
        guard count >= 1, rank >= 0, rank < count else {
            throw CNNError.invalidArgument("data shard: rank \(rank) is outside 0..<\(count)")
        }
        self.init(uncheckedRank: rank, count: count)
    }
    private init(uncheckedRank rank: Int, count: Int) { self.rank = rank; self.count = count }

    /// Elements r, r + N, r + 2N, ... of `items` (for sharded evaluation: disjoint, all covered once).
    public func slice<T>(_ items: [T]) -> [T] {
        count == 1 ? items : stride(from: rank, to: items.count, by: count).map { items[$0] }
    }

    public var description: String { "rank \(rank) of \(count)" }
}
