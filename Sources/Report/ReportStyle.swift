// The report page's style sheet (inlined into the page; no fonts or images from anywhere).
enum ReportStyle {
  static let css = #"""
:root {
  --ink: #1f2328; --muted: #59636e; --faint: #8b949e; --rule: #d8dee4; --paper: #ffffff;
  --panel: #fbfbfc; --accent: #3d5a98; --warn-bg: #fff4e0; --warn-ink: #8a4b00; --warn-rule: #e8a33d;
  --na-bg: #f3f4f6; --line-a: #3d5a98; --line-b: #c2410c; --grey: #8b949e;
}
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html { background: var(--paper); }
body { margin: 0; color: var(--ink); background: var(--paper);
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", "Liberation Sans", Arial, sans-serif; }
main { max-width: 1240px; margin: 0 auto; padding: 0 24px 64px; }
h1 { font-size: 26px; font-weight: 650; margin: 28px 0 4px; letter-spacing: -0.01em; }
h2 { font-size: 19px; font-weight: 650; margin: 0 0 4px; }
h3 { font-size: 14px; font-weight: 600; margin: 0 0 6px; }
a { color: var(--accent); }
code, .mono { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, Consolas, monospace; font-size: 12px; }
.subtitle { color: var(--muted); margin: 0 0 12px; }
.facts { display: flex; flex-wrap: wrap; gap: 4px 22px; margin: 10px 0 12px; padding: 0; list-style: none; }
.facts li { color: var(--muted); } .facts b { color: var(--ink); font-weight: 600; }
.notes { margin: 8px 0; padding: 8px 12px; background: var(--panel); border: 1px solid var(--rule); border-radius: 6px; }
.notes ul { margin: 4px 0 0 18px; padding: 0; }
details.declaration summary { cursor: pointer; color: var(--muted); }
details.declaration pre { background: var(--panel); border: 1px solid var(--rule); padding: 8px; overflow: auto; max-height: 240px; font-size: 12px; }
nav.toc { margin: 10px 0 0; display: flex; flex-wrap: wrap; gap: 4px 14px; font-size: 13px; }

.globalbar { position: sticky; top: 0; z-index: 5; background: rgba(255,255,255,0.96);
  border-bottom: 1px solid var(--rule); margin: 16px -24px 0; padding: 8px 24px;
  display: flex; flex-wrap: wrap; align-items: center; gap: 10px 28px; }
.globalbar .legend { margin-left: auto; display: flex; align-items: center; gap: 8px; color: var(--muted); font-size: 12px; }
.globalbar .legend canvas { width: 160px; height: 12px; border: 1px solid var(--rule); }

section.figure { margin: 28px 0 0; padding: 18px 6px 8px; border-top: 1px solid var(--rule); }
section.figure > .lead { color: var(--muted); margin: 2px 0 12px; max-width: 900px; }
.controls { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 10px 28px; margin: 6px 0 12px; }
.control { display: flex; flex-direction: column; gap: 2px; min-width: 200px; }
.control:has(input[type=range]) { width: 300px; }
.control > .control-label { font-size: 12px; color: var(--muted); }
.control > .control-label output { color: var(--ink); font-weight: 600; margin-left: 4px; }
.control input[type=range] { width: 100%; margin: 2px 0 0; accent-color: var(--accent); }
.control .ticks { display: flex; justify-content: space-between; font-size: 11px; color: var(--faint); padding: 0 2px; }
.control .ends { display: flex; justify-content: space-between; font-size: 11px; color: var(--muted); font-style: italic; }
.toggle { display: inline-flex; border: 1px solid var(--rule); border-radius: 6px; overflow: hidden; }
.toggle button { font: inherit; font-size: 13px; padding: 4px 12px; border: 0; background: #fff; color: var(--ink); cursor: pointer; }
.toggle button + button { border-left: 1px solid var(--rule); }
.toggle button[aria-pressed=true] { background: var(--accent); color: #fff; }
select { font: inherit; font-size: 13px; padding: 3px 6px; border: 1px solid var(--rule); border-radius: 6px; background: #fff; }

.row { display: grid; gap: 18px; align-items: start; }
.row.two { grid-template-columns: repeat(2, minmax(0, 1fr)); }
.row.three { grid-template-columns: repeat(3, minmax(0, 1fr)); }
.row.four { grid-template-columns: repeat(4, minmax(0, 1fr)); }
.row.n { grid-template-columns: repeat(auto-fit, minmax(240px, 1fr)); }
.row.one { grid-template-columns: minmax(0, 520px); }
.subhead { margin: 18px 0 6px; font-weight: 600; }

.panel { margin: 0; background: var(--panel); border: 1px solid var(--rule); border-radius: 8px; padding: 10px 10px 8px; min-width: 0; }
.panel > .panel-title { font-weight: 600; font-size: 13px; margin: 0 0 6px; }
.plot { display: grid; grid-template-columns: 40px minmax(0, 1fr) 34px; column-gap: 4px; align-items: stretch; }
.plot .yaxis { position: relative; font-size: 10px; color: var(--muted); }
.plot .yaxis span { position: absolute; right: 2px; white-space: nowrap; }
.plot .yaxis .top { top: 0; } .plot .yaxis .bottom { bottom: 0; }
.plot .yaxis .mid { top: 50%; transform: translateY(-50%) rotate(-90deg); right: -2px; transform-origin: center; }
.plot canvas.hm { display: block; width: 100%; height: auto; align-self: start; cursor: crosshair; background: #eee; }
.plot .cbar { position: relative; }
.plot .cbar canvas { position: absolute; left: 0; top: 0; width: 10px; height: 100%; display: block; border: 1px solid var(--rule); box-sizing: border-box; }
.plot .cbar .cbar-ticks { position: absolute; left: 14px; top: 0; bottom: 0; font-size: 10px; color: var(--muted); width: 20px; }
.plot .cbar .cbar-ticks span { position: absolute; left: 0; transform: translateY(-50%); }
.xaxis { position: relative; height: 16px; font-size: 10px; color: var(--muted); }
.xaxis span { position: absolute; top: 1px; transform: translateX(-50%); white-space: nowrap; }
.xaxis .end { transform: none; right: 0; } .xaxis .start { transform: none; left: 0; }
.empty { display: flex; align-items: center; justify-content: center; text-align: center; aspect-ratio: 1 / 1;
  background: repeating-linear-gradient(45deg, #f5f6f7, #f5f6f7 8px, #eef0f2 8px, #eef0f2 16px);
  border: 1px dashed #c5ccd3; color: var(--muted); padding: 12px; font-size: 13px; border-radius: 4px; }
.empty.short { aspect-ratio: auto; min-height: 90px; }
.caption { font-size: 12px; color: var(--muted); margin-top: 6px; }
.caption .who { color: var(--ink); font-weight: 600; }
.caption .name { font-family: "DejaVu Sans Mono", "Liberation Mono", Menlo, monospace; font-size: 11px; color: var(--faint); word-break: break-all; }
.caption .acc { color: var(--ink); }
.caption .verdict.block { color: #7a3e00; }
.caption .badge { display: inline-block; font-size: 11px; padding: 0 6px; border-radius: 9px; background: #e7ecf5; color: var(--accent); margin-left: 4px; }
.warning { margin-top: 6px; padding: 6px 8px; background: var(--warn-bg); border-left: 3px solid var(--warn-rule); color: var(--warn-ink); font-size: 12px; border-radius: 3px; }
.figure-note { color: var(--muted); font-style: italic; margin: 6px 0; }
.chart { margin-top: 8px; }
.chart .panel-title { font-weight: 600; font-size: 12px; margin: 0 0 2px; color: var(--ink); }
.chart svg { display: block; width: 100%; overflow: visible; }
svg text { font-size: 10px; fill: var(--muted); font-family: inherit; }
svg .axis { stroke: #aab2bb; stroke-width: 1; }
svg .grid { stroke: #e6e9ed; stroke-width: 1; }
svg .stage { stroke: #8b949e; stroke-width: 1; stroke-dasharray: 3 3; }
svg .ref { stroke: #1f2328; stroke-width: 1.2; stroke-dasharray: 5 4; }
svg .chance { stroke: #b42318; stroke-width: 1; stroke-dasharray: 1 3; }
svg .band { fill: #f3d9b1; opacity: 0.55; }
svg .line-a { fill: none; stroke: var(--line-a); stroke-width: 1.6; }
svg .line-b { fill: none; stroke: var(--line-b); stroke-width: 1.6; }
svg .dot-a { fill: var(--line-a); } svg .dot-b { fill: var(--line-b); }
svg .dot-open { fill: #fff; stroke: var(--grey); }
svg .bar-a { fill: var(--line-a); } svg .bar-null { fill: #b8c0c8; }
svg .sig { fill: var(--ink); font-size: 12px; font-weight: 700; }
.chart-legend { display: flex; flex-wrap: wrap; gap: 2px 14px; font-size: 11px; color: var(--muted); margin-top: 2px; }
.chart-legend i { display: inline-block; width: 14px; height: 0; border-top: 2px solid; vertical-align: middle; margin-right: 4px; }
.chart-legend i.dash { border-top-style: dashed; } .chart-legend i.dot { border-top-style: dotted; }
.scatter canvas { display: block; width: 100%; aspect-ratio: 1 / 1; }

table.models { border-collapse: collapse; width: 100%; font-size: 12px; margin-top: 8px; }
table.models th, table.models td { border-bottom: 1px solid var(--rule); padding: 4px 6px; text-align: left; vertical-align: top; }
table.models td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.models th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: var(--ink); }
table.models th[aria-sort=ascending] button::after { content: " \25B2"; font-size: 9px; }
table.models th[aria-sort=descending] button::after { content: " \25BC"; font-size: 9px; }
table.models tr.warn td { background: var(--warn-bg); }
table.models td .mono { font-size: 11px; }
.table-wrap { overflow-x: auto; }

#tooltip { position: fixed; z-index: 20; pointer-events: none; background: rgba(24, 28, 33, 0.94); color: #fff;
  padding: 6px 8px; border-radius: 5px; font-size: 12px; line-height: 1.35; max-width: 360px; box-shadow: 0 2px 8px rgba(0,0,0,0.2); }
#tooltip[hidden] { display: none; }
#tooltip .tt-title { color: #c9d1d9; font-size: 11px; margin-bottom: 2px; }
#tooltip .tt-value { font-weight: 700; font-variant-numeric: tabular-nums; }
#tooltip .k { color: #9da7b3; display: inline-block; min-width: 50px; }
.noscript { padding: 24px; }
@media (max-width: 900px) { .row.four, .row.three { grid-template-columns: repeat(2, minmax(0, 1fr)); } }
"""#
}
