import CNNCore
import CPUBackend
import Datasets
import Foundation
import NN
import Testing
import Training

@Suite struct VisualizationTests {
    /// Two RGB 2x1 filters at scale 1, 2 columns: layout, per-filter min-max scaling, black gaps.
    @Test func rgbFilterGridPixels() throws {
        // Filter 0: R = [0, 1], G = [1, 0], B = [0.5, 0.5]; filter 1: every weight 3 (constant -> mid-grey).
        let w = HostTensor(shape: [2, 3, 1, 2], values: [0, 1, 1, 0, 0.5, 0.5, 3, 3, 3, 3, 3, 3])
        let img = try Visualization.filterGrid(w, scale: 1, columns: 2)
        #expect(img.channels == 3 && img.width == 2 * (2 + 1) + 1 && img.height == 1 + 1 + 1)
        func px(_ x: Int, _ y: Int) -> [UInt8] { Array(img.pixels[((y * img.width) + x) * 3..<((y * img.width) + x) * 3 + 3]) }
        #expect(px(0, 0) == [0, 0, 0] && px(3, 1) == [0, 0, 0])     // gaps
        #expect(px(1, 1) == [0, 255, 128])                             // filter 0, weight 0: R 0, G 1, B 0.5
        #expect(px(2, 1) == [255, 0, 128])                             // filter 0, weight 1
        #expect(px(4, 1) == [128, 128, 128] && px(5, 1) == [128, 128, 128])   // filter 1: constant
    }

    /// Non-RGB filters are grey means over input channels; scale repeats pixels.
    @Test func greyFilterIsTheChannelMean() throws {
        let w = HostTensor(shape: [1, 2, 1, 2], values: [0, 4, 2, 2])   // mean over 2 channels: [1, 3]
        let img = try Visualization.filterGrid(w, scale: 2)
        #expect(img.channels == 1 && img.width == 2 * 2 + 2 && img.height == 2 + 2)
        let row1 = Array(img.pixels[(1 * img.width)..<(2 * img.width)])
        #expect(row1 == [0, 0, 0, 255, 255, 0])
        #expect(throws: CNNError.self) { _ = try Visualization.filterGrid(HostTensor(shape: [4, 3], values: .init(repeating: 0, count: 12))) }
    }

    @Test func firstLayerFiltersOfAModelAsPNG() throws {
        let model = try ModelZoo.make("optimized", backend: CPUBackend(), seed: 1)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("swiftcnn-filters-\(UUID().uuidString).png").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(try Visualization.writeFirstLayerFilters(of: model, to: path) == "conv1.0")
        let png = try ImageCodec.decode(fileAt: path)
        // 32 filters of 3x3 at scale 16: 8 columns x 4 rows of 48-pixel tiles 8 pixels apart, under a
        // two-line title naming the layer; each tile holds its filter as filterGrid draws it.
        #expect(png.width >= 8 * 56 - 8 && png.height == 4 * 56 - 8 + 84 && png.channels == 3)
        let w = try model.backend.host(model.parameters.first { $0.0 == "conv1.0.weight" }!.1.value)
        let grid = try Visualization.filterGrid(w, scale: 16)
        let layout = try Figures.filtersFigureLayout(w, layer: "conv1.0")
        #expect(layout.image == png && layout.origins.count == 32)
        for f in [0, 9, 31] {
            let o = layout.origins[f]
            for (y, x) in [(0, 0), (20, 33), (47, 47)] {
                let k = ((o.y + y) * png.width + o.x + x) * 3
                let g = (((f / 8) * 49 + 1 + y) * grid.width + (f % 8) * 49 + 1 + x) * 3
                #expect(Array(png.pixels[k..<(k + 3)]) == Array(grid.pixels[g..<(g + 3)]), "filter \(f) pixel \(x),\(y)")
            }
        }
    }
}
