import CNNCore
@testable import Datasets
import Foundation
import Testing

/// A dataset of `n` random 3x8x8 images with labels i % classes.
func randomDataset(_ n: Int, classes: Int = 4, seed: UInt64 = 1) -> ImageDataset {
    var rng = SeededRNG(seed: seed)
    return try! ImageDataset(pixels: (0..<(n * 192)).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
                             labels: (0..<n).map { Int32($0 % classes) }, classNames: (0..<classes).map { "k\($0)" },
                             channels: 3, height: 8, width: 8, source: "random")
}

@Suite struct SplitTests {
    @Test func defaultSplitIs80_20AndSeeded() throws {
        let d = randomDataset(100)
        let s = try d.split(seed: 42)
        #expect(s.train.count == 80 && s.validation.count == 20)
        #expect(Set(s.train).isDisjoint(with: s.validation) && Set(s.train + s.validation) == Set(0..<100))
        #expect(try d.split(seed: 42) == s)
        #expect(try d.split(seed: 43) != s)
        #expect(try d.split(validationFraction: 0.25, seed: 1).validation.count == 25)
    }

    @Test func stratifiedKeepsClassProportions() throws {
        // Classes of 60, 30 and 10 images: 20% of each goes to validation.
        let labels = [Int32](repeating: 0, count: 60) + [Int32](repeating: 1, count: 30) + [Int32](repeating: 2, count: 10)
        let s = try DatasetSplit.make(labels: labels, numClasses: 3, validationFraction: 0.2, seed: 9, stratified: true)
        let valCounts = [0, 1, 2].map { k in s.validation.filter { labels[$0] == Int32(k) }.count }
        #expect(valCounts == [12, 6, 2])
        #expect(s.train.count == 80)
    }

    @Test func fractionOutOfRangeNamesTheOption() {
        let d = randomDataset(10)
        for f in [0.0, 1.0, -0.1, 1.5, Double.nan] {
            let m = errorMessage { _ = try d.split(validationFraction: f, seed: 1) }
            #expect(m.contains("--val-split") && m.contains("strictly between 0 and 1"), "fraction \(f): \(m)")
        }
        #expect(errorMessage { _ = try d.split(validationFraction: 2, seed: 1, optionName: "validation_split") }.contains("validation_split 2.0"))
        // In range but leaving nothing on one side.
        let m = errorMessage { _ = try d.split(validationFraction: 0.01, seed: 1) }
        #expect(m.contains("--val-split 0.01") && m.contains("0 for validation"))
    }

