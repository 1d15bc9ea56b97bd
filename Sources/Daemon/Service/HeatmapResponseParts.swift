import Analysis
import Wire

// The parts of a HEATMAP_OK shared by heatmaps over a plan (AnalysisHandlers) and over cached
// batches (CachedBatchHeatmap).

extension DaemonService {
  /// HEATMAP_OK's tensors: `cka`, `defined`, `standard_errors` (with bootstrap) and
  /// `batch_example_ids` (each batch's ids padded with -1 to `width`).
  func heatmapTensors(_ result: CKAHeatmapResult, batchIDs: [[Int32]], width: Int,
                      bootstrap: Bool) -> [WireTensor] {
    let rCount = result.rowNames.count, cCount = result.columnNames.count
    var tensors = [
      WireTensor(name: HeatmapResponse.ckaTensor, doubles: result.values, shape: [rCount, cCount]),
      WireTensor(name: HeatmapResponse.definedTensor, uint8s: result.defined.map { $0 ? 1 : 0 },
                 shape: [rCount, cCount]),
    ]
    if bootstrap {
      tensors.append(WireTensor(name: HeatmapResponse.standardErrorsTensor,
                                doubles: result.standardErrors ?? Array(repeating: 0, count: rCount * cCount),
                                shape: [rCount, cCount]))
    }
    var ids: [Int32] = []
    ids.reserveCapacity(batchIDs.count * width)
    for batch in batchIDs {
      ids += batch.prefix(width)
      ids += Array(repeating: -1, count: max(0, width - batch.count))
    }
    tensors.append(WireTensor(name: HeatmapResponse.batchExampleIDsTensor, int32s: ids,
                              shape: [batchIDs.count, width]))
    return tensors
  }

  func responseDiagnostics(_ result: CKAHeatmapResult) -> [HeatmapResponse.Diagnostic] {
    result.diagnostics.map {
      HeatmapResponse.Diagnostic(kind: kindName($0.kind.rawValue), message: $0.message,
                                 representations: $0.representations)
    }
  }

  /// Block-structure detection on a within-model heatmap, in the response's form; a failure
  /// becomes a diagnostic.
  func detectBlocks(_ r: Wire.HeatmapRequest, _ result: CKAHeatmapResult,
                    diagnostics: inout [HeatmapResponse.Diagnostic],
                    layout: () throws -> RepresentationLayout) -> HeatmapResponse.BlockStructure? {
    let parameters = BlockStructureParameters(
      threshold: r.blockThreshold ?? BlockStructureParameters.defaultThreshold,
      minBlocks: r.blockMinBlocks ?? BlockStructureParameters.defaultMinBlocks,
      minContrast: r.blockMinContrast ?? BlockStructureParameters.defaultMinContrast)
    do {
      let map = try CKAHeatmap(size: result.rowNames.count, values: result.values, defined: result.defined)
      let report = try BlockStructureDetector(heatmap: map, layout: try layout()).detect(parameters)
      return HeatmapResponse.BlockStructure(
        threshold: parameters.threshold, minBlocks: parameters.minBlocks,
        minContrast: parameters.minContrast, blockScore: report.blockScore, hasBlockStructure: report.hasBlockStructure,
        ranges: report.ranges.map {
          HeatmapResponse.BlockStructure.Range(first: $0.firstIndex, last: $0.lastIndex,
                                               blocksSpanned: $0.blocksSpanned,
                                               meanCka: $0.meanCKA, minCka: $0.minCKA,
                                               outsideCka: $0.outsideCKA, contrast: $0.contrast)
        })
    } catch {
      diagnostics.append(HeatmapResponse.Diagnostic(
        kind: "block_structure_unavailable", message: "block-structure detection failed: \(error)",
        representations: []))
      return nil
    }
  }
}
