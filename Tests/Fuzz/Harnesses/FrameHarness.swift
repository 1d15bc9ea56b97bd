import Wire

// The protocol as the daemon and the CLI read it: bytes from a socket into `FrameDecoder`,
// each frame's payload through `Payload.parse`, its doc into the message type's struct, and
// (daemon side) each frame through `ProtocolSession` as the transport drives it.
//
// Properties checked besides "no trap":
//   - pieces: the same bytes fed in pieces (sizes drawn from the input itself, so a crasher
//     replays exactly) give the same frames and the same error or close as fed at once;
//     after an error every later `next()` throws it again;
//   - frames: a decoded frame encodes back to the bytes it came from;
//   - docs: a doc that decodes, encoded again with its tensors, decodes to an equal value.

/// The `frame` harness.
public enum FrameHarness {
  public static func run(_ data: [UInt8]) throws(FuzzViolation) {
    for role in [FrameDecoder.Role.server, .client] {
      let whole = try decode(data, role: role, pieces: [data.count])
      let pieces = try decode(data, role: role, pieces: pieceSizes(for: data))
      guard whole == pieces else {
        throw FuzzViolation("\(role): fed at once gives \(whole), fed in pieces \(pieces)")
      }
      if data.count <= 256 {
        let bytewise = try decode(data, role: role, pieces: Array(repeating: 1, count: data.count))
        guard whole == bytewise else {
          throw FuzzViolation("\(role): fed at once gives \(whole), byte by byte \(bytewise)")
        }
      }
    }
  }

  /// What one pass of decoding produced.
  struct Outcome: Equatable, CustomStringConvertible {
    var frames: [Frame] = []
    var error: WireError?
    /// Set when the session closed the connection (server role): decoding stops there. (What
    /// was fed but not decoded differs between passes then, so it is not compared; without a
    /// close or an error it is the input after the last frame, fixed by `frames`.)
    var closedBySession: WireError?

    var description: String {
      "\(frames.count) frames, error \(error.map { "\($0)" } ?? "none"), "
        + "closed \(closedBySession.map { "\($0)" } ?? "no")"
    }
  }

  /// Feeds `data` in pieces of the given sizes (the last piece takes the rest), taking frames
  /// after every piece as the transport does.
  static func decode(_ data: [UInt8], role: FrameDecoder.Role, pieces: [Int]) throws(FuzzViolation) -> Outcome {
    var decoder = FrameDecoder(role: role)
    var session = ProtocolSession()
    var outcome = Outcome()
    var offset = 0
    var index = 0
    while offset < data.count, outcome.error == nil, outcome.closedBySession == nil {
      let size = index < pieces.count ? min(pieces[index], data.count - offset) : data.count - offset
      index += 1
      decoder.feed(data[offset..<(offset + size)])
      offset += size
      while true {
        let frame: Frame?
        do {
          frame = try decoder.next()
        } catch {
          outcome.error = error
          try checkErrorRepeats(error, &decoder)
          break
        }
        guard let frame else { break }
        outcome.frames.append(frame)
        try checkFrame(frame, data: data, consumedUpTo: offset - decoder.bufferedByteCount)
        try checkDoc(frame)
        if role == .server, let closing = receive(frame, &session, &decoder) {
          outcome.closedBySession = closing
          break
        }
      }
    }
    return outcome
  }

  /// The transport's handling of one frame; returns the error it closes the connection with.
  private static func receive(_ frame: Frame, _ session: inout ProtocolSession,
                              _ decoder: inout FrameDecoder) -> WireError? {
    switch session.receive(frame) {
    case .hello(_, let version):
      decoder.negotiatedVersion = version
    case .dispatch(let dispatched):
      // Answer every other request at once and leave the rest in flight, so that duplicate
      // ids and the in-flight limit are reachable.
      if dispatched.requestID % 2 == 0 { session.complete(requestID: dispatched.requestID) }
    case .reject, .peerError:
      break
    case .close(let error):
      return error
    }
    return nil
  }

  /// A failed decoder keeps failing with the same error, whatever is fed to it.
  private static func checkErrorRepeats(_ error: WireError, _ decoder: inout FrameDecoder) throws(FuzzViolation) {
    decoder.feed([0x42])
    var repeated: WireError?
    do throws(WireError) {
      _ = try decoder.next()
    } catch {
      repeated = error
    }
    guard repeated == error else {
      throw FuzzViolation("after \(error) the decoder gave \(repeated.map { "\($0)" } ?? "no error")")
    }
  }

  /// The frame's encoding is the slice of the input that ends where the decoder now stands.
  private static func checkFrame(_ frame: Frame, data: [UInt8], consumedUpTo end: Int) throws(FuzzViolation) {
    let encoded = frame.encoded()
    guard end >= encoded.count, data[(end - encoded.count)..<end].elementsEqual(encoded) else {
      throw FuzzViolation("frame \(frame.type.debugName) id \(frame.requestID) does not encode to its input bytes")
    }
  }

