// SPEC.md section 7: STUDY_CREATE (0x0014), STUDY_STATUS (0x0015), STUDY_LIST (0x0016),
// STUDY_CANCEL (0x0017), STUDY_RESUME (0x0018), STUDY_DELETE (0x0019), STUDY_RESULTS (0x001A),
// STUDY_RESULT (0x001B).

/// `STUDY_CREATE`: declares a study and starts it. Declaring an existing study again with the
/// same declaration answers its status (nothing is retrained); another declaration under a
/// taken name is ALREADY_EXISTS.
public struct StudyCreateRequest: Codable, Hashable, Sendable {
  public var study: String
  public var declaration: StudyDeclaration
  /// Where its models train (default local). For an existing study, a different executor is
  /// STUDY_RUN's change.
  public var executor: StudyExecutor?

  public init(study: String, declaration: StudyDeclaration, executor: StudyExecutor? = nil) {
    self.study = study
    self.declaration = declaration
    self.executor = executor
  }

  enum CodingKeys: String, CodingKey { case study, declaration, executor }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study), declaration: try c.value(.declaration),
              executor: try c.ifPresent(.executor))
  }
}

/// `STUDY_STATUS`, `STUDY_CANCEL`, `STUDY_RESUME`, `STUDY_RESULTS`: doc `study`.
public struct StudyRequest: Codable, Hashable, Sendable {
  public var study: String
  public init(study: String) { self.study = study }
  enum CodingKeys: String, CodingKey { case study }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study))
  }
}

/// `STUDY_RESULTS`: one page of a study's result index (results ordered by key).
public struct StudyResultsRequest: Codable, Hashable, Sendable {
  /// Results per answer at most (a page of 2000 entries is ~0.6 MiB, far below the doc limit).
  public static let maxLimit = 2000
  public var study: String
  /// Index of the first result of the page.
  public var offset: Int
  /// Results in the page, 1 to `maxLimit`.
  public var limit: Int
  public init(study: String, offset: Int = 0, limit: Int = StudyResultsRequest.maxLimit) {
    self.study = study
    self.offset = offset
    self.limit = limit
  }
  enum CodingKeys: String, CodingKey { case study, offset, limit }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study), offset: try c.value(.offset, default: 0),
              limit: try c.value(.limit, default: Self.maxLimit))
  }
}

/// `STUDY_DELETE`: the study's record and results go; so do its models unless another study
/// uses them or `keep_models`.
public struct StudyDeleteRequest: Codable, Hashable, Sendable {
  public var study: String
  public var keepModels: Bool
  public init(study: String, keepModels: Bool = false) {
    self.study = study
    self.keepModels = keepModels
  }
  enum CodingKeys: String, CodingKey { case study, keepModels = "keep_models" }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study), keepModels: try c.value(.keepModels, default: false))
  }
}

/// `STUDY_DELETE_OK`.
public struct StudyDeleteResponse: Codable, Hashable, Sendable {
  public var study: String
  public var modelsDeleted: [String]
  /// Models of the study that stay because another study uses them (or `keep_models`).
  public var modelsKept: [String]
  public var bytesFreed: Int
  public init(study: String, modelsDeleted: [String], modelsKept: [String], bytesFreed: Int) {
    self.study = study
    self.modelsDeleted = modelsDeleted
    self.modelsKept = modelsKept
    self.bytesFreed = bytesFreed
  }
  enum CodingKeys: String, CodingKey {
    case study, modelsDeleted = "models_deleted", modelsKept = "models_kept", bytesFreed = "bytes_freed"
  }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study), modelsDeleted: try c.value(.modelsDeleted),
              modelsKept: try c.value(.modelsKept), bytesFreed: try c.value(.bytesFreed))
  }
}

/// A study as a whole: `running` (work remains and it is not cancelled), `finished` (every
/// model trained and every analysis stored), `cancelled`, `incomplete` (nothing more can run:
/// some model or analysis failed; `errors` say which).
public enum StudyState: String, WireStringEnum {
  case running, finished, cancelled, incomplete
}

