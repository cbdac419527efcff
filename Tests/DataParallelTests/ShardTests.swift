import CNNCore
@testable import Datasets
import Foundation
import Testing

/// DistributedSampler semantics of `DataShard` and the sharded `BatchLoader` (no MPI needed).
@Suite struct ShardTests {
    /// `n` random 3x8x8 images, labels i % 10.
    func dataset(_ n: Int) throws -> ImageDataset {
        var rng = SeededRNG(seed: 7)
        let pixels = (0..<(n * 3 * 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        return try ImageDataset(pixels: pixels, labels: (0..<n).map { Int32($0 % 10) }, classNames: (0..<10).map { "c\($0)" },
                                channels: 3, height: 8, width: 8)
    }

    @Test func sliceIsDisjointAndCoversAll() throws {
        let items = Array(0..<23)
        for n in 1...5 {
            let parts = try (0..<n).map { try DataShard(rank: $0, count: n).slice(items) }
            #expect(parts.flatMap { $0 }.sorted() == items)
            #expect(parts.map(\.count).max()! - parts.map(\.count).min()! <= 1)
        }
        #expect(throws: CNNError.self) { try DataShard(rank: 2, count: 2) }
    }

    /// Rank batches of a 2-rank loader (batch 4 each) are disjoint halves of the 1-rank loader's
    /// batch of 8, image for image (augmentation is seeded by dataset index, so unchanged).
    @Test(arguments: [2, 3])
    func shardsSplitTheOneRankBatch(ranks: Int) throws {
        let data = try dataset(50)
        var aug = AugmentationConfig.none
        aug.horizontalFlip = 0.5
        aug.cropPadding = 2
        let whole = try BatchLoader(dataset: data, batchSize: 4 * ranks, shuffle: true, augmentation: aug, seed: 3, workers: 0)
        let shards = try (0..<ranks).map {
            try BatchLoader(dataset: data, batchSize: 4, shuffle: true, augmentation: aug, seed: 3, workers: 1,
                            shard: DataShard(rank: $0, count: ranks))
        }
        for epoch in 0..<2 {
            let reference = Array(whole.batches(epoch: epoch))
            let parts = shards.map { Array($0.batches(epoch: epoch)) }
            // 50 images: 2 ranks -> 6 global batches of 8 + 2 left (one each); 3 ranks -> 4 of 12 + 2 left,
            // fewer than the ranks: dropped.
            let expected = ranks == 2 ? 7 : 4
            #expect(shards.allSatisfy { $0.batchesPerEpoch == expected })
            for p in parts { #expect(p.count == expected) }
            for b in 0..<expected {
                let ref = reference[b]
                var seen = Set<Int>()
                for p in parts {
                    let batch = p[b]
                    for (row, i) in batch.indices.enumerated() {
                        #expect(!seen.contains(i), "image \(i) in two ranks' batch \(b)")
                        seen.insert(i)
                        guard let r = ref.indices.firstIndex(of: i) else { Issue.record("image \(i) not in the 1-rank batch \(b)"); continue }
                        let per = 3 * 64
                        #expect(Array(batch.images.values[(row * per)..<((row + 1) * per)]) == Array(ref.images.values[(r * per)..<((r + 1) * per)]))
                    }
                }
                #expect(seen == Set(ref.indices))
            }
        }
    }

    /// A whole shard is exactly the loader as it was: same batches, same count.
    @Test func oneRankShardIsTheUnshardedLoader() throws {
        let data = try dataset(30)
        let a = try BatchLoader(dataset: data, batchSize: 8, augmentation: .guide, seed: 5, workers: 0)
        let b = try BatchLoader(dataset: data, batchSize: 8, augmentation: .guide, seed: 5, workers: 0, shard: DataShard(rank: 0, count: 1))
        #expect(a.batchesPerEpoch == 4 && b.batchesPerEpoch == 4 && a.imagesPerEpoch == 30 && b.imagesPerEpoch == 30)
        for (x, y) in zip(a.batches(epoch: 1), b.batches(epoch: 1)) {
            #expect(x.indices == y.indices && x.images.values == y.images.values && x.labels == y.labels)
        }
    }
}
