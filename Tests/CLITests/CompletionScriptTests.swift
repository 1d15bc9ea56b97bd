import Foundation
import ToolTestSupport
import XCTest

/// The shell completions of the built `blockscope` (swift-argument-parser writes them) and
/// tools/install-completions, which puts them where each shell finds them.
final class CompletionScriptTests: XCTestCase {
  static let tool = BuiltTool("blockscope", besides: CompletionScriptTests.self)
  static let daemonTool = BuiltTool("blockscoped", besides: CompletionScriptTests.self)
  static let repository = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  private var directories: [String] = []

  override func setUpWithError() throws {
    try XCTSkipUnless(Self.tool.isBuilt, "blockscope not built at \(Self.tool.url.path)")
  }

  override func tearDown() {
    for directory in directories { try? FileManager.default.removeItem(atPath: directory) }
    directories = []
  }

  private func temporaryDirectory() throws -> String {
    let directory = NSTemporaryDirectory() + "bs-completion-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    directories.append(directory)
    return directory
  }

  private func run(_ executable: String, _ arguments: [String], env: [String: String] = [:]) throws -> BuiltTool.Result {
    try BuiltTool(url: URL(fileURLWithPath: executable)).run(arguments, env: env)
  }

  /// Sources the bash script and asks its completion function, as bash would on TAB, for each
  /// command line (the word being completed last); one line of candidates per command line.
  private func bashCompletions(_ script: String, _ lines: [[String]]) throws -> [String] {
    let file = try temporaryDirectory() + "/blockscope.bash"
    try script.write(toFile: file, atomically: true, encoding: .utf8)
    var program = """
      source "$1"
      complete_line() {
        COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMP_LINE="${COMP_WORDS[*]}"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
        _blockscope blockscope "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD - 1]}"
        echo "${COMPREPLY[*]}"
      }

      """
    for words in lines {
      program += "complete_line " + words.map { "'\($0)'" }.joined(separator: " ") + "\n"
    }
    let result = try run("/bin/bash", ["-c", program, "bash", file])
    XCTAssertEqual(result.status, 0, result.stderr)
    return result.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
  }

  func testBashCompletionCompletesSubcommandsAndOptionValues() throws {
    let generated = try Self.tool.run(["--generate-completion-script", "bash"])
    XCTAssertEqual(generated.status, 0, generated.stderr)
    XCTAssertTrue(generated.stdout.contains("complete -o filenames -F _blockscope blockscope"), generated.stdout)
    let answers = try bashCompletions(generated.stdout, [
      ["blockscope", "stu"],
      ["blockscope", "hea"],
      ["blockscope", "re"],
      ["blockscope", "study", ""],
      ["blockscope", "heatmap", "m", "--estimator", ""],
      ["blockscope", "heatmap", "--remove"],
    ])
    XCTAssertEqual(answers.count, 6, answers.description)
    guard answers.count == 6 else { return }
    XCTAssertEqual(answers[0], "study")
    XCTAssertEqual(answers[1], "heatmap")
    XCTAssertEqual(Set(answers[2].split(separator: " ")), ["resume", "report"])
    let studyCommands = Set(answers[3].split(separator: " "))
    XCTAssertTrue(studyCommands.isSuperset(of: ["create", "status", "list", "cancel", "resume", "delete"]), answers[3])
    XCTAssertEqual(Set(answers[4].split(separator: " ")), ["unbiased", "biased", "rbf"])
    XCTAssertEqual(answers[5], "--remove-pc1")
  }

  func testZshAndFishScriptsNameTheSubcommandsAndOptions() throws {
    for shell in ["zsh", "fish"] {
      let generated = try Self.tool.run(["--generate-completion-script", shell])
      XCTAssertEqual(generated.status, 0, "\(shell): \(generated.stderr)")
      // Option names without their dashes: fish's script gives them as `-l 'estimator'`.
      for word in ["study", "heatmap", "report", "delete-blocks", "estimator", "unbiased", "remove-pc1"] {
        XCTAssertTrue(generated.stdout.contains(word), "\(shell) script lacks \(word)")
      }
    }
  }

  /// The script writes both commands' completions for each shell where that shell looks for a
  /// user's own, and refuses a shell it does not know.
  func testInstallCompletionsWritesEachShellsScriptWhereItLooks() throws {
    XCTAssertTrue(Self.daemonTool.isBuilt, "blockscoped not built at \(Self.daemonTool.url.path)")
    let home = try temporaryDirectory()
    let script = Self.repository.appendingPathComponent("tools/install-completions").path
    let env = ["HOME": home, "XDG_DATA_HOME": "", "XDG_CONFIG_HOME": "", "BASH_COMPLETION_USER_DIR": "",
               "BLOCKSCOPE_BIN_DIR": Self.tool.url.deletingLastPathComponent().path]
    let result = try run(script, [], env: env)
    XCTAssertEqual(result.status, 0, result.stderr)
    let expected = [
      "\(home)/.local/share/bash-completion/completions/blockscope",
      "\(home)/.local/share/zsh/site-functions/_blockscope",
      "\(home)/.config/fish/completions/blockscope.fish",
      "\(home)/.local/share/bash-completion/completions/blockscoped",
      "\(home)/.local/share/zsh/site-functions/_blockscoped",
      "\(home)/.config/fish/completions/blockscoped.fish",
    ]
    XCTAssertEqual(result.stdout, expected.map { $0 + "\n" }.joined())
    XCTAssertTrue(result.stderr.contains("fpath=(\(home)/.local/share/zsh/site-functions $fpath)"), result.stderr)
    let bash = try String(contentsOfFile: expected[0], encoding: .utf8)
    XCTAssertEqual(try bashCompletions(bash, [["blockscope", "stu"]]), ["study"])
    let daemonFish = try String(contentsOfFile: expected[5], encoding: .utf8)
    XCTAssertTrue(daemonFish.contains("parallel-jobs"), daemonFish)

    let unknown = try run(script, ["tcsh"], env: env)
    XCTAssertEqual(unknown.status, 64)
    XCTAssertTrue(unknown.stderr.contains("unknown shell 'tcsh'"), unknown.stderr)
  }
}