  /// Parses the payload and decodes the doc as every type a receiver reads this frame as.
  static func checkDoc(_ frame: Frame) throws(FuzzViolation) {
    guard let payload = try? frame.parsedPayload() else { return }
    // Receivers read tensors of any dtype widened (analyses) or as stored.
    for tensor in payload.tensors where tensor.valuesAsDoubles.count != tensor.elementCount {
      throw FuzzViolation("tensor '\(tensor.name)' \(tensor.dtype.rawValue)\(tensor.shape) widens to the wrong count")
    }
    if frame.type == .sessionBatch { try checkSessionBatch(frame, payload) }
    switch frame.type {
    case .hello: try roundTrip(HelloRequest.self, frame, payload)
    case .status, .datasets, .jobs, .models, .shutdown, .studyList, .foreignModels:
      try roundTrip(EmptyDoc.self, frame, payload)
    case .train: try roundTrip(TrainRequest.self, frame, payload)
    case .watch, .cancel: try roundTrip(JobRequest.self, frame, payload)
    case .resume: try roundTrip(ResumeRequest.self, frame, payload)
    case .describe, .deleteModel: try roundTrip(ModelRequest.self, frame, payload)
    case .heatmap: try roundTrip(HeatmapRequest.self, frame, payload)
    case .pc: try roundTrip(PCRequest.self, frame, payload)
    case .probe: try roundTrip(ProbeRequest.self, frame, payload)
    case .deleteBlocks: try roundTrip(DeleteBlocksRequest.self, frame, payload)
    case .compareOutputs: try roundTrip(CompareOutputsRequest.self, frame, payload)
    case .cka: try roundTrip(CKARequest.self, frame, payload)
    case .export: try roundTrip(ExportRequest.self, frame, payload)
    case .studyCreate: try roundTrip(StudyCreateRequest.self, frame, payload)
    case .studyStatus, .studyCancel, .studyResume: try roundTrip(StudyRequest.self, frame, payload)
    case .studyDelete: try roundTrip(StudyDeleteRequest.self, frame, payload)
    case .studyResults: try roundTrip(StudyResultsRequest.self, frame, payload)
    case .studyResult: try roundTrip(StudyResultRequest.self, frame, payload)
    case .sessionOpen: try roundTrip(SessionOpenRequest.self, frame, payload)
    case .sessionBatch: try roundTrip(SessionBatchRequest.self, frame, payload)
    case .sessionClose: try roundTrip(SessionCloseRequest.self, frame, payload)
    default: try checkResponseDoc(frame, payload)
    }
  }

  /// What the daemon does with a SESSION_BATCH besides decoding its doc: reads the tensors in
  /// place (`Payload.Layout`), a batch name as a dataset reference, and memfd descriptors as
  /// byte ranges of the shared file.
  private static func checkSessionBatch(_ frame: Frame, _ payload: Payload) throws(FuzzViolation) {
    guard let layout = try? Payload.Layout.of(frame.payload), layout.tensors.count == payload.tensors.count else {
      throw FuzzViolation("Payload.Layout refuses a SESSION_BATCH payload that Payload.parse accepts")
    }
    for (placed, tensor) in zip(layout.tensors, payload.tensors) {
      let inPlace = frame.payload.withUnsafeBytes { raw in
        WireTensor.widenedFloats(dtype: placed.descriptor.dtype, bytes: UnsafeRawBufferPointer(rebasing: raw[placed.bytes]))
      }
      guard inPlace?.map(\.bitPattern) == tensor.widenedFloats?.map(\.bitPattern) else {
        throw FuzzViolation("tensor '\(tensor.name)' widens differently in place and copied")
      }
    }
    guard let request = try? payload.decode(SessionBatchRequest.self) else { return }
    if let reference = try? DatasetReference.parse(request.batch), !(0..<reference.end).contains(reference.start) {
      throw FuzzViolation("batch name \(request.batch) parses as the empty range \(reference.start):\(reference.end)")
    }
    // The memfd's size, drawn from the frame so that both fitting and overlong tensors occur.
    let fileSize = Int(frame.requestID % (1 << 20))
    if let shared = request.memfd, let ranges = try? SessionBatchRequest.sharedRanges(shared, fileSize: fileSize) {
      for range in ranges where range.lowerBound < 0 || range.upperBound > fileSize {
        throw FuzzViolation("memfd range \(range) lies outside a file of \(fileSize) bytes")
      }
    }
  }

