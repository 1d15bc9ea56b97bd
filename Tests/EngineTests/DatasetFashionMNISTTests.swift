import Foundation
import XCTest

@testable import Engine

/// The real Fashion-MNIST from the Debian package dataset-fashion-mnist, when installed.
final class DatasetFashionMNISTTests: XCTestCase {
  func testInstalledFashionMNIST() throws {
    let dir = FashionMNIST.defaultDirectory
    guard FileManager.default.fileExists(atPath: dir + "/train-images-idx3-ubyte.gz")
      || FileManager.default.fileExists(atPath: dir + "/train-images-idx3-ubyte")
    else { throw XCTSkip("\(dir) not installed") }
    let splits = try DatasetLoader.load(DataSpec(dataset: "fashion-mnist"))
    let train = splits.train, test = splits.test
    XCTAssertEqual(train.count, 60000)
    XCTAssertEqual(test.count, 10000)
    for ds in [train, test] {
      XCTAssertEqual([ds.height, ds.width, ds.channels, ds.numClasses], [28, 28, 1, 10])
      XCTAssertEqual(ds.pixels.count, ds.count * 784)
      XCTAssertEqual(ds.ids.first, 0)
      XCTAssertEqual(ds.ids.last, Int32(ds.count - 1))
    }
    XCTAssertEqual(train.classCounts(), Array(repeating: 6000, count: 10))
    XCTAssertEqual(test.classCounts(), Array(repeating: 1000, count: 10))
    // Known first labels of the published files (ankle boot, t-shirt, t-shirt, dress, t-shirt).
    XCTAssertEqual(Array(train.labels.prefix(5)), [9, 0, 0, 3, 0])
    XCTAssertEqual(Array(test.labels.prefix(5)), [9, 2, 1, 1, 6])
    // A sane first image (an ankle boot): grey values span the range, the corner is background.
    let first = train.pixels[0..<784]
    XCTAssertEqual(first.max(), 255)
    XCTAssertEqual(first.first, 0)
    XCTAssertGreaterThan(first.filter { $0 == 0 }.count, 200)
    let stratified = try train.stratifiedFraction(0.1, seed: 0)
    XCTAssertEqual(stratified.classCounts(), Array(repeating: 600, count: 10))
  }
}
