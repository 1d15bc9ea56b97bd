// SPEC.md section 7: HELLO (0x0001) / HELLO_OK (0x8001). A HELLO frame is always encoded with
// header version 1, so that any future daemon can read it.

/// `HELLO`: the versions the client speaks.
public struct HelloRequest: Codable, Hashable, Sendable {
  public var minVersion: UInt8
  public var maxVersion: UInt8
  /// Free text naming the client.
  public var client: String

  public init(minVersion: UInt8 = FrameHeader.supportedVersions.lowerBound,
              maxVersion: UInt8 = FrameHeader.supportedVersions.upperBound, client: String) {
    self.minVersion = minVersion
    self.maxVersion = maxVersion
    self.client = client
  }

  enum CodingKeys: String, CodingKey {
    case minVersion = "min_version", maxVersion = "max_version", client
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(minVersion: try c.value(.minVersion), maxVersion: try c.value(.maxVersion),
              client: try c.value(.client))
  }
}

/// `HELLO_OK`: the chosen version (later frames carry it) and the daemon's limits.
public struct HelloResponse: Codable, Hashable, Sendable {
  /// The largest frame lengths and doc size the daemon accepts.
  public struct Limits: Codable, Hashable, Sendable {
    /// The largest `length` of a request other than `CKA`.
    public var maxRequest: Int
    /// The largest `length` of a `CKA` request.
    public var maxCkaRequest: Int
    /// The largest `doc_length`.
    public var maxDoc: Int

    public init(maxRequest: Int, maxCkaRequest: Int, maxDoc: Int) {
      self.maxRequest = maxRequest
      self.maxCkaRequest = maxCkaRequest
      self.maxDoc = maxDoc
    }

    /// The limits of SPEC.md section 5.
    public static let protocolLimits = Limits(maxRequest: MessageType.status.limit,
                                              maxCkaRequest: MessageType.cka.limit,
                                              maxDoc: Payload.maxDocLength)

    enum CodingKeys: String, CodingKey {
      case maxRequest = "max_request", maxCkaRequest = "max_cka_request", maxDoc = "max_doc"
    }

    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(maxRequest: try c.value(.maxRequest), maxCkaRequest: try c.value(.maxCkaRequest),
                maxDoc: try c.value(.maxDoc))
    }
  }

  public var version: UInt8
  /// `"blockscoped"`.
  public var server: String
  public var serverVersion: String
  public var pid: Int
  public var limits: Limits

  public init(version: UInt8, server: String = "blockscoped", serverVersion: String, pid: Int,
              limits: Limits = .protocolLimits) {
    self.version = version
    self.server = server
    self.serverVersion = serverVersion
    self.pid = pid
    self.limits = limits
  }

  enum CodingKeys: String, CodingKey {
    case version, server, serverVersion = "server_version", pid, limits
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(version: try c.value(.version), server: try c.value(.server),
              serverVersion: try c.value(.serverVersion), pid: try c.value(.pid),
              limits: try c.value(.limits))
  }
}
