import CNNCore

/// The two mobile models, sized for 32x32 inputs, with torchvision's module names (checkpoints load
/// into the PyTorch classes of scripts/pytorch_interop.py, which follow torchvision's `MobileNetV2`
/// and `ShuffleNetV2`). Differences from torchvision, for 32x32 CIFAR-sized inputs: the stem has stride
/// 1 (and ShuffleNetV2 has no stem max pool), MobileNetV2's second stage keeps stride 1, and ReLU
/// stands for MobileNetV2's ReLU6 (it fuses into the convolution and BatchNorm; the twin uses ReLU too).
extension ModelKind {
    var lightweightSummary: String {
        switch self {
        case .mobilenetv2:
            return "MobileNetV2 for 32x32: stem conv 32, 17 inverted residuals (expansion 6, depthwise 3x3, linear bottlenecks; "
                + "16-24-32-64-96-160-320), conv 1280, global average pool, dropout 0.2, fc"
        case .fast:
            return "the CIFAR-10 speed-record net (airbench): frozen 2x2 patch whitening (24 channels, trainable bias), GELU, "
                + "three conv-pool-BN-GELU-conv-BN-GELU blocks (64, 256, 256; identity-initialised convolutions, BatchNorm scales fixed at 1), "
                + "global max pool, fc, x1/9"
        default:
            return "ShuffleNetV2 1.0x for 32x32: stem conv 24, stages of 4/8/4 units (116, 232, 464; channel split, depthwise 3x3, "
                + "channel shuffle), conv 1024, global average pool, fc"
        }
    }

    func lightweightNetwork(channels c: Int, classes: Int) throws -> Sequential {
        switch self {
        case .mobilenetv2: return Self.mobileNetV2(channels: c, classes: classes)
        case .fast: return Self.fastNet(channels: c, classes: classes)
        default: return Self.shuffleNetV2(channels: c, classes: classes)
        }
    }

    /// Conv (no bias) + BatchNorm + ReLU, torchvision's `ConvBNReLU` (names `0`, `1`, `2`).
    static func convBNReLU(_ cin: Int, _ cout: Int, kernel: Int, stride: Int = 1, groups: Int = 1) -> Sequential {
        let pad = (kernel - 1) / 2
        let conv: any Layer = groups == 1 ? Conv2d(cin, cout, kernel: kernel, stride: stride, padding: pad, bias: false)
            : GroupedConv2d(cin, cout, kernel: kernel, stride: stride, padding: pad, groups: groups, bias: false)
        return Sequential(conv, BatchNorm2d(cout), ReLU())
    }

    static func mobileNetV2(channels c: Int, classes: Int) -> Sequential {
        // (expansion t, output channels, repeats n, first stride s): torchvision's table, with the
        // second stage at stride 1 for 32x32 inputs (feature maps 32, 32, 16, 8, 8, 4, 4).
        let table = [(1, 16, 1, 1), (6, 24, 2, 1), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
        var features: [any Layer] = [convBNReLU(c, 32, kernel: 3)]
        var cin = 32
        for (t, cout, n, s) in table {
            for i in 0..<n {
                let stride = i == 0 ? s : 1
                let hidden = cin * t
                var layers: [any Layer] = []
                if t != 1 { layers.append(convBNReLU(cin, hidden, kernel: 1)) }
                layers.append(convBNReLU(hidden, hidden, kernel: 3, stride: stride, groups: hidden))
                layers.append(Conv2d(hidden, cout, kernel: 1, bias: false))
                layers.append(BatchNorm2d(cout))
                features.append(InvertedResidual(Sequential(layers), residual: stride == 1 && cin == cout))
                cin = cout
            }
        }
        features.append(convBNReLU(cin, 1280, kernel: 1))
        return Sequential(named: [
            ("features", Sequential(features)),
            ("pool", GlobalAvgPool()),
            ("classifier", Sequential(Dropout(0.2), Linear(1280, classes))),
        ])
    }

    static func shuffleNetV2(channels c: Int, classes: Int) -> Sequential {
        let repeats = [4, 8, 4], widths = [24, 116, 232, 464, 1024]
        func unit(_ inp: Int, _ oup: Int, stride: Int) -> ShuffleUnit {
            let bf = oup / 2
            let branch1 = stride > 1 ? Sequential(
                GroupedConv2d.depthwise(inp, kernel: 3, stride: stride, padding: 1, bias: false), BatchNorm2d(inp),
                Conv2d(inp, bf, kernel: 1, bias: false), BatchNorm2d(bf), ReLU()) : nil
            let branch2 = Sequential(
                Conv2d(stride > 1 ? inp : bf, bf, kernel: 1, bias: false), BatchNorm2d(bf), ReLU(),
                GroupedConv2d.depthwise(bf, kernel: 3, stride: stride, padding: 1, bias: false), BatchNorm2d(bf),
                Conv2d(bf, bf, kernel: 1, bias: false), BatchNorm2d(bf), ReLU())
            return ShuffleUnit(branch1: branch1, branch2: branch2)
        }
        var named: [(String, any Layer)] = [
            ("conv1", Sequential(Conv2d(c, widths[0], kernel: 3, padding: 1, bias: false), BatchNorm2d(widths[0]), ReLU())),
        ]
        var cin = widths[0]
        for (k, n) in repeats.enumerated() {
            let cout = widths[k + 1]
            var units: [any Layer] = [unit(cin, cout, stride: 2)]
            for _ in 1..<n { units.append(unit(cout, cout, stride: 1)) }
            named.append(("stage\(k + 2)", Sequential(units)))
            cin = cout
        }
        named += [
            ("conv5", Sequential(Conv2d(cin, widths[4], kernel: 1, bias: false), BatchNorm2d(widths[4]), ReLU())),
            ("pool", GlobalAvgPool()),
            ("fc", Linear(widths[4], classes)),
        ]
        return Sequential(named: named)
    }

    /// airbench's net (airbench94): the whitening layer (fitted by the trainer from the training
    /// images), then VGG-like blocks with BatchNorm and GELU, global max pool, a bias-free linear
    /// head scaled by 1/9. As there: every block convolution starts as the identity on its input
    /// channels (dirac), and the BatchNorms (momentum 0.4 in PyTorch's sense, eps 1e-12) keep their
    /// scale at 1 (only the bias trains).
    static func fastNet(channels c: Int, classes: Int) -> Sequential {
        func block(_ cin: Int, _ cout: Int) -> Sequential {
            Sequential(Conv2d(cin, cout, kernel: 3, padding: 1, bias: false, identityInit: true), MaxPool2d(2),
                       BatchNorm2d(cout, momentum: 0.4, epsilon: 1e-12, trainableWeight: false), GELU(),
                       Conv2d(cout, cout, kernel: 3, padding: 1, bias: false, identityInit: true),
                       BatchNorm2d(cout, momentum: 0.4, epsilon: 1e-12, trainableWeight: false), GELU())
        }
        let whiten = PatchWhitening(c, kernel: 2, bias: true)
        return Sequential(named: [
            ("whiten", whiten), ("act", GELU()),
            ("layers", Sequential(block(2 * whiten.patchDimension, 64), block(64, 256), block(256, 256))),
            ("pool", GlobalMaxPool()),
            ("head", Linear(256, classes, bias: false)),
            ("scale", Scale(1.0 / 9)),
        ])
    }
}
