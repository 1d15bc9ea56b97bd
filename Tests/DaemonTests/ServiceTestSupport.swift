import Analysis
import Foundation
import XCTest

@testable import Daemon
@testable import Engine
import Wire

/// A ReplyChannel that records what the service sends, as the transport would frame it.
final class RecordingReply: ReplyChannel, @unchecked Sendable {
  enum Final {
    case response(MessageType, Payload)
    case error(WireError)
  }

  private let cond = NSCondition()
  private var _events: [ProgressEvent] = []
  private var _final: Final?
  private var _cancelled = false
  private var _finalCount = 0

  var events: [ProgressEvent] { cond.lock(); defer { cond.unlock() }; return _events }
  var finalCount: Int { cond.lock(); defer { cond.unlock() }; return _finalCount }

  func progress(_ event: ProgressEvent) {
    // The transport would fail to frame an event that does not encode.
    XCTAssertNoThrow(try Payload.encode(event))
    cond.lock()
    _events.append(event)
    cond.broadcast()
    cond.unlock()
  }

  func respond<T: Encodable>(_ type: MessageType, _ doc: T, tensors: [WireTensor]) {
    let final: Final
    do {
      let frame = try Frame.message(type: type, requestID: 1, doc: doc, tensors: tensors)
      final = .response(type, try frame.parsedPayload())
    } catch let e as WireError {
      final = .error(e)
    } catch {
      final = .error(WireError(.internal, "encoding: \(error)"))
    }
    finish(final)
  }

  func fail(_ error: WireError) { finish(.error(error)) }

  private func finish(_ final: Final) {
    cond.lock()
    _finalCount += 1
    if _final == nil { _final = final }
    cond.broadcast()
    cond.unlock()
  }

  var isCancelled: Bool {
    get { cond.lock(); defer { cond.unlock() }; return _cancelled }
    set { cond.lock(); _cancelled = newValue; cond.unlock() }
  }

  /// The final frame, waiting for it.
  func wait(timeout: Double = 120, file: StaticString = #filePath, line: UInt = #line) -> Final? {
    let deadline = Date().addingTimeInterval(timeout)
    cond.lock()
    defer { cond.unlock() }
    while _final == nil {
      if !cond.wait(until: deadline) {
        XCTFail("no final frame within \(timeout) s", file: file, line: line)
        return nil
      }
    }
    return _final
  }

  var hasFinal: Bool { cond.lock(); defer { cond.unlock() }; return _final != nil }

  /// Waits until `predicate` holds for the events received so far.
  func waitForEvents(timeout: Double = 120, _ predicate: ([ProgressEvent]) -> Bool) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    cond.lock()
    defer { cond.unlock() }
    while !predicate(_events) {
      if _final != nil { return predicate(_events) }
      if !cond.wait(until: deadline) { return false }
    }
    return true
  }

  /// The response's payload (failing the test on an error or another type).
  func payload(_ type: MessageType, file: StaticString = #filePath, line: UInt = #line) -> Payload? {
    switch wait(file: file, line: line) {
    case .response(let t, let payload)?:
      XCTAssertEqual(t, type, file: file, line: line)
      return payload
    case .error(let e)?:
      XCTFail("expected \(type.name), got \(e)", file: file, line: line)
      return nil
    case nil:
      return nil
    }
  }

  func doc<T: Decodable>(_ type: MessageType, as: T.Type, file: StaticString = #filePath,
                         line: UInt = #line) -> T? {
    guard let payload = payload(type, file: file, line: line) else { return nil }
    do {
      return try payload.decode(T.self)
    } catch {
      XCTFail("\(type.name) doc does not decode as \(T.self): \(error)", file: file, line: line)
      return nil
    }
  }

  /// The error (failing the test on a response).
  func error(file: StaticString = #filePath, line: UInt = #line) -> WireError? {
    switch wait(file: file, line: line) {
    case .error(let e)?: return e
    case .response(let t, _)?:
      XCTFail("expected an error, got \(t.name)", file: file, line: line)
      return nil
    case nil: return nil
    }
  }
}

/// Tiny models, a small synthetic dataset, a temporary store.
class ServiceTestCase: XCTestCase {
  var storeDirectory = ""
  private var services: [DaemonService] = []

  static let syntheticTrain = 320
  static let syntheticTest = 160

  override func setUpWithError() throws {
    storeDirectory = NSTemporaryDirectory() + "blockscope-service-\(UUID().uuidString)"
    #if DEBUG
    CheckpointFaultInjection.hook = nil
    #endif
  }

