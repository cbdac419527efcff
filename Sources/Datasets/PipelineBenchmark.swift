import CNNCore
import Dispatch
import Foundation

/// Measures the data pipeline alone (no model): how many augmented, normalised images per second
/// a `BatchLoader` delivers to a consumer that does nothing but recycle the batches.
package enum PipelineBenchmark {
    package struct Result: Sendable, CustomStringConvertible {
        package var images: Int
        package var seconds: Double
        package var workers: Int
        /// CPU time of the whole process (all threads) during the run.
        package var cpuSeconds: Double
        package var imagesPerSecond: Double { Double(images) / max(seconds, 1e-9) }
        package var description: String {
            "\(images) images in \(formatFixed(seconds, 3)) s with \(workers) worker(s): \(formatFixed(imagesPerSecond, 0)) images/s; "
                + "process CPU \(formatFixed(cpuSeconds, 3)) s (\(formatFixed(Double(images) / max(cpuSeconds, 1e-9), 0)) images per CPU-second)"
        }
    }

    /// Runs `epochs` epochs (starting at `firstEpoch`) of `loader` and times them.
    package static func run(_ loader: BatchLoader, epochs: Int = 1, firstEpoch: Int = 0) -> Result {
        let start = DispatchTime.now().uptimeNanoseconds
        let cpu0 = processCPUSeconds()
        var images = 0
        for e in firstEpoch..<(firstEpoch + epochs) {
            for batch in loader.batches(epoch: e) {
                images += batch.count
                loader.recycle(batch)
            }
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return Result(images: images, seconds: seconds, workers: loader.workers, cpuSeconds: processCPUSeconds() - cpu0)
    }
}

extension PipelineBenchmark {
    /// CPU time of this thread, in seconds (unaffected by other processes sharing the cores).
    package static func threadCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// CPU time of the process, all threads, in seconds.
    package static func processCPUSeconds() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    /// Builds `batches` batches of epoch 0 on the calling thread and returns the images per second
    /// of thread CPU time: the pipeline's speed per core, independent of machine load.
    package static func imagesPerCPUSecond(_ loader: BatchLoader, batches: Int) -> Double {
        let n = min(batches, loader.batchesPerEpoch)
        let order = loader.order(epoch: 0)
        var images = 0
        let t0 = threadCPUSeconds()
        for b in 0..<n {
            let batch = loader.makeBatch(epoch: 0, index: b, order: order)
            images += batch.count
            loader.recycle(batch)
        }
        return Double(images) / max(threadCPUSeconds() - t0, 1e-9)
    }
}
