// swift-tools-version:6.0
import PackageDescription

let package = Package(
  name: "Blockscope",
  products: [
    .executable(name: "blockscope-engine", targets: ["blockscope-engine"]),
    .executable(name: "blockscoped", targets: ["blockscoped"]),
    .executable(name: "blockscope", targets: ["blockscope"]),
  ],
  dependencies: [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
  ],
  targets: [
    // The hot loops in C: im2col, batch norm, elementwise, SGD, augmentation, and the threaded
    // layer ops over single-threaded OpenBLAS sgemm. Always optimised, even in debug builds:
    // the test suite trains small nets through it.
    .target(
      name: "CKernels",
      path: "CKernels",
      exclude: ["kernels.inc"],
      publicHeadersPath: "include",
      cSettings: [.unsafeFlags(["-O3", "-std=gnu11", "-Wall", "-Wno-unknown-pragmas"])],
      linkerSettings: [.linkedLibrary("openblas"), .linkedLibrary("lapacke"),
                       .linkedLibrary("pthread"), .linkedLibrary("m")]
    ),
    .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib"),
    .target(
      name: "Engine",
      dependencies: ["CKernels", "CZlib"]
    ),
    // What the models learned: activation streaming, Gram cache, CKA estimators, first PCs,
    // linear probes, block deletion, block-structure detection, population statistics.
    .target(
      name: "Analysis",
      dependencies: ["Engine", "CKernels"]
    ),
    .target(name: "Wire"),
    // A study's declaration, grid expansion, recipe hashing (content-addressed model names) and
    // the plan of its analyses. Pure: the daemon, the CLI and tests share it.
    .target(name: "Study", dependencies: ["Wire"]),
    // A study's results (Wire documents) -> one self-contained HTML page with embedded data.
    .target(name: "Report", dependencies: ["Wire", "Study"]),
    .systemLibrary(name: "CLibUV", path: "Sources/CLibUV", pkgConfig: "libuv"),
    .systemLibrary(name: "CPNG", path: "Sources/CPNG", pkgConfig: "libpng"),
    // The daemon as a library (so tests reach its seams): Transport/ is the libuv loop,
    // connections and worker hand-off; Service/ answers requests with Engine and Analysis
    // (model store, jobs, Gram cache). blockscoped/ is only its command line.
    .target(
      name: "Daemon",
      dependencies: ["Wire", "Study", "Engine", "Analysis", "CKernels", "CLibUV"]
    ),
    .executableTarget(
      name: "blockscoped",
      dependencies: ["Daemon", "Wire", "Engine", .product(name: "ArgumentParser", package: "swift-argument-parser")]
    ),
    // The CLI: talks to the daemon through Wire only (never Engine or Analysis).
    .executableTarget(
      name: "blockscope",
      dependencies: ["Wire", "Study", "Report", "CPNG", .product(name: "ArgumentParser", package: "swift-argument-parser")]
    ),
    .executableTarget(
      name: "blockscope-engine",
      dependencies: ["Engine", "Analysis", "Study", "CKernels", .product(name: "ArgumentParser", package: "swift-argument-parser")]
    ),
    // CKernels' AVX-512 variants compiled against SIMDe (Debian's libsimde-dev), so the tests
    // check them against the references on CPUs without AVX-512 too.
    .target(
      name: "CKernelsAVX512Emulation",
      dependencies: ["CKernels"],
      path: "Tests/AVX512Emulation",
      exclude: ["emulation.h"],
      cSettings: [.unsafeFlags(["-O1", "-std=gnu11", "-Wno-unused-function", "-Wno-psabi"])]
    ),
    .testTarget(name: "CKernelsTests", dependencies: ["CKernels", "CKernelsAVX512Emulation"]),
    .testTarget(name: "EngineTests", dependencies: ["Engine", "CKernels", "CZlib"]),
    .testTarget(name: "AnalysisTests", dependencies: ["Analysis", "Engine", "CKernels"]),
    // Runs the built blockscope-engine binary (a dependency, so `swift build --build-tests`
    // builds it next to the test bundle).
    // Runs built executables for the tool tests (finds them next to the test bundle).
    .target(name: "ToolTestSupport", path: "Tests/ToolTestSupport"),
    .testTarget(name: "EngineToolTests", dependencies: ["blockscope-engine", "ToolTestSupport", "Engine", "Study", "Wire"]),
    // What DaemonTests and DaemonIntegrationTests share: a blocking-socket Wire client, raw
    // frame bytes, ERROR-frame helpers.
    .target(name: "DaemonTestSupport", dependencies: ["Wire"], path: "Tests/DaemonTestSupport"),
    .testTarget(name: "DaemonTests", dependencies: ["Daemon", "Wire", "Study", "Engine", "Analysis", "DaemonTestSupport"]),
    // Runs the built blockscoped and blockscope binaries on temporary sockets.
    .testTarget(name: "DaemonIntegrationTests", dependencies: ["blockscoped", "blockscope", "Wire", "DaemonTestSupport"]),
    .testTarget(name: "CLITests", dependencies: ["blockscope", "Wire", "CPNG", "ToolTestSupport"]),
    .testTarget(name: "WireTests", dependencies: ["Wire"]),
    .testTarget(name: "StudyTests", dependencies: ["Study", "Wire"]),
    .testTarget(name: "ReportTests", dependencies: ["Report", "Study", "Wire"]),
    // The fuzz harnesses (frame, checkpoint, cifar, idx) as a library: `tools/fuzz` links them
    // with libFuzzer in a build of its own; FuzzReplayTests runs the committed corpus and every
    // saved crasher (Tests/Fuzz/corpus, Tests/Fuzz/regressions) through them in every test run.
    .target(name: "FuzzHarnesses", dependencies: ["Wire", "Engine", "CZlib"], path: "Tests/Fuzz/Harnesses"),
    .testTarget(name: "FuzzReplayTests", dependencies: ["FuzzHarnesses"], path: "Tests/Fuzz/ReplayTests"),
  ]
)
