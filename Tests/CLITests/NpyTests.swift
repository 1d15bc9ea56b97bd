import XCTest
@testable import blockscope
import Wire

/// Bytes from a hex string (fixtures written by numpy).
func hexBytes(_ hex: String) -> [UInt8] {
  var bytes: [UInt8] = []
  var iterator = hex.unicodeScalars.makeIterator()
  while let high = iterator.next(), let low = iterator.next() {
    bytes.append(UInt8(String(high) + String(low), radix: 16)!)
  }
  return bytes
}

/// A fresh temporary directory, removed by the returned closure.
func temporaryDirectory(_ name: String) throws -> String {
  let path = NSTemporaryDirectory() + "blockscope-cli-\(name)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
  try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
  return path
}

/// .npy fixtures written by numpy 2.4 (`np.save`, and `numpy.lib.format.write_array` for the
/// 2.0 and 3.0 formats).
enum NumpyFixtures {
  static let f8_2x3 = "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000000000000000000000000000f83f00000000000002c059f3f8c21f6ea501182d4454fb2109400000000000000080"
  static let f4_4 = "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028342c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000803f000000bf00005040caf24971"
  static let i4_2x2 = "934e554d5059010076007b276465736372273a20273c6934272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c2032292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a01000000feffffffffffff7f00000080"
  static let u1_3 = "934e554d5059010076007b276465736372273a20277c7531272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028332c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a007fff"
  static let f8_scalar = "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a0000000000000440"
  static let f4_0x3 = "934e554d5059010076007b276465736372273a20273c6634272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028302c2033292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a"
  static let f8_bigEndian = "934e554d5059010076007b276465736372273a20273e6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a3ff00000000000004000000000000000"
  static let i8 = "934e554d5059010076007b276465736372273a20273c6938272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d2020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a01000000000000000200000000000000"
  static let f8_fortran = "934e554d5059010076007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a20547275652c20277368617065273a2028322c2033292c207d20202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a00000000000000000000000000000840000000000000f03f000000000000104000000000000000400000000000001440"
  static let f8_v2 = "934e554d50590200740000007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000f03f0000000000000040"
  static let f8_v3 = "934e554d50590300740000007b276465736372273a20273c6638272c2027666f727472616e5f6f72646572273a2046616c73652c20277368617065273a2028322c292c207d202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020202020200a000000000000f03f0000000000000040"
}

final class NpyTests: XCTestCase {
  func testReadsWhatNumpyWrites() throws {
    let f8 = try Npy.decode(hexBytes(NumpyFixtures.f8_2x3))
    XCTAssertEqual(f8.dtype, .f64)
    XCTAssertEqual(f8.shape, [2, 3])
    XCTAssertEqual(f8.doubles, [0.0, 1.5, -2.25, 1e-300, Double.pi, -0.0])
    XCTAssertEqual(f8.doubles[5].sign, .minus)

    let f4 = try Npy.decode(hexBytes(NumpyFixtures.f4_4))
    XCTAssertEqual(f4.dtype, .f32)
    XCTAssertEqual(f4.shape, [4])
    XCTAssertEqual(f4.tensor(named: "x").floats, [1.0, -0.5, 3.25, 1e30])

    let i4 = try Npy.decode(hexBytes(NumpyFixtures.i4_2x2))
    XCTAssertEqual(i4.dtype, .i32)
    XCTAssertEqual(i4.tensor(named: "x").int32s, [1, -2, Int32.max, Int32.min])

    let u1 = try Npy.decode(hexBytes(NumpyFixtures.u1_3))
    XCTAssertEqual(u1.dtype, .u8)
    XCTAssertEqual(u1.bytes, [0, 127, 255])

    let scalar = try Npy.decode(hexBytes(NumpyFixtures.f8_scalar))
    XCTAssertEqual(scalar.shape, [])
    XCTAssertEqual(scalar.doubles, [2.5])

    let empty = try Npy.decode(hexBytes(NumpyFixtures.f4_0x3))
    XCTAssertEqual(empty.shape, [0, 3])
    XCTAssertEqual(empty.bytes, [])
  }

  func testReadsFormats2And3() throws {
    for fixture in [NumpyFixtures.f8_v2, NumpyFixtures.f8_v3] {
      let array = try Npy.decode(hexBytes(fixture))
      XCTAssertEqual(array.shape, [2])
      XCTAssertEqual(array.doubles, [1, 2])
    }
  }

  func testWritesTheBytesNumpyWrites() {
    XCTAssertEqual(Npy.encode(NpyArray(doubles: [0.0, 1.5, -2.25, 1e-300, Double.pi, -0.0], shape: [2, 3])),
                   hexBytes(NumpyFixtures.f8_2x3))
    XCTAssertEqual(Npy.encode(NpyArray(floats: [1.0, -0.5, 3.25, 1e30], shape: [4])), hexBytes(NumpyFixtures.f4_4))
    XCTAssertEqual(Npy.encode(NpyArray(int32s: [1, -2, .max, .min], shape: [2, 2])), hexBytes(NumpyFixtures.i4_2x2))
    XCTAssertEqual(Npy.encode(NpyArray(uint8s: [0, 127, 255], shape: [3])), hexBytes(NumpyFixtures.u1_3))
    XCTAssertEqual(Npy.encode(NpyArray(doubles: [2.5], shape: [])), hexBytes(NumpyFixtures.f8_scalar))
    XCTAssertEqual(Npy.encode(NpyArray(floats: [], shape: [0, 3])), hexBytes(NumpyFixtures.f4_0x3))
  }

