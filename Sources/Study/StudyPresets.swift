import Wire

/// Named declarations: `demo` (the embedded Fashion-MNIST, about 20 minutes on two cores) and
/// `paper` (CIFAR-10 at laptop scale: the paper's Figures 1-7 from a few hours of training).
public enum StudyPresets {
  public static let names = ["demo", "paper"]

  public static func named(_ name: String) -> StudyDeclaration? {
    switch name {
    case "demo": return demo
    case "paper": return paper
    default: return nil
    }
  }

  /// Depth contrast (R14 against R44) and data-fraction contrast (3 % against 12 %) on
  /// Fashion-MNIST, two seeds of the deep net for the cross-seed heatmap and the population
  /// null, snapshots of the training.
  public static var demo: StudyDeclaration {
    var d = StudyDeclaration(dataset: "fashion-mnist", depths: [14, 44])
    d.widths = [1]
    d.fractions = [0.03, 0.12]
    d.seeds = [0, 1]
    d.epochs = 15
    d.warmupEpochs = 1
    d.testExamples = 2000
    d.snapshotEpochs = [1, 5]
    d.heatmapExamples = 1024
    d.pcExamples = 1024
    d.probeEpochs = 5
    d.probeTrainExamples = 2000
    d.probeTestExamples = 1000
    d.deletionTestExamples = 2000
    d.populationTestExamples = 2000
    return d
  }

  /// CIFAR-10: depths 14/32/56 at width 1 and widths 1/2/4 (Figure 1), fractions 100/25/6 %
  /// scaled down (Figure 2), plain nets at widths 1 and 2 (Figure 5), three seeds (Figures 6
  /// and 7), snapshots (how blocks arise).
  public static var paper: StudyDeclaration {
    var d = StudyDeclaration(dataset: "cifar10", depths: [14, 32, 56])
    d.widths = [1, 2, 4]
    d.fractions = [0.25, 0.06]
    d.seeds = [0, 1, 2]
    d.plainWidths = [1]
    d.epochs = 30
    d.warmupEpochs = 2
    d.snapshotEpochs = [1, 3, 10]
    d.heatmapExamples = 2560
    d.probeTrainExamples = 5000
    d.probeEpochs = 5
    return d
  }
}