/// One model of a study's grid.
public struct StudyModelStatus: Codable, Hashable, Sendable {
  /// `queued` (waiting to train), `training`, `analysing` (trained; its analyses are not all
  /// stored), `done`, `failed`, `cancelled`, `interrupted` (its job stopped with the daemon;
  /// STUDY_RESUME continues it).
  public enum State: String, WireStringEnum {
    case queued, training, analysing, done, failed, cancelled, interrupted
  }
  public var model: String
  public var depth: Int
  public var width: Double
  public var fraction: Double
  public var seed: UInt64
  public var plain: Bool
  public var state: State
  public var job: UInt64?
  /// Finished epochs.
  public var epoch: Int
  public var epochs: Int
  public var testAccuracy: Double?
  public var nearChance: Bool
  /// The model was trained before this study was declared (by another study or the same
  /// recipe), not by a job of this study.
  public var reused: Bool
  public var analysesDone: Int
  public var analysesTotal: Int
  public var error: String?
  /// Its Slurm array task (a study on the slurm executor, once submitted).
  public var slurm: SlurmTaskStatus?

  public init(model: String, depth: Int, width: Double, fraction: Double, seed: UInt64,
              plain: Bool, state: State, job: UInt64? = nil, epoch: Int, epochs: Int,
              testAccuracy: Double? = nil, nearChance: Bool = false, reused: Bool = false,
              analysesDone: Int = 0, analysesTotal: Int = 0, error: String? = nil,
              slurm: SlurmTaskStatus? = nil) {
    self.model = model
    self.depth = depth
    self.width = width
    self.fraction = fraction
    self.seed = seed
    self.plain = plain
    self.state = state
    self.job = job
    self.epoch = epoch
    self.epochs = epochs
    self.testAccuracy = testAccuracy
    self.nearChance = nearChance
    self.reused = reused
    self.analysesDone = analysesDone
    self.analysesTotal = analysesTotal
    self.error = error
    self.slurm = slurm
  }

  enum CodingKeys: String, CodingKey {
    case model, depth, width, fraction, seed, plain, state, job, epoch, epochs,
         testAccuracy = "test_accuracy", nearChance = "near_chance", reused,
         analysesDone = "analyses_done", analysesTotal = "analyses_total", error, slurm
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(model: try c.value(.model), depth: try c.value(.depth), width: try c.value(.width),
              fraction: try c.value(.fraction), seed: try c.value(.seed), plain: try c.value(.plain),
              state: try c.value(.state), job: try c.ifPresent(.job), epoch: try c.value(.epoch),
              epochs: try c.value(.epochs), testAccuracy: try c.ifPresent(.testAccuracy),
              nearChance: try c.value(.nearChance, default: false),
              reused: try c.value(.reused, default: false),
              analysesDone: try c.value(.analysesDone, default: 0),
              analysesTotal: try c.value(.analysesTotal, default: 0), error: try c.ifPresent(.error),
              slurm: try c.ifPresent(.slurm))
  }
}

/// An analysis that failed (it is not retried until STUDY_RESUME).
public struct StudyError: Codable, Hashable, Sendable {
  public var key: String
  public var message: String
  public init(key: String, message: String) {
    self.key = key
    self.message = message
  }
  enum CodingKeys: String, CodingKey { case key, message }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(key: try c.value(.key), message: try c.value(.message))
  }
}

