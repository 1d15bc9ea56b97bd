import ArgumentParser
import Engine

/// Direct access to the engine, without the daemon: train a model, benchmark training speed.
@main
struct EngineTool: ParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "blockscope-engine",
    abstract: "Train and benchmark Blockscope's CIFAR ResNets directly on the engine.",
    subcommands: [TrainCommand.self, InspectCommand.self, AnalyzeCommand.self, BlocksCommand.self, BenchTrainCommand.self, BenchConvCommand.self, BenchCKACommand.self, BenchPCCommand.self])

  /// ParsableCommand's main, after making sure OpenBLAS runs the kernels this CPU deserves.
  static func main() {
    BLASCore.reexecIfUntuned()
    main(nil)
  }
}
