import Foundation
import Study
import Wire

extension DaemonService {
  // MARK: STUDY_CREATE

  func studyCreate(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyCreateRequest.self)
    try ModelStore.validateName(r.study, key: "study")
    var declaration = r.declaration
    do {
      try declaration.validate()
    } catch {
      throw invalid("declaration.\(error.field)", error.message)
    }
    declaration.dataset = try datasets.canonical(declaration.dataset, key: "declaration.dataset")
    // The same grid in another order is the same study.
    declaration.depths.sort()
    declaration.widths.sort()
    declaration.fractions.sort()
    declaration.seeds.sort()
    declaration.plainWidths.sort()
    declaration.snapshotEpochs.sort()
    declaration.analyses = StudyDeclaration.AnalysisKind.allCases.filter(declaration.analyses.contains)
    // DATA_UNAVAILABLE now, naming the fix, rather than in every job.
    let splits = try datasets.splits(declaration.dataset)
    for fraction in declaration.fractions where fraction < 1 {
      _ = try DatasetCache.trainingSubset(splits.train, fraction: fraction, stratified: declaration.stratified)
    }
    // Each model as TRAIN would check it (memory for its depth and width, ...).
    for model in declaration.models() {
      var recipe = model.recipe
      do {
        try validate(&recipe)
      } catch {
        throw WireError(error.code, "declaration: the model \(model.name): \(error.message)")
      }
    }
    if let executor = r.executor, let p = executor.problem() { throw invalid("executor.\(p.field)", p.message) }
    let study = try studies.create(r.study, declaration, executor: r.executor)
    if study.record.executor?.kind == .slurm, (study.record.slurmSubmissions ?? []).isEmpty {
      do {
        studies.trainingGate.lock()
        defer { studies.trainingGate.unlock() }
        try studies.submitSlurm(study, tasks: studies.slurmTasksToSubmit(study))
      } catch {
        throw WireError(error.code, "the study \(r.study) is declared but its job array was not submitted: "
                        + "\(error.message) (STUDY_RUN submits it)")
      }
    }
    try respond(reply, .studyCreateOK, studies.status(study))
  }

  // MARK: STUDY_RUN

  func studyRun(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyRunRequest.self)
    try respond(reply, .studyRunOK, studies.status(try studies.run(r.study, on: r.executor)))
  }

  // MARK: STUDY_STATUS, STUDY_LIST

  func studyStatus(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyRequest.self)
    try respond(reply, .studyStatusOK, studies.status(try studies.study(r.study)))
  }

  func studyList(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    _ = try request.decode(EmptyDoc.self)
    let entries = studies.all().map { s -> StudyListResponse.Entry in
      let st = studies.status(s)
      return StudyListResponse.Entry(study: st.study, state: st.state, created: st.created, dataset: st.dataset,
                                     models: st.models.count,
                                     modelsDone: st.models.filter { $0.state == .done }.count,
                                     analysesDone: st.analysesDone, analysesTotal: st.analysesTotal)
    }
    try respond(reply, .studyListOK, StudyListResponse(studies: entries))
  }

  // MARK: STUDY_CANCEL, STUDY_RESUME, STUDY_DELETE

  func studyCancel(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyRequest.self)
    try respond(reply, .studyCancelOK, studies.status(try studies.cancel(r.study)))
  }

  func studyResume(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyRequest.self)
    try respond(reply, .studyResumeOK, studies.status(try studies.resume(r.study)))
  }

  func studyDelete(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyDeleteRequest.self)
    try respond(reply, .studyDeleteOK, try studies.delete(r.study, keepModels: r.keepModels))
  }

  // MARK: STUDY_RESULTS, STUDY_RESULT

  func studyResults(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyResultsRequest.self)
    guard r.offset >= 0 else {
      throw WireError(.invalidArgument, "offset: \(r.offset) is negative")
    }
    guard (1...StudyResultsRequest.maxLimit).contains(r.limit) else {
      throw WireError(.invalidArgument, "limit: \(r.limit) is outside 1...\(StudyResultsRequest.maxLimit)")
    }
    let s = try studies.study(r.study)
    let status = studies.status(s)
    // A failed net's results are flagged (docs/ANALYSIS.md, "What counts as reproduced at laptop
    // scale"); snapshots count as their model.
    let nearChance = Set(status.models.filter(\.nearChance).map(\.model))
    let all = studies.files.results(s.name).sorted { $0.key < $1.key }
    let page = all[min(r.offset, all.count)..<min(r.offset + r.limit, all.count)]
    let results = page.map { r -> StudyResultsResponse.Result in
      var r = r
      r.nearChance = r.models.contains { m in
        nearChance.contains(m) || nearChance.contains { m.hasPrefix($0 + ".e") }
      }
      return r
    }
    let doc = StudyResultsResponse(status: status, declaration: s.record.declaration,
                                   classes: s.planner.classes, results: results, offset: r.offset,
                                   total: all.count,
                                   nextOffset: page.endIndex < all.count ? page.endIndex : nil)
    try respond(reply, .studyResultsOK, doc)
  }

  func studyResult(_ request: IncomingRequest, _ reply: ReplyChannel) throws {
    let r = try request.decode(StudyResultRequest.self)
    let s = try studies.study(r.study)
    let (_, _, payload) = try studies.files.result(s.name, key: r.key)
    // The stored payload as it was answered: its doc, and its tensors unchanged.
    guard let doc = try? JSONDecoder().decode(JSONValue.self, from: Data(payload.doc)) else {
      throw WireError(.corrupt, "study result \(r.key): its doc is not JSON")
    }
    try respond(reply, .studyResultOK, doc, tensors: payload.tensors)
  }
}