/// `STUDY_STATUS_OK`, also `STUDY_CREATE_OK`, `STUDY_CANCEL_OK`, `STUDY_RESUME_OK`.
public struct StudyStatusResponse: Codable, Hashable, Sendable {
  public var study: String
  public var state: StudyState
  /// RFC 3339 UTC.
  public var created: String
  public var dataset: String
  public var models: [StudyModelStatus]
  public var analysesDone: Int
  public var analysesTotal: Int
  /// The analysis being computed now, if any.
  public var analysing: String?
  /// Done share of the study's estimated work (training cost-weighted, 0...1).
  public var progress: Double
  /// Seconds left, from the throughput measured on this study's models so far; nil before
  /// any measurement.
  public var etaSeconds: Double?
  public var errors: [StudyError]
  /// Where its models train.
  public var executor: StudyExecutor.Kind
  /// The slurm executor's job array script (readable; a user may adapt and submit it).
  public var slurmScript: String?

  public init(study: String, state: StudyState, created: String, dataset: String,
              models: [StudyModelStatus], analysesDone: Int, analysesTotal: Int,
              analysing: String? = nil, progress: Double, etaSeconds: Double? = nil,
              errors: [StudyError] = [], executor: StudyExecutor.Kind = .local, slurmScript: String? = nil) {
    self.study = study
    self.state = state
    self.created = created
    self.dataset = dataset
    self.models = models
    self.analysesDone = analysesDone
    self.analysesTotal = analysesTotal
    self.analysing = analysing
    self.progress = progress
    self.etaSeconds = etaSeconds
    self.errors = errors
    self.executor = executor
    self.slurmScript = slurmScript
  }

  enum CodingKeys: String, CodingKey {
    case study, state, created, dataset, models, analysesDone = "analyses_done",
         analysesTotal = "analyses_total", analysing, progress, etaSeconds = "eta_seconds", errors,
         executor, slurmScript = "slurm_script"
  }

  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study), state: try c.value(.state), created: try c.value(.created),
              dataset: try c.value(.dataset), models: try c.value(.models),
              analysesDone: try c.value(.analysesDone), analysesTotal: try c.value(.analysesTotal),
              analysing: try c.ifPresent(.analysing), progress: try c.value(.progress),
              etaSeconds: try c.ifPresent(.etaSeconds), errors: try c.value(.errors, default: []),
              executor: try c.value(.executor, default: .local), slurmScript: try c.ifPresent(.slurmScript))
  }
}

/// `STUDY_LIST_OK`: one line per study.
public struct StudyListResponse: Codable, Hashable, Sendable {
  public struct Entry: Codable, Hashable, Sendable {
    public var study: String
    public var state: StudyState
    public var created: String
    public var dataset: String
    public var models: Int
    public var modelsDone: Int
    public var analysesDone: Int
    public var analysesTotal: Int
    public init(study: String, state: StudyState, created: String, dataset: String, models: Int,
                modelsDone: Int, analysesDone: Int, analysesTotal: Int) {
      self.study = study
      self.state = state
      self.created = created
      self.dataset = dataset
      self.models = models
      self.modelsDone = modelsDone
      self.analysesDone = analysesDone
      self.analysesTotal = analysesTotal
    }
    enum CodingKeys: String, CodingKey {
      case study, state, created, dataset, models, modelsDone = "models_done",
           analysesDone = "analyses_done", analysesTotal = "analyses_total"
    }
    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(study: try c.value(.study), state: try c.value(.state), created: try c.value(.created),
                dataset: try c.value(.dataset), models: try c.value(.models),
                modelsDone: try c.value(.modelsDone), analysesDone: try c.value(.analysesDone),
                analysesTotal: try c.value(.analysesTotal))
    }
  }
  public var studies: [Entry]
  public init(studies: [Entry]) { self.studies = studies }
  enum CodingKeys: String, CodingKey { case studies }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(studies: try c.value(.studies))
  }
}

