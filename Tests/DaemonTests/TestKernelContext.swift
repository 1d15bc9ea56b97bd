import Engine

/// The kernel context of this test target's computations. XCTest runs one test at a time, so
/// one context (used by one thread at a time) serves them all.
let testKernels = KernelContext(threads: 2)