  private static func checkResponseDoc(_ frame: Frame, _ payload: Payload) throws(FuzzViolation) {
    switch frame.type {
    case .helloOK: try roundTrip(HelloResponse.self, frame, payload)
    case .statusOK: try roundTrip(StatusResponse.self, frame, payload)
    case .datasetsOK: try roundTrip(DatasetsResponse.self, frame, payload)
    case .trainOK: try roundTrip(TrainResponse.self, frame, payload)
    case .jobsOK: try roundTrip(JobsResponse.self, frame, payload)
    case .watchOK, .cancelOK, .resumeOK: try roundTrip(JobEntry.self, frame, payload)
    case .modelsOK: try roundTrip(ModelsResponse.self, frame, payload)
    case .describeOK: try roundTrip(DescribeResponse.self, frame, payload)
    case .deleteModelOK: try roundTrip(DeleteModelResponse.self, frame, payload)
    case .ckaOK: try roundTrip(CKAResponse.self, frame, payload)
    case .exportOK: try roundTrip(ExportResponse.self, frame, payload)
    case .shutdownOK: try roundTrip(ShutdownResponse.self, frame, payload)
    case .studyCreateOK, .studyStatusOK, .studyCancelOK, .studyResumeOK:
      try roundTrip(StudyStatusResponse.self, frame, payload)
    case .studyListOK: try roundTrip(StudyListResponse.self, frame, payload)
    case .studyDeleteOK: try roundTrip(StudyDeleteResponse.self, frame, payload)
    case .studyResultsOK: try roundTrip(StudyResultsResponse.self, frame, payload)
    case .sessionOpenOK: try roundTrip(SessionOpenResponse.self, frame, payload)
    case .sessionBatchOK: try roundTrip(SessionBatchResponse.self, frame, payload)
    case .sessionCloseOK: try roundTrip(SessionCloseResponse.self, frame, payload)
    case .foreignModelsOK: try roundTrip(ForeignModelsResponse.self, frame, payload)
    case .progress: try roundTrip(ProgressEvent.self, frame, payload)
    case .error: try roundTrip(ErrorDoc.self, frame, payload)
    case .heatmapOK, .pcOK, .probeOK, .deleteBlocksOK, .compareOutputsOK, .studyResultOK:
      // STUDY_RESULT_OK carries a stored analysis answer of any of these kinds.
      if frame.type == .heatmapOK || frame.type == .studyResultOK { try roundTrip(HeatmapResponse.self, frame, payload) }
      if frame.type == .pcOK || frame.type == .studyResultOK { try roundTrip(PCResponse.self, frame, payload) }
      if frame.type == .probeOK || frame.type == .studyResultOK { try roundTrip(ProbeResponse.self, frame, payload) }
      if frame.type == .deleteBlocksOK || frame.type == .studyResultOK {
        try roundTrip(DeleteBlocksResponse.self, frame, payload)
      }
      if frame.type == .compareOutputsOK || frame.type == .studyResultOK {
        try roundTrip(CompareOutputsResponse.self, frame, payload)
      }
    default:
      break
    }
  }

  /// Decodes the doc as `T`; when it decodes, encodes it again with the payload's tensors and
  /// requires the same value back. (An encoding that fails, say a frame over its limit, is not
  /// a fault of the reader.)
  private static func roundTrip<T: Codable & Equatable>(_: T.Type, _ frame: Frame, _ payload: Payload) throws(FuzzViolation) {
    guard let doc = try? payload.decode(T.self) else { return }
    guard let again = try? Frame.message(type: frame.type, requestID: frame.requestID, doc: doc,
                                         tensors: payload.tensors) else { return }
    let decoded: T
    do {
      decoded = try again.decodeDoc(T.self)
    } catch {
      throw FuzzViolation("\(T.self) decoded from \(frame.type.name), encoded again, fails to decode: \(error)")
    }
    guard decoded == normalized(doc) else {
      throw FuzzViolation("\(T.self) decoded from \(frame.type.name) changes when encoded and decoded again")
    }
  }

  /// The doc without what its decoding keeps and its encoding drops by design: a study
  /// declaration's `unknownKeys` (misspelt keys, kept only for validation to refuse them).
  private static func normalized<T>(_ doc: T) -> T {
    if var request = doc as? StudyCreateRequest {
      request.declaration.unknownKeys = []
      return request as! T
    }
    if var response = doc as? StudyResultsResponse {
      response.declaration.unknownKeys = []
      return response as! T
    }
    return doc
  }

  /// Piece sizes from 1 to 64 bytes, drawn from a generator seeded by the input's bytes.
  static func pieceSizes(for data: [UInt8]) -> [Int] {
    var state: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the input as the seed
    for byte in data.prefix(64) { state = (state ^ UInt64(byte)) &* 0x0000_0100_0000_01b3 }
    var sizes: [Int] = []
    var total = 0
    while total < data.count {
      state ^= state << 13
      state ^= state >> 7
      state ^= state << 17
      let size = Int(state % 64) + 1
      sizes.append(size)
      total += size
    }
    return sizes
  }
}
