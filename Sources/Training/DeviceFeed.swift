import CNNCore
import Datasets
import Foundation

/// Batches built on the device (`--data-on-device` and the OpenCL default; see
/// `DeviceBatchInput`): per batch the host draws the same recipe as `BatchLoader.makeBatch` (epoch
/// order, per-image draws, MixUp/CutMix) and sends it — with the batch's uint8 source images
/// unless the dataset is resident — and a kernel builds the float batch the host pipeline would.
package final class DeviceFeed {
    package let input: any DeviceBatchInput
    /// The dataset every loader of this feed indexes (the training set: the validation split too).
    package let dataset: ImageDataset

    package init(input: any DeviceBatchInput, dataset: ImageDataset) {
        self.input = input
        self.dataset = dataset
    }

    /// The feed for `backend`, or nil when it cannot build batches (the CPU backend: the host
    /// pipeline). `resident`: true uploads the dataset (an error when it cannot be allocated),
    /// false sends each batch's images, nil (default) uploads it when it fits
    /// (`DeviceBatchInput.residentFits`: a quarter of the device memory).
    package static func make(backend: any Backend, loader: BatchLoader, classes: Int, resident: Bool?,
                     log: (String) -> Void) throws -> DeviceFeed? {
        if loader.shard.count > 1 {
            // The batch recipe takes whole-batch rows; a rank's strided share is built on the host.
            if resident == true {
                throw CNNError.invalidArgument("--data-on-device does not work with --distributed yet; drop it "
                                               + "(each rank then builds its share of the batch on the host)")
            }
            return nil
        }
        guard let provider = backend as? any DeviceBatchInputProvider else {
            if resident == true {
                throw CNNError.invalidArgument("--data-on-device needs an OpenCL device; this run uses \(backend.info) "
                                               + "(choose one with --device opencl, or drop --data-on-device)")
            }
            return nil
        }
        let input = try provider.makeBatchInput(spec: loader.deviceInputSpec, maxBatch: loader.batchSize, classes: classes)
        let data = loader.dataset
        let bytes = input.residentBytes(images: data.count)
        let mib = String(format: "%.1f MiB", Double(bytes) / 1048576)
        if resident ?? input.residentFits(images: data.count) {
            do {
                try input.makeResident(data.pixels, images: data.count)
            } catch {
                throw CNNError.device("--data-on-device: could not put the \(data.count) training images (\(mib)) on \(backend.info): \(error). "
                                      + "Train without it (--no-data-on-device) to send each batch instead")
            }
            log("data on the device: \(data.count) images (\(mib) uint8) uploaded once; augmentation runs there")
        } else {
            log("data: batches go to the device as uint8 images" + (resident == false ? "" : " (the \(mib) training set is over a quarter of the device memory)")
                + "; augmentation runs there")
        }
        return DeviceFeed(input: input, dataset: data)
    }

    /// Enqueues batch `b` of `epoch` of `loader` (`order`: its `order(epoch:)`).
    package func prepare(_ loader: BatchLoader, epoch: Int, index b: Int, order: [Int]) throws -> (x: Tensor, y: Tensor, soft: Tensor?, count: Int) {
        precondition(loader.dataset.count == dataset.count, "a device feed serves loaders of one dataset")
        let recipe = loader.recipe(epoch: epoch, index: b, order: order)
        let params = loader.deviceParams(recipe, resident: input.isResident)
        let per = dataset.imageShape.count
        let rows = recipe.rows
        let gather: ((Int, UnsafeMutablePointer<UInt8>) -> Void)? = input.isResident ? nil : { [dataset] r, dst in
            dataset.pixels.withUnsafeBufferPointer { dst.update(from: $0.baseAddress! + rows[r] * per, count: per) }
        }
        let t = try input.prepare(params, pixels: gather)
        return (t.images, t.labels, t.soft, recipe.count)
    }
}