  override func tearDownWithError() throws {
    #if DEBUG
    CheckpointFaultInjection.hook = nil
    #endif
    for service in services { _ = service.shutdown() }
    services = []
    try? FileManager.default.removeItem(atPath: storeDirectory)
  }

  func options() -> ServiceOptions {
    var o = ServiceOptions(storeDirectory: storeDirectory, cacheBytes: 256 << 20,
                           datasetPaths: ["cifar10": storeDirectory + "/no-cifar-here"])
    o.syntheticTrainCount = Self.syntheticTrain
    o.syntheticTestCount = Self.syntheticTest
    o.progressInterval = 0
    return o
  }

  func makeService(_ options: ServiceOptions? = nil) throws -> DaemonService {
    let service = try DaemonService(options: options ?? self.options())
    services.append(service)
    return service
  }

  /// The synthetic dataset exactly as the service builds it.
  var synthetic: DatasetSplits {
    DatasetSplits.synthetic(trainCount: Self.syntheticTrain, testCount: Self.syntheticTest, seed: 0)
  }

  static let tinyConfig = ResNetConfig(depth: 8, widthMultiplier: 0.25)

  /// An (untrained) depth-8 model written straight into the store.
  @discardableResult
  func writeModel(_ name: String, seed: UInt64 = 1) throws -> Checkpoint {
    let network = try ResNet(config: Self.tinyConfig, seed: seed)
    let checkpoint = Checkpoint(
      model: Self.tinyConfig, training: TrainConfig(epochs: 1, seed: seed),
      data: DataSpec(dataset: "synthetic"), history: [], epochsCompleted: 0,
      tensors: ModelState.tensors(of: network, optimizer: false), metadata: [:])
    try checkpoint.save(to: modelPath(name))
    return checkpoint
  }

  func modelPath(_ name: String) -> String { storeDirectory + "/models/" + name + ".bsckpt" }

  /// A TRAIN recipe of a tiny model on the synthetic data.
  func recipe(_ name: String?, epochs: Int, seed: UInt64 = 0) -> TrainRequest {
    TrainRequest(model: name, depth: 8, width: 0.25, dataset: "synthetic", epochs: epochs,
                 batchSize: 32, lr: 0.05, augment: false, seed: seed, testExamples: 64)
  }

  func request<T: Encodable>(_ type: MessageType, _ doc: T, tensors: [WireTensor] = []) -> IncomingRequest {
    IncomingRequest(type: type, requestID: 1, quiet: false,
                    payload: try! Payload.encode(doc, tensors: tensors).encoded())
  }

  func rawRequest(_ type: MessageType, json: String) -> IncomingRequest {
    IncomingRequest(type: type, requestID: 1, quiet: false,
                    payload: Payload(doc: Array(json.utf8)).encoded())
  }

  let transport = TransportStatus(connections: 1, socketPath: "/tmp/test.sock")

  /// Sends a request; the recorder gets its events and final frame.
  @discardableResult
  func send(_ service: DaemonService, _ request: IncomingRequest) -> RecordingReply {
    let reply = RecordingReply()
    service.handle(request, reply: reply, transport: transport)
    return reply
  }

  func send<T: Encodable>(_ service: DaemonService, _ type: MessageType, _ doc: T,
                          tensors: [WireTensor] = []) -> RecordingReply {
    send(service, request(type, doc, tensors: tensors))
  }

  /// Asserts that the request fails with `code` and a message containing `mention`.
  func expectError(_ reply: RecordingReply, _ code: ErrorCode, mentioning mention: String? = nil,
                   file: StaticString = #filePath, line: UInt = #line) {
    guard let e = reply.error(file: file, line: line) else { return }
    XCTAssertEqual(e.code, code, "\(e)", file: file, line: line)
    if let mention {
      XCTAssertTrue(e.message.contains(mention), "\"\(e.message)\" does not mention \(mention)",
                    file: file, line: line)
    }
  }

  /// TRAIN, then WATCH until the job ends; the watch recorder.
  func trainAndWatch(_ service: DaemonService, _ recipe: TrainRequest,
                     file: StaticString = #filePath, line: UInt = #line) -> (TrainResponse, RecordingReply)? {
    guard let started = send(service, .train, recipe).doc(.trainOK, as: TrainResponse.self,
                                                          file: file, line: line) else { return nil }
    let watch = send(service, .watch, JobRequest(job: started.job))
    return (started, watch)
  }
}
