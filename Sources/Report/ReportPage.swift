/// The study report: one self-contained HTML page (inline CSS and script, the data embedded
/// as JSON) that opens from file:// with no network.
public enum ReportPage {
  /// The page for `data`. Throws `ReportEncodingError` if the data cannot be encoded (a NaN).
  public static func html(_ data: ReportData) throws -> String {
    let json = String(decoding: try data.encoded(), as: UTF8.self)
    let title = "Blockscope report \u{2014} " + data.study.name
    return ReportTemplate.head
      + "<title>" + htmlEscape(title) + "</title>\n"
      + "<style>\n" + ReportStyle.css + "\n</style>\n"
      + ReportTemplate.bodyStart
      + "<script id=\"report-data\" type=\"application/json\">" + scriptSafe(json) + "</script>\n"
      + "<script>\n" + ReportScript.js + "\n</script>\n"
      + ReportTemplate.bodyEnd
  }

  /// JSON that cannot end its `<script>` element: every `<` becomes `\u003c` (in JSON text `<`
  /// only occurs inside strings, where the escape means the same character), so neither
  /// `</script>` nor `<!--` can occur.
  static func scriptSafe(_ json: String) -> String {
    guard json.utf8.contains(UInt8(ascii: "<")) else { return json }
    var out = ""
    out.reserveCapacity(json.utf8.count + 64)
    for ch in json.unicodeScalars {
      if ch == "<" { out += "\\u003c" } else { out.unicodeScalars.append(ch) }
    }
    return out
  }

  static func htmlEscape(_ s: String) -> String {
    var out = ""
    for ch in s.unicodeScalars {
      switch ch {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&#39;"
      default: out.unicodeScalars.append(ch)
      }
    }
    return out
  }
}
