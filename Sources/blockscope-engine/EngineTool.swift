import ArgumentParser

/// Direct access to the engine, without the daemon: train a model, benchmark training speed.
@main
struct EngineTool: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blockscope-engine",
    abstract: "Train and benchmark Blockscope's CIFAR ResNets directly on the engine.",
    subcommands: [TrainCommand.self, AnalyzeCommand.self, BlocksCommand.self, BenchTrainCommand.self, BenchCKACommand.self, BenchPCCommand.self])
}
