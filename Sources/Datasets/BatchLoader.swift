import CNNCore
import Foundation

/// One mini-batch, ready for the model.
public struct Batch: Sendable {
    /// (N, C, H, W) float32, augmented and normalised.
    public var images: HostTensor
    /// (N): class of each row (for MixUp/CutMix: the row's own, unmixed label).
    public var labels: [Int32]
    /// (N, K) label weights summing to 1 per row, present whenever MixUp or CutMix is configured
    /// (one-hot for batches the mix probability skipped); nil otherwise — use `labels`.
    public var softTargets: HostTensor?
    /// (N): dataset index of each row.
    public var indices: [Int]
    public var epoch: Int
    /// Position of this batch in its epoch.
    public var index: Int
    /// The MixUp/CutMix applied, if any.
    public var mix: BatchMix?

    public var count: Int { labels.count }
}

/// Turns a dataset and an index list into batches: per-epoch seeded shuffle, per-sample
/// augmentation, batch-level MixUp/CutMix, produced ahead by background threads.
///
/// Determinism: batch b of epoch e depends only on (seed, e, b) — the epoch order comes from
/// (seed, e), each sample's draws from (seed, e, dataset index), each batch's mix from
/// (seed, e, b) — so the sequence is identical for any `workers` count and any scheduling.
///
///     let loader = try BatchLoader(dataset: data, indices: split.train, batchSize: 64,
///                                  augmentation: .guide, seed: 1)
///     for batch in loader.batches(epoch: 0) { ...; loader.recycle(batch) }
public final class BatchLoader: Sendable {
    public let dataset: ImageDataset
    public let indices: [Int]
    public let batchSize: Int
    public let shuffle: Bool
    public let dropLast: Bool
    public let seed: UInt64
    /// Background threads; 0 builds each batch on the consuming thread when it is asked for.
    public let workers: Int
    /// Batches that may be built ahead of the consumer (in progress + waiting).
    public let prefetch: Int
    package let augmenter: Augmenter
    /// This process's part of each batch in data-parallel training (`DataShard`); `.whole` otherwise.
    public let shard: DataShard
    private let pool = BufferPool()

    public init(dataset: ImageDataset, indices: [Int]? = nil, batchSize: Int, shuffle: Bool = true,
                dropLast: Bool = false, augmentation: AugmentationConfig = .none, seed: UInt64,
                workers: Int = ProcessInfo.processInfo.activeProcessorCount, prefetch: Int? = nil,
                shard: DataShard = .whole) throws {
        let idx = indices ?? Array(0..<dataset.count)
        try require(batchSize > 0, "batch size must be positive, got \(batchSize) (--batch-size)")
        try require(workers >= 0, "data loader workers must be >= 0, got \(workers)")
        if let bad = idx.first(where: { $0 < 0 || $0 >= dataset.count }) {
            throw CNNError.invalidArgument("data loader: index \(bad) is outside the dataset \(dataset.source) (0..<\(dataset.count))")
        }
        try require(!idx.isEmpty, "data loader: no images to load from \(dataset.source) (empty index list)")
        try require(!dropLast || idx.count >= batchSize * shard.count,
                    "data loader: \(idx.count) images make no full batch of \(batchSize * shard.count) with drop-last; lower --batch-size")
        try require(idx.count >= shard.count, "data loader: \(idx.count) images from \(dataset.source) are fewer than the \(shard.count) ranks sharing them")
        self.dataset = dataset
        self.indices = idx
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.seed = seed
        self.workers = workers
        self.shard = shard
        self.prefetch = max(1, prefetch ?? 2 * max(workers, 1))
        self.augmenter = try Augmenter(config: augmentation, channels: dataset.channels,
                                       height: dataset.height, width: dataset.width)
    }

    public var augmentation: AugmentationConfig { augmenter.config }
    /// Batches per epoch. With a shard of N ranks, a step consumes a global batch of N x `batchSize`
    /// images; a last global batch with fewer images than ranks is dropped (no rank may go empty).
    public var batchesPerEpoch: Int {
        let global = batchSize * shard.count
        let rest = indices.count % global
        return indices.count / global + (dropLast || rest == 0 || rest < shard.count ? 0 : 1)
    }
    /// Images per epoch over all ranks (after drop-last).
    public var imagesPerEpoch: Int { min(batchesPerEpoch * batchSize * shard.count, indices.count) }

    /// The epoch's sample order (dataset indices).
    public func order(epoch: Int) -> [Int] {
        guard shuffle else { return indices }
        var o = indices
        var rng = DataRandom.rng(seed, .shuffle, epoch: epoch, item: 0)
        DataRandom.shuffle(&o, &rng)
        return o
    }

    /// Builds batch `b` of `epoch` on the calling thread (what the workers run).
    public func makeBatch(epoch: Int, index b: Int) -> Batch {
        makeBatch(epoch: epoch, index: b, order: order(epoch: epoch))
    }

