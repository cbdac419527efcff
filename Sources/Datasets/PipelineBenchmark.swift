import CNNCore
import Dispatch

/// Measures the data pipeline alone (no model): how many augmented, normalised images per second
/// a `BatchLoader` delivers to a consumer that does nothing but recycle the batches.
public enum PipelineBenchmark {
    public struct Result: Sendable, CustomStringConvertible {
        public var images: Int
        public var seconds: Double
        public var workers: Int
        public var imagesPerSecond: Double { Double(images) / max(seconds, 1e-9) }
        public var description: String {
            "\(images) images in \(formatFixed(seconds, 3)) s with \(workers) worker(s): \(formatFixed(imagesPerSecond, 0)) images/s"
        }
    }

    /// Runs `epochs` epochs (starting at `firstEpoch`) of `loader` and times them.
    public static func run(_ loader: BatchLoader, epochs: Int = 1, firstEpoch: Int = 0) -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        var images = 0
        for e in firstEpoch..<(firstEpoch + epochs) {
            for batch in loader.batches(epoch: e) {
                images += batch.count
                loader.recycle(batch)
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(images: images, seconds: seconds, workers: loader.workers)
    }
}
