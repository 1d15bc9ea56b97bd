public let blockscopeEngineVersion = "0.1.0"
