import CNNCore

/// Index lists of a train/validation split (each sorted ascending).
public struct DatasetSplit: Sendable, Equatable {
    public var train: [Int]
    public var validation: [Int]
}

extension ImageDataset {
    /// A seeded random split: `validationFraction` of the images (rounded to the nearest whole
    /// image) go to validation, the rest to training. With `stratified`, each class is split
    /// separately, so both parts keep the dataset's class proportions.
    ///
    /// `optionName` is the option the fraction came from, named in the error when it is out of
    /// range (it must be strictly between 0 and 1, and leave at least one image on each side).
    public func split(validationFraction: Double = 0.2, seed: UInt64, stratified: Bool = false,
                      optionName: String = "--val-split") throws -> DatasetSplit {
        try DatasetSplit.make(labels: labels, numClasses: numClasses, validationFraction: validationFraction,
                              seed: seed, stratified: stratified, optionName: optionName)
    }
}

extension DatasetSplit {
    public static func make(labels: [Int32], numClasses: Int, validationFraction f: Double, seed: UInt64,
                            stratified: Bool = false, optionName: String = "--val-split") throws -> DatasetSplit {
        guard f.isFinite, f > 0, f < 1 else {
            throw CNNError.invalidArgument("\(optionName) \(f) is out of range: the validation fraction must be strictly between 0 and 1 "
                + "(e.g. \(optionName) 0.2 keeps 20% of the training images for validation).")
        }
        var rng = SeededRNG(seed: seed ^ 0x5350_4C49_545F_5631)  // "SPLIT_V1": independent of other streams from `seed`
        var validation: [Int] = []
        var train: [Int] = []
        if stratified {
            var byClass = [[Int]](repeating: [], count: numClasses)
            for (i, l) in labels.enumerated() { byClass[Int(l)].append(i) }
            for var members in byClass where !members.isEmpty {
                DataRandom.shuffle(&members, &rng)
                let v = Int((Double(members.count) * f).rounded())
                validation += members[..<v]
                train += members[v...]
            }
        } else {
            var all = Array(labels.indices)
            DataRandom.shuffle(&all, &rng)
            let v = Int((Double(all.count) * f).rounded())
            validation = Array(all[..<v])
            train = Array(all[v...])
        }
        guard !validation.isEmpty, !train.isEmpty else {
            throw CNNError.invalidArgument("\(optionName) \(f) of \(labels.count) images leaves \(train.count) for training and "
                + "\(validation.count) for validation; both need at least one. Use a fraction nearer 0.5 or more images.")
        }
        return DatasetSplit(train: train.sorted(), validation: validation.sorted())
    }
}
