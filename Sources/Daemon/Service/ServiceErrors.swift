import Analysis
import Engine
import Foundation
import Wire

#if canImport(Glibc)
import Glibc
#endif

// Every error the libraries throw, mapped to the spec's request errors (SPEC.md section 6) with
// a message that names the key, file or value.

/// `INVALID_ARGUMENT` naming the key.
func invalid(_ key: String, _ message: String) -> WireError {
  WireError(.invalidArgument, "key '\(key)': \(message)")
}

func notFound(_ message: String) -> WireError { WireError(.notFound, message) }

/// "No space left on device (ENOSPC)".
func errnoDescription(_ code: Int32) -> String {
  let names: [Int32: String] = [
    EPERM: "EPERM", ENOENT: "ENOENT", EIO: "EIO", EACCES: "EACCES", EEXIST: "EEXIST",
    ENOTDIR: "ENOTDIR", EISDIR: "EISDIR", EINVAL: "EINVAL", EMFILE: "EMFILE", ENFILE: "ENFILE",
    EFBIG: "EFBIG", ENOSPC: "ENOSPC", EROFS: "EROFS", ENAMETOOLONG: "ENAMETOOLONG",
    EDQUOT: "EDQUOT", ENOMEM: "ENOMEM", EBUSY: "EBUSY", EAGAIN: "EAGAIN",
  ]
  return "\(String(cString: strerror(code))) (\(names[code] ?? "errno \(code)"))"
}

/// `NO_SPACE` for a full disk or quota, else `IO_ERROR`; the message names the call and path.
func fileError(_ syscall: String, _ path: String, _ code: Int32, _ what: String = "") -> WireError {
  let text = "\(syscall)(\(path)) failed: \(errnoDescription(code))" + (what.isEmpty ? "" : "; \(what)")
  if code == ENOSPC || code == EDQUOT { return WireError(.noSpace, text) }
  if code == ENOENT { return WireError(.notFound, text) }
  return WireError(.ioError, text)
}

/// A checkpoint error: I/O problems by errno, everything else (the file fails its checks)
/// `CORRUPT`.
func checkpointWireError(_ e: CheckpointError) -> WireError {
  switch e.problem {
  case .io(let operation, let syscall, let path, let code):
    let tail = operation == "save" ? "nothing was replaced (\(e.file) is unchanged)" : ""
    return fileError(syscall, path, code, tail)
  case .notDurable(let syscall, let path, let code):
    return WireError(.ioError, "\(e.file) was written, but \(syscall)(\(path)) failed: "
                     + "\(errnoDescription(code)); the new file may not survive a crash")
  case .invalid:
    return WireError(.internal, e.description)
  default:
    return WireError(.corrupt, e.description)
  }
}

/// The request error for anything thrown while answering a request.
func wireError(_ error: Error) -> WireError {
  switch error {
  case let e as WireError:
    return e
  case let e as CheckpointError:
    return checkpointWireError(e)
  case let e as ModelState.Mismatch:
    return WireError(.corrupt, e.description)
  case let e as DatasetError:
    switch e {
    case .badFraction, .emptySubset: return invalid("fraction", e.description)
    case .unknownDataset: return invalid("dataset", e.description)
    default: return WireError(.dataUnavailable, e.description)
    }
  case let e as RepresentationSelector.SelectionError:
    switch e {
    case .unknown: return notFound(e.description)
    case .empty: return WireError(.invalidArgument, e.description)
    }
  case let e as MinibatchPlan.Invalid:
    switch e {
    case .batchSize: return invalid("batch_size", e.description)
    case .passes: return invalid("passes", e.description)
    case .noBatches: return invalid("examples", e.description)
    }
  case let e as ForeignGramError:
    switch e {
    case .unknownRepresentation, .missing: return notFound(e.description)
    case .shape, .nonFinite: return WireError(.invalidArgument, e.description)
    case .batchKeyReused: return WireError(.conflict, e.description)
    }
  case let e as HeatmapError:
    return WireError(.invalidArgument, e.description)
  case let e as ProbeError:
    switch e {
    case .unknownLayers: return notFound("key 'layers': \(e.description)")
    case .invalidConfig, .dataMismatch: return WireError(.invalidArgument, e.description)
    case .cancelled: return WireError(.cancelled, e.description)
    }
  case let e as BlockDeletionError:
    switch e {
    case .invalid: return WireError(.invalidArgument, e.description)
    case .cancelled: return WireError(.cancelled, e.description)
    }
  case let e as ResNet.InferenceError:
    switch e {
    case .unknownBlock: return notFound("key 'blocks': \(e.description)")
    case .notRemovable: return invalid("blocks", e.description)
    }
  case let e as PCError:
    switch e {
    case .tooFewExamples, .budget: return invalid("examples", e.description)
    case .solver: return WireError(.internal, e.description)
    }
  case let e as PopulationError:
    return WireError(.invalidArgument, e.description)
  case let e as StatisticsError:
    return WireError(.invalidArgument, e.description)
  case let e as CKAError:
    return WireError(.invalidArgument, e.description)
  case let e as ResNetConfig.Invalid:
    return WireError(.invalidArgument, e.description)
  case let e as TrainingSetupError:
    return WireError(.invalidArgument, e.description)
  case let e as BlockStructureError:
    return WireError(.internal, "block-structure detection: \(e.description)")
  case let e as GramForms.GramError:
    return WireError(.internal, e.description)
  case let e as ActivationStream.StreamError:
    return WireError(.invalidArgument, e.description)
  case is ActivationStream.Cancelled:
    return WireError(.cancelled, "cancelled")
  default:
    return WireError(.internal, "\(type(of: error)): \(error)")
  }
}
