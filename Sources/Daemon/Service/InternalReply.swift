import Foundation
import Wire

/// A `ReplyChannel` for requests the daemon sends itself (a study's analyses are the
/// protocol's own requests): it keeps the final frame instead of sending it, drops PROGRESS
/// events, and reports cancellation from a flag its owner sets.
final class InternalReply: ReplyChannel, @unchecked Sendable {
  enum Outcome {
    case response(MessageType, Payload)
    case failure(WireError)
  }

  private let lock = NSLock()
  private var final: Outcome?
  private let cancelled: Locked<Bool>

  init(cancelled: Locked<Bool> = Locked(false)) { self.cancelled = cancelled }

  var outcome: Outcome? { lock.withLock { final } }
  var isCancelled: Bool { cancelled.current }

  func progress(_ event: ProgressEvent) {}

  func respond<T: Encodable>(_ type: MessageType, _ doc: T, tensors: [WireTensor]) {
    let result: Outcome
    do {
      result = .response(type, try Payload.encode(doc, tensors: tensors))
    } catch {
      result = .failure(WireError(.internal, "the \(type.name) doc cannot be encoded: \(error)"))
    }
    lock.withLock { if final == nil { final = result } }
  }

  func fail(_ error: WireError) {
    lock.withLock { if final == nil { final = .failure(error) } }
  }
}