    func makeBatch(epoch: Int, index b: Int, order: [Int]) -> Batch {
        precondition(b >= 0 && b < batchesPerEpoch, "batch \(b) outside 0..<\(batchesPerEpoch)")
        let global = batchSize * shard.count
        let (lo, hi) = (b * global, min((b + 1) * global, order.count))
        // A shard takes every N-th image of the global batch: the union over ranks is the 1-rank batch.
        let rows = shard.count == 1 ? Array(order[lo..<hi]) : stride(from: lo + shard.rank, to: hi, by: shard.count).map { order[$0] }
        let n = rows.count
        let C = dataset.channels, H = dataset.height, W = dataset.width, per = C * H * W
        var values = pool.take(count: n * per)
        var labels = [Int32](repeating: 0, count: n)
        var mix: BatchMix? = nil
        values.withUnsafeMutableBufferPointer { out in
            dataset.pixels.withUnsafeBufferPointer { px in
                for (r, i) in rows.enumerated() {
                    let d = augmenter.draw(seed: seed, epoch: epoch, item: i)
                    augmenter.apply(d, source: px.baseAddress! + i * per, into: out.baseAddress! + r * per)
                    labels[r] = dataset.labels[i]
                }
            }
            if augmenter.config.usesMixing {
                var rng = DataRandom.rng(seed, .batch, epoch: epoch, item: b)
                mix = BatchMix.draw(config: augmenter.config, n: n, height: H, width: W, rng: &rng)
                if let mix {
                    var scratch = pool.take(count: n * per)
                    mix.apply(images: out.baseAddress!, n: n, channels: C, height: H, width: W, scratch: &scratch)
                    pool.give(scratch)
                }
            }
        }
        var soft: HostTensor? = nil
        if augmenter.config.usesMixing {
            let K = dataset.numClasses
            let identity = BatchMix(kind: .mixup, lambda: 1, partner: Array(0..<n))
            soft = HostTensor(shape: Shape(n, K), values: (mix ?? identity).softTargets(labels: labels, numClasses: K))
        }
        return Batch(images: HostTensor(shape: Shape(n, C, H, W), values: values), labels: labels, softTargets: soft,
                     indices: rows, epoch: epoch, index: b, mix: mix)
    }

    /// The batches of `epoch`, in order, built ahead by `workers` background threads. The threads
    /// start with the first `next()` and stop when the iterator is finished or dropped.
    public func batches(epoch: Int) -> EpochBatches { EpochBatches(loader: self, epoch: epoch) }

    /// Hands a batch's image buffer back for reuse by later batches (optional; saves page faults).
    public func recycle(_ batch: Batch) {
        pool.give(batch.images.values)
    }
}

/// A `Sequence` of one epoch's batches (see `BatchLoader.batches(epoch:)`).
public struct EpochBatches: Sequence, Sendable {
    let loader: BatchLoader
    let epoch: Int
    public func makeIterator() -> Iterator { Iterator(run: EpochRun(loader: loader, epoch: epoch)) }
    public var underestimatedCount: Int { loader.batchesPerEpoch }

    public struct Iterator: IteratorProtocol {
        let run: EpochRun
        public mutating func next() -> Batch? { run.next() }
    }
}

/// One epoch in flight: owns the worker threads' shared state and cancels it when dropped.
final class EpochRun {
    let shared: EpochShared
    let loader: BatchLoader
    var started = false

    init(loader: BatchLoader, epoch: Int) {
        self.loader = loader
        shared = EpochShared(total: loader.batchesPerEpoch, prefetch: loader.prefetch, epoch: epoch, order: loader.order(epoch: epoch))
    }

    func next() -> Batch? {
        if loader.workers == 0 {
            let b = shared.consumed
            guard b < shared.total else { return nil }
            shared.consumed += 1
            return loader.makeBatch(epoch: shared.epoch, index: b, order: shared.order)
        }
        if !started {
            started = true
            for _ in 0..<min(loader.workers, shared.total) {
                let s = shared, l = loader
                let t = Thread { s.work(l) }
                t.name = "swiftcnn-data"
                t.start()
            }
        }
        return shared.take()
    }

    deinit { shared.cancel() }
}

/// State shared by the consumer and the workers, guarded by `cond`.
final class EpochShared: @unchecked Sendable {
    let cond = NSCondition()
    let total: Int
    let prefetch: Int
    let epoch: Int
    let order: [Int]
    var nextToBuild = 0
    var consumed = 0
    var ready: [Int: Batch] = [:]
    var cancelled = false

    init(total: Int, prefetch: Int, epoch: Int, order: [Int]) {
        self.total = total
        self.prefetch = prefetch
        self.epoch = epoch
        self.order = order
    }

    func work(_ loader: BatchLoader) {
        while true {
            cond.lock()
            while !cancelled && nextToBuild < total && nextToBuild >= consumed + prefetch { cond.wait() }
            if cancelled || nextToBuild >= total { cond.unlock(); return }
            let b = nextToBuild
            nextToBuild += 1
            cond.unlock()
            let batch = loader.makeBatch(epoch: epoch, index: b, order: order)
            cond.lock()
            ready[b] = batch
            cond.broadcast()
            cond.unlock()
        }
    }

    func take() -> Batch? {
        cond.lock()
        defer { cond.unlock() }
        guard consumed < total else { return nil }
        while ready[consumed] == nil { cond.wait() }
        let b = ready.removeValue(forKey: consumed)!
        consumed += 1
        cond.broadcast()
        return b
    }

    func cancel() {
        cond.lock()
        cancelled = true
        ready.removeAll()
        cond.broadcast()
        cond.unlock()
    }
}

/// Float buffers kept for reuse, by size. Taken buffers have arbitrary contents.
final class BufferPool: @unchecked Sendable {
    private let lock = NSLock()
    private var free: [Int: [[Float]]] = [:]
    private let maxPerSize = 16

    func take(count: Int) -> [Float] {
        lock.lock()
        if var list = free[count], let b = list.popLast() {
            free[count] = list
            lock.unlock()
            return b
        }
        lock.unlock()
        return [Float](unsafeUninitializedCapacity: count) { buf, n in
            buf.baseAddress!.initialize(repeating: 0, count: count)
            n = count
        }
    }

    func give(_ b: [Float]) {
        guard !b.isEmpty else { return }
        lock.lock()
        defer { lock.unlock() }
        if free[b.count, default: []].count < maxPerSize { free[b.count, default: []].append(b) }
    }
}
