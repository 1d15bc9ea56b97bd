// The page's HTML skeleton. The script builds everything inside <main id="report"> from the
// embedded data; the skeleton only holds what must exist before it runs.
enum ReportTemplate {
  static let head = #"""
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:">
<link rel="icon" href="data:,">

"""#

  static let bodyStart = #"""
</head>
<body>
<noscript><p class="noscript">This report draws its figures with JavaScript; please enable it.</p></noscript>
<main id="report"></main>
<div id="tooltip" role="tooltip" hidden></div>

"""#

  static let bodyEnd = #"""
</body>
</html>

"""#
}