  func testRoundTripsEveryDtypeAndRank() throws {
    let directory = try temporaryDirectory("npy")
    defer { try? FileManager.default.removeItem(atPath: directory) }
    let arrays = [
      NpyArray(doubles: (0..<24).map { Double($0) * 0.1 - 1 }, shape: [2, 3, 4]),
      NpyArray(floats: [.nan, .infinity, -1, 0], shape: [2, 2]),
      NpyArray(int32s: [7], shape: [1]),
      NpyArray(uint8s: Array(0...255), shape: [16, 16]),
      NpyArray(doubles: [], shape: [0]),
      NpyArray(int32s: Array(0..<1_000_000).map(Int32.init), shape: [1_000_000]),
    ]
    for (index, array) in arrays.enumerated() {
      let path = directory + "/a\(index).npy"
      try Npy.write(array, to: path)
      let back = try Npy.read(path)
      XCTAssertEqual(back.dtype, array.dtype)
      XCTAssertEqual(back.shape, array.shape)
      XCTAssertEqual(back.bytes, array.bytes)
      // The data starts at a multiple of 64 bytes, as numpy requires.
      let encoded = Npy.encode(array)
      XCTAssertEqual((encoded.count - array.bytes.count) % 64, 0)
    }
  }

  func testRefusesWhatItCannotRead() {
    func message(_ bytes: [UInt8]) -> String {
      do {
        _ = try Npy.decode(bytes, name: "in.npy")
        return "accepted"
      } catch {
        return "\(error)"
      }
    }
    XCTAssertTrue(message(hexBytes(NumpyFixtures.f8_bigEndian)).contains("'>f8' is not supported"))
    XCTAssertTrue(message(hexBytes(NumpyFixtures.i8)).contains("'<i8' is not supported"))
    XCTAssertTrue(message(hexBytes(NumpyFixtures.f8_fortran)).contains("Fortran"))
    let good = hexBytes(NumpyFixtures.f8_2x3)
    XCTAssertTrue(message(Array(good.dropLast(3))).contains("truncated .npy data"))
    XCTAssertTrue(message(good + [0]).contains("unexpected bytes after"))
    XCTAssertTrue(message(Array("not numpy at all".utf8)).contains("not a .npy file"))
    XCTAssertTrue(message(Array(good.prefix(40))).contains("truncated .npy header"))
    var version = good
    version[6] = 4
    XCTAssertTrue(message(version).contains("version 4.0"))
    XCTAssertTrue(message(good).hasPrefix("accepted"))
    XCTAssertTrue(message(hexBytes(NumpyFixtures.i8)).hasPrefix("in.npy: "))
  }

  func testParsesHeaderVariants() throws {
    let header = try Npy.HeaderDict.parse("{'descr':'<f4','shape':(3,4,),'fortran_order':False}")
    XCTAssertEqual(header.descr, "<f4")
    XCTAssertEqual(header.shape, [3, 4])
    XCTAssertFalse(header.fortranOrder)
    XCTAssertThrowsError(try Npy.HeaderDict.parse("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }"))
    XCTAssertThrowsError(try Npy.HeaderDict.parse("{'descr': '<f4', 'shape': (1,), }"))
    XCTAssertEqual(Npy.shapeRepr([]), "()")
    XCTAssertEqual(Npy.shapeRepr([5]), "(5,)")
    XCTAssertEqual(Npy.shapeRepr([5, 6]), "(5, 6)")
  }
}

final class CSVTests: XCTestCase {
  func testHeatmapMatrixHasNamesAndEmptyUndefinedCells() {
    let text = CSV.matrix([1, 0.5, nil, 0.1 + 0.2], rowNames: ["stem.conv", "s1.b0.out"],
                          columnNames: ["a", "b,c"])
    XCTAssertEqual(text, ",a,\"b,c\"\nstem.conv,1.0,0.5\ns1.b0.out,,0.30000000000000004\n")
    let records = CSV.parse(text)
    XCTAssertEqual(records, [["", "a", "b,c"], ["stem.conv", "1.0", "0.5"], ["s1.b0.out", "", "0.30000000000000004"]])
    // Numbers read back to the same Double.
    XCTAssertEqual(Double(records[2][2]), 0.1 + 0.2)
  }

  func testQuotingAndParsing() {
    XCTAssertEqual(CSV.field("plain"), "plain")
    XCTAssertEqual(CSV.field("say \"hi\""), "\"say \"\"hi\"\"\"")
    XCTAssertEqual(CSV.field("two\nlines"), "\"two\nlines\"")
    XCTAssertEqual(CSV.field(" padded"), "\" padded\"")
    XCTAssertEqual(CSV.parse("a,\"b \"\"q\"\", c\"\r\nx,y\n"), [["a", "b \"q\", c"], ["x", "y"]])
    XCTAssertEqual(CSV.parse(""), [])
  }
}
