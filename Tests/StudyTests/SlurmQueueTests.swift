@testable import Study
import Wire
import XCTest

/// The slurm executor's parsers of `squeue`/`sacct` output and its job script.
final class SlurmQueueTests: XCTestCase {
  func testSqueueLinesOneTaskEachAndCombinedPendingOnes() {
    let text = """
      12_0|RUNNING|None
      12_1|PENDING|Resources
      12_[2-4,7%2]|PENDING|JobArrayTaskLimit
      13_5|CANCELLED|(null)
      13_6|COMPLETED|None\r
      """
    let s = SlurmQueue.parseSqueue(text)
    XCTAssertEqual(s["12"]?[0], SlurmTaskState(state: "RUNNING"))
    XCTAssertEqual(s["12"]?[1], SlurmTaskState(state: "PENDING", reason: "Resources"))
    XCTAssertEqual(Set(s["12"]!.keys), [0, 1, 2, 3, 4, 7])
    XCTAssertEqual(s["12"]?[7]?.reason, "JobArrayTaskLimit")
    XCTAssertEqual(s["13"]?[5], SlurmTaskState(state: "CANCELLED"))
    XCTAssertEqual(s["13"]?[6], SlurmTaskState(state: "COMPLETED"))
  }

  func testWhatIsNotUnderstoodIsSkippedNotTrusted() {
    let text = """
      squeue: error: Invalid job id specified
      12|RUNNING|None
      12_x|RUNNING|None
      _3|RUNNING|None
      12_-1|RUNNING|None
      12_[3-1]|PENDING|None
      12_[1-9999999]|PENDING|None
      12_[1-3|PENDING|None
      12_4|running|None
      12_5

      12_6|FAILED|NonZeroExitCode
      """
    XCTAssertEqual(SlurmQueue.parseSqueue(text), ["12": [6: SlurmTaskState(state: "FAILED", reason: "NonZeroExitCode")]])
  }

  func testSacctSkipsStepsAndKeepsNonZeroExitCodes() {
    let text = """
      40_0|COMPLETED|0:0
      40_0.batch|COMPLETED|0:0
      40_0.extern|COMPLETED|0:0
      40_1|FAILED|1:0
      40_2|CANCELLED by 0|0:9
      40_[3-4]|PENDING|0:0
      """
    let s = SlurmQueue.parseSacct(text)
    XCTAssertEqual(s["40"]?[0], SlurmTaskState(state: "COMPLETED"))
    XCTAssertEqual(s["40"]?[1], SlurmTaskState(state: "FAILED", reason: "exit code 1:0"))
    XCTAssertEqual(s["40"]?[2]?.state, "CANCELLED")
    XCTAssertEqual(s["40"]?[3]?.state, "PENDING")
    XCTAssertEqual(s["40"]?.count, 5)
  }

  func testRangesExpandWithStepsAndLimits() {
    XCTAssertEqual(SlurmQueue.expand("1-7:3"), [1, 4, 7])
    XCTAssertEqual(SlurmQueue.expand("0,2-3%1"), [0, 2, 3])
    XCTAssertNil(SlurmQueue.expand(""))
    XCTAssertNil(SlurmQueue.expand("1-2-3"))
    XCTAssertNil(SlurmQueue.expand("1:0"))
  }

  func testActiveStates() {
    for s in ["PENDING", "RUNNING", "REQUEUED", "COMPLETING", "SUSPENDED"] {
      XCTAssertTrue(SlurmTaskState(state: s).isActive, s)
    }
    for s in ["COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "ENDED"] {
      XCTAssertFalse(SlurmTaskState(state: s).isActive, s)
    }
  }

  func testArraySpecsCompressRuns() {
    XCTAssertEqual(SlurmScript.arraySpec([5, 0, 1, 2, 3, 7, 8, 9, 2], maxParallel: nil), "0-3,5,7-9")
    XCTAssertEqual(SlurmScript.arraySpec([4], maxParallel: 2), "4%2")
    // What the spec writes, the parser reads back.
    XCTAssertEqual(SlurmQueue.expand(SlurmScript.arraySpec([0, 1, 2, 3, 5, 7, 8, 9], maxParallel: 3)), [0, 1, 2, 3, 5, 7, 8, 9])
  }

