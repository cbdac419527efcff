import ArgumentParser
import Foundation
import SwiftCNN

/// `cnn models`: every model of the zoo with its size, cost, recipe and measured accuracy.
struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List every model: parameters, forward FLOPs per image, input size, recipe and measured test accuracy.",
        discussion: """
        FLOPs count the convolutions' and linear layers' multiply-adds (2 FLOPs each) for one 3x32x32 image; \
        BatchNorm, activations and pooling are not counted. Accuracies are CIFAR-10 test accuracies measured on \
        this project's development machine with the command in docs/models.md; "not measured" where none was.
        """)

    @Option(name: .customLong("image-size"), help: "Input side length.") var imageSize = 32
    @Option(help: "Number of classes.") var classes = 10

    /// Test accuracy measured with each model's recipe, and where the figure comes from.
    static let measured: [ModelKind: String] = [
        .optimized: "71.74% (guide recipe, seed 42; README)",
        .fast: "89.00% (fast recipe, seed 42, 21 min on 2 CPU cores; docs/models.md)",
        .shufflenetv2: "72.74% (its recipe cut to 4 of 15 epochs; docs/models.md)",
        .mobilenetv2: "67.93% (its recipe cut to 2 of 15 epochs; docs/models.md)",
    ]

    func run() throws {
        let input: Shape = [3, imageSize, imageSize]
        var rows: [[String]] = [["model", "parameters", "MFLOPs/image", "input", "recipe", "test accuracy"]]
        for kind in ModelKind.allCases {
            let net = try kind.network(inputShape: input, classes: classes)
            let model = try Model(name: kind.rawValue, network: net, inputShape: input, backend: CPUBackend(reference: true), seed: 1)
            let (macs, _) = try ModelCost.forwardMACs(net, input: input)
            rows.append([kind.rawValue, model.parameterCount.formatted(), String(format: "%.1f", 2 * Double(macs) / 1e6),
                         "3x\(imageSize)x\(imageSize)", Recipe.tuned(for: kind)?.rawValue ?? "none",
                         Self.measured[kind] ?? "not measured"])
        }
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        for r in rows {
            print(r.indices.map { i in i == 1 || i == 2 ? String(repeating: " ", count: widths[i] - r[i].count) + r[i]
                                  : r[i].padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
        print("\nRecipes (cnn train --recipe NAME):")
        for r in Recipe.allCases { print("  \(r.rawValue): \(r.summary)") }
    }
}
