import Testing
import CNNCore
import CPUBackend
@testable import NN

/// Finite-difference gradients of the grouped / depthwise convolution, GELU, channel shuffle and the
/// two mobile blocks (ShuffleNetV2's unit, MobileNetV2's inverted residual), on the fast CPU backend
/// and the reference backend.
@Suite struct LightweightGradientTests {
    func expectSmall(_ r: (dx: Double, params: [String: Double]), _ what: String) {
        #expect(r.dx < 1e-3, "\(what): dx relative error \(r.dx)")
        for (n, e) in r.params { #expect(e < 1e-3, "\(what): d\(n) relative error \(e)") }
    }

    @Test(arguments: [false, true], [(1, 1, 6, 6), (2, 1, 4, 4), (1, 0, 9, 3), (2, 1, 4, 2)])
    func groupedConv(reference: Bool, config: (stride: Int, padding: Int, cout: Int, groups: Int)) throws {
        let checker = GradientChecker(backend: CPUBackend(reference: reference))
        let cin = config.groups == 4 ? 4 : 6
        let x = HostTensor(shape: [2, cin, 7, 6], values: separatedValues(count: 2 * cin * 42, gap: 0.02, seed: 21))
        let layer = GroupedConv2d(cin, config.cout, kernel: 3, stride: config.stride, padding: config.padding, groups: config.groups)
        expectSmall(try checker.check(layer: layer, input: x), "grouped conv \(config) reference \(reference)")
    }

    @Test(arguments: [false, true])
    func geluAndShuffle(reference: Bool) throws {
        let checker = GradientChecker(backend: CPUBackend(reference: reference))
        let x = HostTensor(shape: [3, 6, 3, 5], values: separatedValues(count: 270, gap: 0.05, seed: 22))
        expectSmall(try checker.check(layer: GELU(), input: x), "gelu")
        expectSmall(try checker.check(layer: ChannelShuffle(groups: 2), input: x), "shuffle 2")
        expectSmall(try checker.check(layer: ChannelShuffle(groups: 3), input: x), "shuffle 3")
    }

    /// The blocks without kinks (GELU for ReLU would change names; BatchNorm + the linear parts are
    /// smooth): the split / concatenation / shuffle wiring and the residual sum.
    @Test func shuffleUnitsAndInvertedResidual() throws {
        let checker = GradientChecker(backend: CPUBackend())
        let x = HostTensor(shape: [2, 4, 6, 6], values: separatedValues(count: 288, gap: 0.02, seed: 23))
        let split = ShuffleUnit(branch1: nil, branch2: Sequential(
            Conv2d(2, 2, kernel: 1), GroupedConv2d.depthwise(2, kernel: 3, padding: 1), Conv2d(2, 2, kernel: 1), GELU()))
        expectSmall(try checker.check(layer: split, input: x, coordinates: 12), "shuffle unit stride 1")
        let down = ShuffleUnit(branch1: Sequential(GroupedConv2d.depthwise(4, kernel: 3, stride: 2, padding: 1), Conv2d(4, 3, kernel: 1)),
                               branch2: Sequential(Conv2d(4, 3, kernel: 1), GroupedConv2d.depthwise(3, kernel: 3, stride: 2, padding: 1)))
        expectSmall(try checker.check(layer: down, input: x, coordinates: 12), "shuffle unit stride 2")
        let inv = InvertedResidual(Sequential(Conv2d(4, 8, kernel: 1), GELU(), GroupedConv2d.depthwise(8, kernel: 3, padding: 1),
                                              Conv2d(8, 4, kernel: 1)), residual: true)
        expectSmall(try checker.check(layer: inv, input: x, coordinates: 12), "inverted residual")
    }
}
