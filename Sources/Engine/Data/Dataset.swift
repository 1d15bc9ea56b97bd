/// A labelled image set held as uint8 NHWC pixels (converted to [0, 1] floats batch by batch by
/// the augmentation kernel). Every example keeps a stable id: its index in the source files'
/// order (train and test numbered separately), preserved through subsets and shuffles.
public struct Dataset: Sendable {
  public var name: String
  public var height: Int
  public var width: Int
  public var channels: Int
  public var numClasses: Int
  /// [count][height][width][channels]
  public var pixels: [UInt8]
  public var labels: [Int32]
  public var ids: [Int32]

  public var count: Int { labels.count }
  public var imageSize: Int { height * width * channels }

  public init(name: String, height: Int, width: Int, channels: Int, numClasses: Int,
              pixels: [UInt8], labels: [Int32], ids: [Int32]? = nil) {
    precondition(pixels.count == labels.count * height * width * channels,
                 "pixel count \(pixels.count) does not match \(labels.count) images")
    self.name = name
    self.height = height
    self.width = width
    self.channels = channels
    self.numClasses = numClasses
    self.pixels = pixels
    self.labels = labels
    self.ids = ids ?? (0..<Int32(labels.count)).map { $0 }
  }

  /// The examples at the given positions, in that order (ids carried along).
  public func selecting(_ positions: [Int]) -> Dataset {
    var px = [UInt8]()
    px.reserveCapacity(positions.count * imageSize)
    for p in positions { px.append(contentsOf: pixels[(p * imageSize)..<((p + 1) * imageSize)]) }
    return Dataset(name: name, height: height, width: width, channels: channels,
                   numClasses: numClasses, pixels: px, labels: positions.map { labels[$0] },
                   ids: positions.map { ids[$0] })
  }
}

/// A training set and its test set.
public struct DatasetSplits: Sendable {
  public var train: Dataset
  public var test: Dataset
  public init(train: Dataset, test: Dataset) {
    self.train = train
    self.test = test
  }
}