/// `STUDY_RESULTS_OK`: the declaration, the grid's status and the index of stored results.
public struct StudyResultsResponse: Codable, Hashable, Sendable {
  /// One stored analysis result: `STUDY_RESULT` with its `key` answers it.
  public struct Result: Codable, Hashable, Sendable {
    public var key: String
    /// `heatmap`, `heatmap_no_pc1`, `pc`, `probe`, `deletion`, `snapshot_heatmap`,
    /// `snapshot_pc`, `cross_seed`, `cross_architecture`, `population`, `population_null`.
    public var kind: String
    /// The models it is about (one, or two for cross heatmaps; every model of both groups for
    /// populations).
    public var models: [String]
    /// The response type name the result is (`HEATMAP_OK`, ...).
    public var type: String
    /// For snapshots: the epoch.
    public var epoch: Int?
    /// For cross heatmaps: the grid axis the two models differ along (`seed`, `depth`, `width`,
    /// `fraction`, `plain`); for populations, the groups' labels.
    public var axis: String?
    public var groups: [String]?
    /// For a population comparison: the key of its seed-vs-seed null.
    public var null: String?
    public var bytes: Int
    /// One of its models is near chance (a failed net): its "blocks" are not the paper's.
    /// Set by STUDY_RESULTS, not stored.
    public var nearChance: Bool?
    public init(key: String, kind: String, models: [String], type: String, epoch: Int? = nil,
                axis: String? = nil, groups: [String]? = nil, null: String? = nil, bytes: Int,
                nearChance: Bool? = nil) {
      self.key = key
      self.kind = kind
      self.models = models
      self.type = type
      self.epoch = epoch
      self.axis = axis
      self.groups = groups
      self.null = null
      self.bytes = bytes
      self.nearChance = nearChance
    }
    enum CodingKeys: String, CodingKey {
      case key, kind, models, type, epoch, axis, groups, null, bytes, nearChance = "near_chance"
    }
    public init(from decoder: Decoder) throws {
      let c = try decoder.container(keyedBy: CodingKeys.self)
      self.init(key: try c.value(.key), kind: try c.value(.kind), models: try c.value(.models),
                type: try c.value(.type), epoch: try c.ifPresent(.epoch), axis: try c.ifPresent(.axis),
                groups: try c.ifPresent(.groups), null: try c.ifPresent(.null), bytes: try c.value(.bytes),
                nearChance: try c.ifPresent(.nearChance))
    }
  }
  public var status: StudyStatusResponse
  public var declaration: StudyDeclaration
  /// The dataset's class count (chance is 1/classes).
  public var classes: Int
  /// This page's results: `results[0]` is result number `offset` of `total`.
  public var results: [Result]
  public var offset: Int
  public var total: Int
  /// Where the next page starts; absent on the last page.
  public var nextOffset: Int?
  public init(status: StudyStatusResponse, declaration: StudyDeclaration, classes: Int,
              results: [Result], offset: Int = 0, total: Int? = nil, nextOffset: Int? = nil) {
    self.status = status
    self.declaration = declaration
    self.classes = classes
    self.results = results
    self.offset = offset
    self.total = total ?? results.count
    self.nextOffset = nextOffset
  }
  enum CodingKeys: String, CodingKey {
    case status, declaration, classes, results, offset, total, nextOffset = "next_offset"
  }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    let results: [Result] = try c.value(.results)
    self.init(status: try c.value(.status), declaration: try c.value(.declaration),
              classes: try c.value(.classes), results: results,
              offset: try c.value(.offset, default: 0), total: try c.value(.total, default: results.count),
              nextOffset: try c.ifPresent(.nextOffset))
  }
}

/// `STUDY_RESULT`: one stored result. The response's payload is the stored analysis response
/// as it was answered (its doc and tensors, e.g. a `HEATMAP_OK`'s), byte for byte.
public struct StudyResultRequest: Codable, Hashable, Sendable {
  public var study: String
  public var key: String
  public init(study: String, key: String) {
    self.study = study
    self.key = key
  }
  enum CodingKeys: String, CodingKey { case study, key }
  public init(from decoder: Decoder) throws {
    let c = try decoder.container(keyedBy: CodingKeys.self)
    self.init(study: try c.value(.study), key: try c.value(.key))
  }
}
