// SPEC.md section 4 (the types) and section 5 (the largest `length` of each).

/// Every message type of protocol version 1. A response is its request's type with bit 15 set.
public enum MessageType: UInt16, CaseIterable, Sendable {
  case hello = 0x0001
  case status = 0x0002
  case datasets = 0x0003
  case train = 0x0004
  case jobs = 0x0005
  case watch = 0x0006
  case cancel = 0x0007
  case resume = 0x0008
  case models = 0x0009
  case describe = 0x000A
  case deleteModel = 0x000B
  case heatmap = 0x000C
  case pc = 0x000D
  case probe = 0x000E
  case deleteBlocks = 0x000F
  case compareOutputs = 0x0010
  case cka = 0x0011
  case export = 0x0012
  case shutdown = 0x0013
  case studyCreate = 0x0014
  case studyStatus = 0x0015
  case studyList = 0x0016
  case studyCancel = 0x0017
  case studyResume = 0x0018
  case studyDelete = 0x0019
  case studyResults = 0x001A
  case studyResult = 0x001B
  case sessionOpen = 0x001C
  case sessionBatch = 0x001D
  case sessionClose = 0x001E
  case foreignModels = 0x001F
  case studyRun = 0x0020

  case helloOK = 0x8001
  case statusOK = 0x8002
  case datasetsOK = 0x8003
  case trainOK = 0x8004
  case jobsOK = 0x8005
  case watchOK = 0x8006
  case cancelOK = 0x8007
  case resumeOK = 0x8008
  case modelsOK = 0x8009
  case describeOK = 0x800A
  case deleteModelOK = 0x800B
  case heatmapOK = 0x800C
  case pcOK = 0x800D
  case probeOK = 0x800E
  case deleteBlocksOK = 0x800F
  case compareOutputsOK = 0x8010
  case ckaOK = 0x8011
  case exportOK = 0x8012
  case shutdownOK = 0x8013
  case studyCreateOK = 0x8014
  case studyStatusOK = 0x8015
  case studyListOK = 0x8016
  case studyCancelOK = 0x8017
  case studyResumeOK = 0x8018
  case studyDeleteOK = 0x8019
  case studyResultsOK = 0x801A
  case studyResultOK = 0x801B
  case sessionOpenOK = 0x801C
  case sessionBatchOK = 0x801D
  case sessionCloseOK = 0x801E
  case foreignModelsOK = 0x801F
  case studyRunOK = 0x8020

  /// Zero or more per request, daemon to client, before the request's final frame.
  case progress = 0x4001
  /// A final frame in place of a response, or a connection error (request id 0).
  case error = 0xFFFF

  static let responseBit: UInt16 = 0x8000

  /// A client-to-daemon request.
  public var isRequest: Bool { rawValue & 0xC000 == 0 }
  /// The answer to a request (`ERROR` is not counted: it answers any request).
  public var isResponse: Bool { self != .error && rawValue & Self.responseBit != 0 }
  /// `PROGRESS`.
  public var isEvent: Bool { self == .progress }

  /// The response type of a request (`STATUS` -> `STATUS_OK`); nil for other types.
  public var responseType: MessageType? {
    isRequest ? MessageType(rawValue: rawValue | Self.responseBit) : nil
  }

  /// The request type a response answers; nil for other types.
  public var requestType: MessageType? {
    isResponse ? MessageType(rawValue: rawValue & ~Self.responseBit) : nil
  }

  /// The spec's name: `HELLO`, `HELLO_OK`, `PROGRESS`, `ERROR`.
  public var name: String {
    switch self {
    case .progress: return "PROGRESS"
    case .error: return "ERROR"
    default:
      if let request = requestType { return request.name + "_OK" }
      return Self.requestNames[self]!
    }
  }

  private static let requestNames: [MessageType: String] = [
    .hello: "HELLO", .status: "STATUS", .datasets: "DATASETS", .train: "TRAIN", .jobs: "JOBS",
    .watch: "WATCH", .cancel: "CANCEL", .resume: "RESUME", .models: "MODELS",
    .describe: "DESCRIBE", .deleteModel: "DELETE_MODEL", .heatmap: "HEATMAP", .pc: "PC",
    .probe: "PROBE", .deleteBlocks: "DELETE_BLOCKS", .compareOutputs: "COMPARE_OUTPUTS",
    .cka: "CKA", .export: "EXPORT", .shutdown: "SHUTDOWN",
    .studyCreate: "STUDY_CREATE", .studyStatus: "STUDY_STATUS", .studyList: "STUDY_LIST",
    .studyCancel: "STUDY_CANCEL", .studyResume: "STUDY_RESUME", .studyDelete: "STUDY_DELETE",
    .studyResults: "STUDY_RESULTS", .studyResult: "STUDY_RESULT",
    .sessionOpen: "SESSION_OPEN", .sessionBatch: "SESSION_BATCH", .sessionClose: "SESSION_CLOSE",
    .foreignModels: "FOREIGN_MODELS", .studyRun: "STUDY_RUN",
  ]

  /// The type with this spec name, if any.
  public init?(name: String) {
    guard let type = Self.allCases.first(where: { $0.name == name }) else { return nil }
    self = type
  }

  /// The largest `length` (header + payload bytes) a frame of this type may announce.
  public var limit: Int {
    switch self {
    case .cka: return 512 << 20
    // Activations: 64 MiB of tensors after a doc of up to 4 MiB (a 256 x 16384 f32
    // representation is 16 MiB: four per frame).
    case .sessionBatch: return (68 << 20) + FrameHeader.headerSize
    case _ where isRequest: return (4 << 20) + FrameHeader.headerSize
    case .heatmapOK, .pcOK, .studyResultOK: return 256 << 20
    case .exportOK: return FrameHeader.maxLength
    default: return 16 << 20
    }
  }

  /// `NAME (0x000C)`, for messages.
  public var debugName: String { "\(name) (\(hex(rawValue)))" }
}

/// `0x000C`: four hex digits, as the spec writes types.
func hex(_ value: UInt16) -> String {
  "0x" + hexByte(UInt8(value >> 8)) + hexByte(UInt8(value & 0xFF))
}

/// Two upper-case hex digits.
func hexByte(_ value: UInt8) -> String {
  let digits = String(value, radix: 16, uppercase: true)
  return digits.count == 1 ? "0" + digits : digits
}