    @Test func classTableAndImbalanceWarning() throws {
        let d = try ImageDataset(pixels: [UInt8](repeating: 0, count: 9), labels: [0, 0, 0, 0, 0, 0, 1, 1, 2],
                                 classNames: ["big", "mid", "small"], channels: 1, height: 1, width: 1)
        #expect(d.classCounts() == [6, 2, 1])
        #expect(d.classCountTable() == """
            class  count   share
            big        6   66.7%
            mid        2   22.2%
            small      1   11.1%
            total      9
            """)
        let w = try #require(d.imbalanceWarning())
        #expect(w.contains("'big' has 6") && w.contains("'small' has 1") && w.contains("ratio 6.00 > 1.50"))
        #expect(d.imbalanceWarning(indices: [0, 6, 8]) == nil)
        #expect(d.imbalanceWarning(indices: [0, 1]).map { $0.contains("class 'mid' has no images") } == true)
        // Labels outside the class list are refused at construction.
        #expect(errorMessage { _ = try ImageDataset(pixels: [0, 0], labels: [0, 3], classNames: ["a", "b"], channels: 1, height: 1, width: 1) }
            .contains("image 1 has label 3"))
    }
}

@Suite struct LoaderTests {
    let heavy = AugmentationConfig(horizontalFlip: 0.5, rotationDegrees: 15, cropPadding: 2, paddingMode: .reflect,
                                   normalization: .cifar10, cutoutSize: 3, mixupAlpha: 0.2, cutmixAlpha: 1)

    func all(_ l: BatchLoader, epoch: Int) -> [Batch] { Array(l.batches(epoch: epoch)) }

    @Test func identicalBatchesForAnyWorkerCount() throws {
        let d = randomDataset(50)
        let indices = Array(3..<50)
        var results: [[Batch]] = []
        for workers in [0, 1, 2, 3] {
            let l = try BatchLoader(dataset: d, indices: indices, batchSize: 8, augmentation: heavy, seed: 77,
                                    workers: workers, prefetch: workers == 3 ? 1 : nil)
            results.append(all(l, epoch: 0) + all(l, epoch: 1))
        }
        #expect(results[0].count == 12)
        for r in results.dropFirst() {
            #expect(r.map(\.images) == results[0].map(\.images))
            #expect(r.map(\.labels) == results[0].map(\.labels))
            #expect(r.map(\.softTargets) == results[0].map(\.softTargets))
            #expect(r.map(\.mix) == results[0].map(\.mix))
            #expect(r.map(\.indices) == results[0].map(\.indices))
        }
        // Epochs differ from each other; another seed differs.
        #expect(results[0][0].indices != results[0][6].indices || results[0][0].images != results[0][6].images)
        let other = try BatchLoader(dataset: d, indices: indices, batchSize: 8, augmentation: heavy, seed: 78, workers: 2)
        #expect(all(other, epoch: 0).map(\.images) != Array(results[0].prefix(6)).map(\.images))
    }

    @Test func shuffleCoversEveryIndexOnce() throws {
        let d = randomDataset(23)
        let l = try BatchLoader(dataset: d, batchSize: 5, seed: 1, workers: 2)
        #expect(l.batchesPerEpoch == 5)
        let b = all(l, epoch: 3)
        #expect(b.map(\.count) == [5, 5, 5, 5, 3])
        #expect(b.flatMap(\.indices).sorted() == Array(0..<23))
        #expect(b.flatMap(\.indices) != Array(0..<23))
        #expect(b.map(\.index) == [0, 1, 2, 3, 4] && b.allSatisfy { $0.epoch == 3 })
        #expect(b[0].images.shape == Shape(5, 3, 8, 8) && b[4].images.shape == Shape(3, 3, 8, 8))
        for batch in b { #expect(batch.labels == batch.indices.map { Int32($0 % 4) }) }
        // Epoch order is a function of the epoch alone.
        #expect(l.order(epoch: 3) == b.flatMap(\.indices) && l.order(epoch: 4) != l.order(epoch: 3))
        // Drop-last and no shuffle.
        let e = try BatchLoader(dataset: d, batchSize: 5, shuffle: false, dropLast: true, seed: 1, workers: 1)
        let eb = all(e, epoch: 0)
        #expect(eb.count == 4 && eb.flatMap(\.indices) == Array(0..<20) && e.imagesPerEpoch == 20)
    }

    @Test func evaluationBatchesAreNormalisedImages() throws {
        let d = randomDataset(6)
        let l = try BatchLoader(dataset: d, batchSize: 4, shuffle: false, augmentation: heavy.forEvaluation, seed: 1, workers: 1)
        let b = all(l, epoch: 0)
        #expect(b[0].softTargets == nil && b[0].mix == nil)
        let a = try Augmenter(config: .init(normalization: .cifar10), channels: 3, height: 8, width: 8)
        #expect(Array(b[1].images.values[0..<192]) == a.apply(a.identityDraw, to: Array(d.image(4))))
    }

    @Test func stoppingEarlyAndRecyclingAreSafe() throws {
        let d = randomDataset(64)
        let l = try BatchLoader(dataset: d, batchSize: 4, augmentation: heavy, seed: 3, workers: 2, prefetch: 2)
        let reference = all(l, epoch: 0)
        for _ in 0..<3 {
            for batch in l.batches(epoch: 0) where batch.index == 2 { break }
        }
        // Recycled buffers are overwritten completely: results stay identical.
        var again: [Batch] = []
        for batch in l.batches(epoch: 0) { again.append(batch); l.recycle(batch) }
        #expect(again.map(\.images) == reference.map(\.images))
    }

    @Test func badLoaderArgumentsAreNamed() {
        let d = randomDataset(5)
        #expect(errorMessage { _ = try BatchLoader(dataset: d, batchSize: 0, seed: 1) }.contains("--batch-size"))
        #expect(errorMessage { _ = try BatchLoader(dataset: d, indices: [0, 9], batchSize: 2, seed: 1) }.contains("index 9"))
        #expect(errorMessage { _ = try BatchLoader(dataset: d, batchSize: 8, dropLast: true, seed: 1) }.contains("no full batch"))
    }

    /// Pipeline throughput on the real CIFAR-10 training set (release build):
    /// SWIFTCNN_BENCH_PIPELINE=1 swift test -c release -Xswiftc -enable-testing --filter pipelineThroughput
    @Test(.enabled(if: ProcessInfo.processInfo.environment["SWIFTCNN_BENCH_PIPELINE"] != nil && sharedCIFARDirectory() != nil))
    func pipelineThroughput() throws {
        let data = try CIFAR10.load(.train, directory: sharedCIFARDirectory()!)
        for (name, config) in [("flip+rotation(15)+normalize", AugmentationConfig.guide),
                               ("crop(4, reflect)+flip+normalize", AugmentationConfig(horizontalFlip: 0.5, cropPadding: 4, paddingMode: .reflect)),
                               ("normalize only", AugmentationConfig.none)] {
            let single = try BatchLoader(dataset: data, batchSize: 64, augmentation: config, seed: 1, workers: 0)
            _ = PipelineBenchmark.imagesPerCPUSecond(single, batches: 100)
            let perCore = PipelineBenchmark.imagesPerCPUSecond(single, batches: 400)
            print("pipeline \(name): \(Int(perCore)) images per CPU-second (one core, thread CPU time)")
            for workers in [1, 2] {
                let l = try BatchLoader(dataset: data, batchSize: 64, augmentation: config, seed: 1, workers: workers)
                _ = PipelineBenchmark.run(l, epochs: 1)  // warm-up: page in buffers
                let r = PipelineBenchmark.run(l, epochs: 2, firstEpoch: 1)
                print("pipeline \(name): \(r)")
            }
        }
    }
}