  func testTheScriptNamesEveryTaskAndItsOptions() throws {
    var d = StudyDeclaration(dataset: "cifar10", depths: [8, 14])
    d.widths = [1]
    d.fractions = [1]
    d.seeds = [0, 1]
    let tasks = d.models().enumerated().map { SlurmArrayTask(index: $0.offset, recipe: $0.element.recipe) }
    let paths = SlurmScriptPaths(engine: "/opt/bs/blockscope-engine", models: "/shared/store/models",
                                 directory: "/shared/store/studies/s/slurm", data: "/shared/cifar10")
    XCTAssertNil(paths.problem())
    let executor = StudyExecutor(kind: .slurm, partition: "cpu", time: "2:00:00", account: "lab", mem: "4G",
                                 cpusPerTask: 4, maxParallel: 2)
    let text = SlurmScript.text(study: "s", tasks: tasks, executor: executor, paths: paths)
    for line in ["#SBATCH --array=0-3%2", "#SBATCH --cpus-per-task=4", "#SBATCH --partition=cpu",
                 "#SBATCH --time=2:00:00", "#SBATCH --mem=4G", "#SBATCH --account=lab", "#SBATCH --requeue",
                 "#SBATCH --output=/shared/store/studies/s/slurm/logs/task-%a.log",
                 "engine=/opt/bs/blockscope-engine", "models=/shared/store/models"] {
      XCTAssertTrue(text.contains(line + "\n"), line)
    }
    for t in tasks {
      XCTAssertTrue(text.contains("  \(t.index))\n    model=\(t.recipe.model!)\n"), t.recipe.model!)
    }
    XCTAssertTrue(text.contains("--data-path /shared/cifar10"))
    XCTAssertEqual(text.components(separatedBy: "--epochs").count - 1, 2 * tasks.count, "one --epochs per command line")
  }

  func testPathsAndOptionsThatAJobScriptCannotCarryAreRefused() {
    XCTAssertNotNil(SlurmScriptPaths(engine: "/a b/engine", models: "/m", directory: "/d", data: nil).problem())
    XCTAssertNotNil(SlurmScriptPaths(engine: "/e", models: "relative", directory: "/d", data: nil).problem())
    XCTAssertNotNil(SlurmScriptPaths(engine: "/e", models: "/m", directory: "/d$(x)", data: nil).problem())
    XCTAssertNotNil(SlurmScriptPaths(engine: "/e", models: "/m", directory: "/d", data: "/data\n#SBATCH").problem())
    XCTAssertEqual(StudyExecutor(kind: .slurm, partition: "a b").problem()?.field, "partition")
    XCTAssertEqual(StudyExecutor(kind: .slurm, time: "1:00\n#SBATCH --x").problem()?.field, "time")
    XCTAssertEqual(StudyExecutor(kind: .slurm, cpusPerTask: 0).problem()?.field, "cpus_per_task")
    XCTAssertEqual(StudyExecutor(kind: .local, partition: "cpu").problem()?.field, "partition")
    XCTAssertNil(StudyExecutor(kind: .slurm, partition: "gpu-a100", time: "1-00:00:00", mem: "4G", maxParallel: 8).problem())
  }

  func testTimeLimitsAndTheRequeueWarning() {
    XCTAssertEqual(SlurmScript.seconds(ofTime: "90"), 5400)
    XCTAssertEqual(SlurmScript.seconds(ofTime: "5:30"), 330)
    XCTAssertEqual(SlurmScript.seconds(ofTime: "2:00:00"), 7200)
    XCTAssertEqual(SlurmScript.seconds(ofTime: "1-00:00:00"), 86400)
    XCTAssertEqual(SlurmScript.seconds(ofTime: "1-2"), 93600)
    XCTAssertEqual(SlurmScript.seconds(ofTime: "1-2:30"), 95400)
    for bad in ["UNLIMITED", "", "1:2:3:4", "-5", "1-2-3", "0", "a:b"] {
      XCTAssertNil(SlurmScript.seconds(ofTime: bad), bad)
    }
    XCTAssertEqual(SlurmScript.requeueLeadSeconds(time: nil), 180)
    XCTAssertEqual(SlurmScript.requeueLeadSeconds(time: "4:00:00"), 180)
    XCTAssertEqual(SlurmScript.requeueLeadSeconds(time: "10"), 60)
    XCTAssertEqual(SlurmScript.requeueLeadSeconds(time: "1"), 10)
  }
}
