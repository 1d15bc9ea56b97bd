import Wire

/// Named declarations: `demo` (the embedded Fashion-MNIST, about 20 minutes on two cores) and
/// `paper` (CIFAR-10 at laptop scale: the paper's Figures 1-7; see the README for its cost).
public enum StudyPresets {
  public static let names = ["demo", "paper"]

  public static func named(_ name: String) -> StudyDeclaration? {
    switch name {
    case "demo": return demo
    case "paper": return paper
    default: return nil
    }
  }

  /// Depth contrast (ResNet-14 against ResNet-44) at two small fractions of Fashion-MNIST (1 %
  /// and 4 %: on this easy data the block regime needs depth 44 and little data), two seeds
  /// (cross-seed heatmaps, populations), snapshots after epochs 1 and 5. Each epoch is evaluated
  /// on 1000 test images (on small fractions evaluation costs as much as training). PC1 over 512
  /// images: at 1024, its n x n Gram and eigenproblem made PC, run three times per model with
  /// the snapshots, half of a ResNet-44's analysis time (175 of 335 s on one thread).
  public static var demo: StudyDeclaration {
    var d = StudyDeclaration(dataset: "fashion-mnist", depths: [14, 44])
    d.widths = [1]
    d.fractions = [0.01, 0.04]
    d.seeds = [0, 1]
    d.epochs = 15
    d.warmupEpochs = 1
    d.testExamples = 1000
    d.snapshotEpochs = [1, 5]
    d.heatmapExamples = 1024
    d.pcExamples = 512
    d.probeEpochs = 5
    d.probeTrainExamples = 2000
    d.probeTestExamples = 1000
    d.deletionTestExamples = 1000
    d.populationTestExamples = 1000
    return d
  }

  /// CIFAR-10 at laptop scale: ResNet-14 and -44 at widths 1 and 2 (Figure 1), the fractions 6
  /// % and 2 % (Figure 2; far below the paper's 25 % and 6 %: less data brings the block regime
  /// to smaller, cheaper nets: docs/ANALYSIS.md, "What counts as reproduced at laptop scale"),
  /// plain nets at width 1 (Figure 5), two seeds (Figures 6 and 7), snapshots after epochs 1
  /// and 5 (how blocks arise): 24 models. Width costs its square in compute, so the wide
  /// ResNet-44s are half of the study's training; every analysis and each epoch's evaluation
  /// use 2000 test images.
  public static var paper: StudyDeclaration {
    var d = StudyDeclaration(dataset: "cifar10", depths: [14, 44])
    d.widths = [1, 2]
    d.fractions = [0.06, 0.02]
    d.seeds = [0, 1]
    d.plainWidths = [1]
    d.epochs = 15
    d.warmupEpochs = 1
    d.testExamples = 2000
    d.snapshotEpochs = [1, 5]
    d.heatmapExamples = 2048
    d.pcExamples = 1024
    d.probeEpochs = 5
    d.probeTrainExamples = 2000
    d.probeTestExamples = 2000
    d.deletionTestExamples = 2000
    d.populationTestExamples = 2000
    return d
  }
}
