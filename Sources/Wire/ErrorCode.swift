// SPEC.md section 6. Codes are stable: a code's meaning never changes.

/// Every error code of protocol version 1.
public enum ErrorCode: UInt16, CaseIterable, Sendable {
  case badMagic = 1
  case unsupportedVersion = 2
  case frameTooShort = 3
  case frameTooLarge = 4
  case unknownType = 5
  case malformedHeader = 6
  case helloRequired = 7
  case versionMismatch = 8
  case notARequest = 9
  case permissionDenied = 10
  case serverBusy = 11
  case shuttingDownClose = 12
  case duplicateRequestID = 13
  case timeout = 14
  case tooManyDescriptors = 15

  case malformedPayload = 100
  case invalidArgument = 101
  case notFound = 102
  case alreadyExists = 103
  case conflict = 104
  case cancelled = 105
  case shuttingDown = 106
  case tooManyRequests = 107
  case corrupt = 108
  case ioError = 109
  case noSpace = 110
  case dataUnavailable = 111
  case resultTooLarge = 112
  case `internal` = 113
  case executorFailed = 114

  /// Codes below this are connection errors: the daemon sends the `ERROR` frame and closes.
  public static let firstRequestError: UInt16 = 100

  /// Whether the connection is closed after this error (also the rule for codes a client
  /// does not know: see `closesConnection(code:)`).
  public var closesConnection: Bool { Self.closesConnection(code: rawValue) }

  /// Section 6: an unknown code below 100 is a connection error, from 100 a request error.
  public static func closesConnection(code: UInt16) -> Bool { code < firstRequestError }

  /// The spec's name, e.g. `FRAME_TOO_LARGE`.
  public var name: String {
    switch self {
    case .badMagic: return "BAD_MAGIC"
    case .unsupportedVersion: return "UNSUPPORTED_VERSION"
    case .frameTooShort: return "FRAME_TOO_SHORT"
    case .frameTooLarge: return "FRAME_TOO_LARGE"
    case .unknownType: return "UNKNOWN_TYPE"
    case .malformedHeader: return "MALFORMED_HEADER"
    case .helloRequired: return "HELLO_REQUIRED"
    case .versionMismatch: return "VERSION_MISMATCH"
    case .notARequest: return "NOT_A_REQUEST"
    case .permissionDenied: return "PERMISSION_DENIED"
    case .serverBusy: return "SERVER_BUSY"
    case .shuttingDownClose: return "SHUTTING_DOWN_CLOSE"
    case .duplicateRequestID: return "DUPLICATE_REQUEST_ID"
    case .timeout: return "TIMEOUT"
    case .tooManyDescriptors: return "TOO_MANY_DESCRIPTORS"
    case .malformedPayload: return "MALFORMED_PAYLOAD"
    case .invalidArgument: return "INVALID_ARGUMENT"
    case .notFound: return "NOT_FOUND"
    case .alreadyExists: return "ALREADY_EXISTS"
    case .conflict: return "CONFLICT"
    case .cancelled: return "CANCELLED"
    case .shuttingDown: return "SHUTTING_DOWN"
    case .tooManyRequests: return "TOO_MANY_REQUESTS"
    case .corrupt: return "CORRUPT"
    case .ioError: return "IO_ERROR"
    case .noSpace: return "NO_SPACE"
    case .dataUnavailable: return "DATA_UNAVAILABLE"
    case .resultTooLarge: return "RESULT_TOO_LARGE"
    case .internal: return "INTERNAL"
    case .executorFailed: return "EXECUTOR_FAILED"
    }
  }

  /// The code with this spec name, if any.
  public init?(name: String) {
    guard let code = Self.allCases.first(where: { $0.name == name }) else { return nil }
    self = code
  }
}
