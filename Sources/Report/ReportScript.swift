// The report page's script (inlined into the page). Reads the embedded JSON
// (<script id="report-data">), builds the seven figures, the model table and the controls, and
// draws heatmaps on <canvas> cell by cell. Exposes window.blockscopeReport for tests.
//
// Testability contract (tools/report_browser_test.py relies on it):
// - every panel: data-panel (a stable id such as "fig1-depth"), data-model (the model's name,
//   "A|B" for a cross heatmap, "" when no model fits), data-kind (within, no-pc1, pc1-cosine,
//   snapshot, cross-seed, cross-architecture for heatmaps; pc1-fraction, probes, deletion,
//   scatter, class-differences for charts) and data-epoch when it shows a snapshot;
// - every control: data-control; toggle buttons data-value and aria-pressed;
// - every figure: data-figure="1".."7" (the across-architecture section "x");
// - window.blockscopeReport = {data, state, lastDrawMs, lastDraw, lastUpdateMs, draws, drawMode,
//   update, ready, errors}.
enum ReportScript {
  static let js = #"""
(function () {
'use strict';

// ---------------------------------------------------------------- data, state, utilities
const data = JSON.parse(document.getElementById('report-data').textContent);
const study = data.study || {};
const models = data.models || [];
const nameLists = data.name_lists || {};
const api = { data: data, state: null, lastDrawMs: null, lastDraw: null, lastUpdateMs: null, draws: [], ready: false, errors: [], drawMode: 'pixels' };
window.blockscopeReport = api;

const num = function (a, b) { return a - b; };
const uniqSorted = function (xs) { return Array.from(new Set(xs)).sort(num); };
const depths = uniqSorted(study.depths || []);
const widths = uniqSorted(study.widths || []);
const fractions = uniqSorted(study.fractions || []);
const fractionsDesc = fractions.slice().reverse();
const seeds = (study.seeds && study.seeds.length) ? uniqSorted(study.seeds) : uniqSorted(models.map(function (m) { return m.seed; }));
const plainWidths = uniqSorted(study.plain_widths || []);
const plainModels = models.filter(function (m) { return m.plain; });
const epochStops = uniqSorted((study.snapshot_epochs || []).filter(function (e) { return e < study.epochs; }));
const minOf = function (xs) { return xs.length ? xs[0] : null; };
const maxOf = function (xs) { return xs.length ? xs[xs.length - 1] : null; };

const state = {
  seed: 0,                              // index into seeds
  epoch: epochStops.length,             // index into epochStops; epochStops.length = final
  fig1Depth: Math.max(0, depths.length - 1),
  fig1Width: Math.max(0, widths.length - 1),
  fig2Fraction: Math.max(0, fractions.length - 1),   // index into fractionsDesc (more -> less data)
  fig2Family: 'deep',
  fig3Choice: 'block',
  fig3Pc1: 'with',
  fig4Fraction: Math.max(0, fractions.length - 1),
  fig5Width: Math.max(0, plainWidths.length - 1),
  fig7: 0,
  xarch: 0,
  sortKey: null, sortDir: 1
};
api.state = state;

function el(tag, attrs) {
  const e = document.createElement(tag);
  if (attrs) {
    for (const k in attrs) {
      const v = attrs[k];
      if (v === undefined || v === null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'cls') e.className = v;
      else if (k === 'data') { for (const d in v) if (v[d] !== undefined && v[d] !== null) e.setAttribute('data-' + d, String(v[d])); }
      else if (k === 'style') e.setAttribute('style', v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
  }
  for (let i = 2; i < arguments.length; i++) {
    const c = arguments[i];
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) c.forEach(function (x) { if (x) e.appendChild(typeof x === 'string' ? document.createTextNode(x) : x); });
    else e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
  }
  return e;
}
// The SVG namespace, taken from the HTML parser (so the page holds no URL at all).
const SVGNS = (function () { const d = document.createElement('div'); d.innerHTML = '<svg></svg>'; return d.firstChild.namespaceURI; })();
function svgEl(tag, attrs) {
  const e = document.createElementNS(SVGNS, tag);
  if (attrs) for (const k in attrs) if (attrs[k] !== undefined && attrs[k] !== null) {
    if (k === 'text') e.textContent = attrs[k]; else e.setAttribute(k, String(attrs[k]));
  }
  return e;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function pct(x, digits) { return (x === null || x === undefined) ? '\u2014' : (100 * x).toFixed(digits === undefined ? 1 : digits) + ' %'; }
function fix(x, d) { return (x === null || x === undefined || !isFinite(x)) ? '\u2014' : Number(x).toFixed(d); }
function short(x) { return String(Number(x)); }
function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }
function fracLabel(f) { return (f >= 0.1 || f === 0) ? Math.round(f * 100) + ' %' : +(f * 100).toFixed(1) + ' %'; }
function archName(m) { return (m.plain ? 'Plain-' : 'ResNet-') + m.depth + ' \u00d7' + short(m.width); }
function modelLabel(m) { return archName(m) + ' \u00b7 ' + fracLabel(m.fraction) + ' data \u00b7 seed ' + m.seed; }
function shortLabel(m) { return (m.plain ? 'P' : 'R') + m.depth + ' k' + short(m.width) + ' f' + short(m.fraction) + ' s' + m.seed; }
const byName = new Map(models.map(function (m) { return [m.model, m]; }));
function chance() { return study.classes ? 1 / study.classes : null; }
function currentSeed() { return seeds.length ? seeds[state.seed] : null; }
function currentEpoch() { return state.epoch < epochStops.length ? epochStops[state.epoch] : null; }
function findModel(depth, width, fraction, plain, seed) {
  for (const m of models) {
    if (m.depth === depth && m.width === width && m.fraction === fraction && m.plain === plain && m.seed === seed) return m;
  }
  return null;
}
function namesOf(key) { const l = nameLists[key]; return l ? l : null; }

// ---------------------------------------------------------------- colours
// Magma (matplotlib), 11 anchors from 0 to 1, interpolated to 256 colours in JS.
const MAGMA = [[0,0,4],[20,14,54],[59,15,112],[100,26,128],[140,41,129],[183,55,121],[222,73,104],[247,112,92],[254,159,109],[254,207,146],[252,253,191]];
const UNDEFINED_COLOUR = '#c9ced4';
const LUT_RGB = [];
const LUT = [];
(function () {
  for (let i = 0; i < 256; i++) {
    const t = i / 255 * (MAGMA.length - 1);
    const k = Math.min(MAGMA.length - 2, Math.floor(t));
    const f = t - k;
    const c = [0, 1, 2].map(function (j) { return Math.round(MAGMA[k][j] + f * (MAGMA[k + 1][j] - MAGMA[k][j])); });
    LUT_RGB.push(c);
    LUT.push('rgb(' + c[0] + ',' + c[1] + ',' + c[2] + ')');
  }
  LUT.push(UNDEFINED_COLOUR);
})();
function colourBar(canvas, vertical) {
  const w = vertical ? 1 : 256, h = vertical ? 256 : 1;
  canvas.width = w; canvas.height = h;
  const ctx = canvas.getContext('2d');
  for (let i = 0; i < 256; i++) {
    ctx.fillStyle = LUT[i];
    if (vertical) ctx.fillRect(0, 255 - i, 1, 1); else ctx.fillRect(i, 0, 1, 1);
  }
}

// ---------------------------------------------------------------- heatmap decoding
function b64(s) {
  const bin = atob(s);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
const decoded = new Map();
function decodeHeatmap(h) {
  let d = decoded.get(h);
  if (d) return d;
  const n = h.rows * h.columns;
  if (h.bits !== 8 && h.bits !== 16) throw new Error('heatmap: unsupported bits ' + h.bits);
  const bytes = b64(h.values);
  if (bytes.length !== n * h.bits / 8) throw new Error('heatmap: ' + bytes.length + ' bytes for ' + h.rows + ' x ' + h.columns);
  const undef = h.bits === 16 ? 65535 : 255;
  let codes = bytes;
  if (h.bits === 16) {
    codes = new Uint16Array(n);
    for (let i = 0; i < n; i++) codes[i] = bytes[2 * i] | (bytes[2 * i + 1] << 8);
  }
  const step = (h.hi - h.lo) / (undef - 1);
  const colour = new Uint16Array(n);
  for (let i = 0; i < n; i++) {
    const c = codes[i];
    if (c === undef) { colour[i] = 256; continue; }
    const v = h.lo + c * step;
    colour[i] = v <= 0 ? 0 : v >= 1 ? 255 : Math.round(v * 255);
  }
  let se = null;
  if (h.standard_errors) {
    se = b64(h.standard_errors);
    if (se.length !== n) se = null;
  }
  d = { codes: codes, undef: undef, step: step, colour: colour, se: se, runs: null };
  decoded.set(h, d);
  return d;
}
function cellValue(h, d, i) {
  const c = d.codes[i];
  return c === d.undef ? null : h.lo + c * d.step;
}
function cellSE(h, d, i) {
  if (!d.se) return null;
  const c = d.se[i];
  return c === 255 ? null : c * (h.se_max || 0) / 254;
}
// Runs of equal colour along each row, bucketed by colour: one fillStyle per colour.
function colourRuns(h, d) {
  if (d.runs) return d.runs;
  const R = h.rows, C = h.columns, col = d.colour;
  const counts = new Uint32Array(257);
  for (let r = 0; r < R; r++) {
    let c = 0;
    while (c < C) {
      const k = col[r * C + c];
      let e = c + 1;
      while (e < C && col[r * C + e] === k) e++;
      counts[k]++;
      c = e;
    }
  }
  const start = new Uint32Array(258);
  for (let k = 0; k < 257; k++) start[k + 1] = start[k] + counts[k];
  const total = start[257];
  const row = new Uint16Array(total), c0 = new Uint16Array(total), c1 = new Uint16Array(total);
  const fill = start.slice(0, 257);
  for (let r = 0; r < R; r++) {
    let c = 0;
    while (c < C) {
      const k = col[r * C + c];
      let e = c + 1;
      while (e < C && col[r * C + e] === k) e++;
      const j = fill[k]++;
      row[j] = r; c0[j] = c; c1[j] = e;
      c = e;
    }
  }
  d.runs = { start: start, row: row, c0: c0, c1: c1 };
  return d.runs;
}
function edges(n, px) {
  const e = new Int32Array(n + 1);
  for (let i = 0; i <= n; i++) e[i] = Math.round(i * px / n);
  return e;
}
function stageBoundaries(list) {
  const out = [];
  if (!list || !list.stages) return out;
  for (let i = 1; i < list.stages.length; i++) if (list.stages[i] !== list.stages[i - 1]) out.push(i);
  return out;
}
function stageSpans(list) {
  const spans = [];
  if (!list || !list.stages) return spans;
  let s = 0;
  for (let i = 1; i <= list.stages.length; i++) {
    if (i === list.stages.length || list.stages[i] !== list.stages[s]) { spans.push({ stage: list.stages[s], first: s, last: i - 1 }); s = i; }
  }
  return spans;
}

// Colours as little-endian RGBA words for the pixel path.
const LITTLE = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;
const LUT32 = new Uint32Array(257);
(function () {
  const rgb = LUT_RGB.concat([[201, 206, 212]]);
  for (let k = 0; k < 257; k++) {
    const c = rgb[k];
    LUT32[k] = LITTLE ? ((255 << 24) | (c[2] << 16) | (c[1] << 8) | c[0]) >>> 0 : ((c[0] << 24) | (c[1] << 16) | (c[2] << 8) | 255) >>> 0;
  }
})();

// Draws a heatmap on its canvas at the canvas' CSS size x devicePixelRatio, cell by cell: cell
// (r, c) covers device pixels [xs[c], xs[c+1]) x [ys[r], ys[r+1]) exactly (integer edges, no
// smoothing, no scaled bitmap), then the stage boundaries as thin lines.
// Two equivalent ways to fill the cells (api.drawMode), giving the same pixels (the browser
// test checks it): 'pixels' (default) writes each cell's lookup-table colour into a buffer of
// the canvas' device pixels and puts it once; 'rects' calls fillRect per run of equal-coloured
// cells of a row, one fillStyle per colour. A 198 x 198 heatmap on a 483 px canvas took
// 2-4 ms with 'pixels' and 6-50 ms with 'rects' in headless Chromium on a busy 2-core machine
// (fillRect costs 1-10 us a call), so 'pixels' is what keeps a slider move within one frame.
function drawHeatmap(canvas, h, d, rowList, colList) {
  const dpr = window.devicePixelRatio || 1;
  const cssW = canvas.clientWidth || canvas.parentNode.clientWidth || 300;
  const W = Math.max(1, Math.round(cssW * dpr));
  const H = Math.max(1, Math.round(cssW * h.rows / h.columns * dpr));
  if (canvas.width !== W) canvas.width = W;
  if (canvas.height !== H) canvas.height = H;
  // CPU-backed (willReadFrequently): the pixel buffer goes straight in, no GPU upload.
  const ctx = canvas.getContext('2d', { alpha: false, willReadFrequently: true });
  const xs = edges(h.columns, W), ys = edges(h.rows, H);
  if (api.drawMode === 'rects') fillRects(ctx, h, d, xs, ys); else fillPixels(canvas, ctx, W, H, h, d, xs, ys);
  const lw = Math.max(1, Math.round(dpr));
  ctx.fillStyle = 'rgba(255,255,255,0.7)';
  for (const b of stageBoundaries(colList)) ctx.fillRect(xs[b] - (lw >> 1), 0, lw, H);
  for (const b of stageBoundaries(rowList)) ctx.fillRect(0, ys[b] - (lw >> 1), W, lw);
  // Reading one pixel makes the browser rasterise what was recorded now, inside the measured
  // time (lastDrawMs), rather than later, unmeasured, before the next paint.
  ctx.getImageData(0, 0, 1, 1);
}
function fillRects(ctx, h, d, xs, ys) {
  const runs = colourRuns(h, d);
  for (let k = 0; k < 257; k++) {
    const a = runs.start[k], b = runs.start[k + 1];
    if (a === b) continue;
    ctx.fillStyle = LUT[k];
    for (let j = a; j < b; j++) {
      const r = runs.row[j], x0 = xs[runs.c0[j]];
      ctx.fillRect(x0, ys[r], xs[runs.c1[j]] - x0, ys[r + 1] - ys[r]);
    }
  }
}
function fillPixels(canvas, ctx, W, H, h, d, xs, ys) {
  let img = canvas._img;
  if (!img || img.width !== W || img.height !== H) { img = ctx.createImageData(W, H); canvas._img = img; }
  const buf = new Uint32Array(img.data.buffer);
  const C = h.columns, col = d.colour;
  for (let r = 0; r < h.rows; r++) {
    const y0 = ys[r], y1 = ys[r + 1];
    if (y1 === y0) continue;
    const base = y0 * W;
    for (let c = 0; c < C; c++) {
      const v = LUT32[col[r * C + c]];
      const x1 = xs[c + 1];
      for (let x = xs[c]; x < x1; x++) buf[base + x] = v;
    }
    for (let y = y0 + 1; y < y1; y++) buf.copyWithin(y * W, base, base + W);
  }
  ctx.putImageData(img, 0, 0);
}

// ---------------------------------------------------------------- tooltip
const tooltip = document.getElementById('tooltip');
function showTooltip(ev, lines) {
  clear(tooltip);
  for (const l of lines) tooltip.appendChild(l);
  tooltip.hidden = false;
  const pad = 14;
  let x = ev.clientX + pad, y = ev.clientY + pad;
  const r = tooltip.getBoundingClientRect();
  if (x + r.width > window.innerWidth - 4) x = ev.clientX - pad - r.width;
  if (y + r.height > window.innerHeight - 4) y = ev.clientY - pad - r.height;
  tooltip.style.left = Math.max(2, x) + 'px';
  tooltip.style.top = Math.max(2, y) + 'px';
}
function hideTooltip() { tooltip.hidden = true; }
function ttLine(key, value, cls) { return el('div', { cls: cls }, el('span', { cls: 'k', text: key }), ' ', value); }

// ---------------------------------------------------------------- panels
const heatmapPanels = [];
function emptyBox(text, short) { return el('div', { cls: short ? 'empty short' : 'empty', text: text }); }

// A heatmap panel. set(spec) swaps its content; redraws only when the heatmap or size changed.
// spec: {model, kind, epoch, heatmap, missing, title, caption: [nodes], valueLabel, rowLabel, colLabel, aspect}
function HeatmapPanel(id) {
  this.id = id;
  this.root = el('figure', { cls: 'panel heatmap-panel', data: { panel: id, model: '', kind: '' } });
  this.title = el('figcaption', { cls: 'panel-title' });
  this.body = el('div');
  this.extra = el('div');
  this.caption = el('div', { cls: 'caption' });
  this.root.append(this.title, this.body, this.extra, this.caption);
  this.spec = null;
  this.canvas = null;
  this.plot = null;
  this.emptyNode = null;
  this.drawnKey = null;
  heatmapPanels.push(this);
}
HeatmapPanel.prototype.set = function (spec) {
  // Nothing to do when the panel already shows this (the common case: another figure's control
  // moved).
  const sig = [spec.model, spec.kind, spec.epoch, spec.title, spec.missing, currentEpoch(), state.seed].join('|');
  if (this.spec && sig === this.sig && this.spec.heatmap === spec.heatmap) { this.draw(false); return; }
  this.sig = sig;
  const r = this.root;
  r.setAttribute('data-model', spec.model || '');
  r.setAttribute('data-kind', spec.kind);
  if (spec.epoch !== null && spec.epoch !== undefined) r.setAttribute('data-epoch', String(spec.epoch)); else r.removeAttribute('data-epoch');
  this.title.textContent = spec.title || '';
  clear(this.caption);
  (spec.caption || []).forEach(function (n) { if (n) this.caption.appendChild(n); }, this);
  const same = this.spec && this.spec.heatmap === spec.heatmap && spec.heatmap;
  this.spec = spec;
  if (same && this.canvas) { this.draw(false); return; }
  this.drawnKey = null;
  if (!spec.heatmap) { this.showEmpty(spec.missing || 'No data.'); return; }
  let d;
  const t0 = performance.now();
  try { d = decodeHeatmap(spec.heatmap); } catch (e) {
    this.showEmpty('Heatmap data unreadable: ' + e.message);
    api.errors.push(String(e));
    return;
  }
  const h = spec.heatmap;
  if (!this.canvas) this.build();
  if (this.emptyNode) { this.body.removeChild(this.emptyNode); this.emptyNode = null; }
  this.plot.hidden = false;
  this.xwrap.hidden = false;
  this.canvas.style.aspectRatio = h.columns + ' / ' + h.rows;
  this.canvas.setAttribute('aria-label', (spec.valueLabel || 'CKA') + ' heatmap ' + (spec.model || ''));
  this.cbar.title = spec.valueLabel || 'CKA';
  const axisKey = h.column_names + ':' + h.columns;
  if (axisKey !== this.axisKey) {
    this.axisKey = axisKey;
    clear(this.xaxis);
    for (const s of stageSpans(namesOf(h.column_names))) {
      if (s.stage < 1 || s.stage > 3) continue;
      const mid = (s.first + s.last + 1) / 2 / h.columns * 100;
      this.xaxis.appendChild(el('span', { text: 'stage ' + s.stage, style: 'left:' + mid.toFixed(2) + '%' }));
    }
  }
  this.draw(true, t0);
};
HeatmapPanel.prototype.build = function () {
  const canvas = el('canvas', { cls: 'hm', role: 'img' });
  const yaxis = el('div', { cls: 'yaxis' }, el('span', { cls: 'top', text: 'input' }), el('span', { cls: 'bottom', text: 'output' }));
  const cbCanvas = el('canvas');
  colourBar(cbCanvas, true);
  const ticks = el('div', { cls: 'cbar-ticks' }, el('span', { text: '1', style: 'top:0%' }), el('span', { text: '0.5', style: 'top:50%' }), el('span', { text: '0', style: 'top:100%' }));
  this.cbar = el('div', { cls: 'cbar' }, cbCanvas, ticks);
  this.plot = el('div', { cls: 'plot' }, yaxis, canvas, this.cbar);
  this.xaxis = el('div', { cls: 'xaxis' });
  this.xwrap = el('div', { cls: 'plot' }, el('div'), this.xaxis, el('div'));
  this.body.append(this.plot, this.xwrap);
  this.canvas = canvas;
  this.axisKey = null;
  const self = this;
  canvas.addEventListener('mousemove', function (ev) { self.hover(ev); });
  canvas.addEventListener('mouseleave', hideTooltip);
};
HeatmapPanel.prototype.showEmpty = function (text) {
  if (this.plot) { this.plot.hidden = true; this.xwrap.hidden = true; }
  if (this.emptyNode) this.body.removeChild(this.emptyNode);
  this.emptyNode = emptyBox(text);
  this.body.appendChild(this.emptyNode);
};
HeatmapPanel.prototype.draw = function (changed, t0) {
  if (!this.canvas || !this.spec || !this.spec.heatmap || this.plot.hidden) return;
  const h = this.spec.heatmap;
  const key = this.canvas.clientWidth + 'x' + (window.devicePixelRatio || 1);
  if (!changed && key === this.drawnKey) return;
  const start = t0 === undefined ? performance.now() : t0;
  const d = decodeHeatmap(h);
  drawHeatmap(this.canvas, h, d, namesOf(h.row_names), namesOf(h.column_names));
  this.drawnKey = key;
  const ms = performance.now() - start;
  api.lastDrawMs = ms;
  api.lastDraw = { panel: this.id, model: this.spec.model, rows: h.rows, columns: h.columns, ms: ms, mode: api.drawMode, width: this.canvas.width, height: this.canvas.height };
  api.draws.push(api.lastDraw);
  if (api.draws.length > 200) api.draws.shift();
};
HeatmapPanel.prototype.hover = function (ev) {
  const spec = this.spec, h = spec && spec.heatmap;
  if (!h) return;
  const rect = this.canvas.getBoundingClientRect();
  const c = Math.floor((ev.clientX - rect.left) / rect.width * h.columns);
  const r = Math.floor((ev.clientY - rect.top) / rect.height * h.rows);
  if (r < 0 || c < 0 || r >= h.rows || c >= h.columns) { hideTooltip(); return; }
  const d = decodeHeatmap(h);
  const rl = namesOf(h.row_names), cl = namesOf(h.column_names);
  const rn = rl && rl.names[r] !== undefined ? rl.names[r] : '#' + r;
  const cn = cl && cl.names[c] !== undefined ? cl.names[c] : '#' + c;
  const v = cellValue(h, d, r * h.columns + c);
  const se = cellSE(h, d, r * h.columns + c);
  const label = spec.valueLabel || 'CKA';
  const value = v === null ? 'undefined' : v.toFixed(4) + (se !== null ? ' \u00b1 ' + se.toFixed(4) : '');
  showTooltip(ev, [
    el('div', { cls: 'tt-title', text: spec.tooltipTitle || spec.title || '' }),
    ttLine(spec.rowLabel || 'row', rn + '  (#' + r + ')'),
    ttLine(spec.colLabel || 'column', cn + '  (#' + c + ')'),
    ttLine(label, value, 'tt-value')
  ]);
  tooltip.setAttribute('data-row', rn);
  tooltip.setAttribute('data-column', cn);
  tooltip.setAttribute('data-value', v === null ? 'undefined' : String(v));
};

// A chart panel (SVG): line over layers, probes, deletion curves, bars.
function ChartPanel(id, kind) {
  this.id = id;
  this.root = el('div', { cls: 'chart', data: { panel: id, model: '', kind: kind } });
  this.render = null;
}
ChartPanel.prototype.set = function (model, epoch, render, key) {
  // Charts are rebuilt only when what they show changed (key: model, epoch, title inputs).
  const k = [model, epoch, key, currentEpoch()].join('|');
  if (this.render && k === this.key) return;
  this.key = k;
  this.root.setAttribute('data-model', model || '');
  if (epoch !== null && epoch !== undefined) this.root.setAttribute('data-epoch', String(epoch)); else this.root.removeAttribute('data-epoch');
  this.render = render;
  this.draw();
};
ChartPanel.prototype.draw = function () {
  clear(this.root);
  if (this.render) this.render(this.root);
};
const chartPanels = [];
function chartPanel(id, kind) { const p = new ChartPanel(id, kind); chartPanels.push(p); return p; }

// A generic x/y chart over representation indices 0..n-1 (x at cell centres, so it lines up
// with a heatmap's columns above it) or over any numeric domain.
function xyChart(container, o) {
  const W = Math.max(120, Math.round(container.clientWidth || 300));
  // The plot area spans what a heatmap's canvas spans in a panel (.plot: 40 px axis + 4 px gap
  // on the left, 4 px gap + 34 px colour bar on the right), so x lines up with its columns.
  const left = 44, right = 38, top = 8, bottom = o.xLabels ? 30 : 18;
  const H = o.height || 150;
  const pw = W - left - right, ph = H - top - bottom;
  const x0 = o.xDomain[0], x1 = o.xDomain[1], y0 = o.yDomain[0], y1 = o.yDomain[1];
  const X = function (x) { return left + (x - x0) / (x1 - x0) * pw; };
  const Y = function (y) { return top + (1 - (y - y0) / (y1 - y0)) * ph; };
  const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-label': o.aria || 'chart' });
  (o.bands || []).forEach(function (b) {
    svg.appendChild(svgEl('rect', { cls: 'band', 'class': 'band', x: X(b[0]), y: top, width: Math.max(1, X(b[1]) - X(b[0])), height: ph }));
  });
  (o.yTicks || [y0, (y0 + y1) / 2, y1]).forEach(function (t) {
    svg.appendChild(svgEl('line', { 'class': 'grid', x1: left, x2: left + pw, y1: Y(t), y2: Y(t) }));
    svg.appendChild(svgEl('text', { x: left - 4, y: Y(t) + 3, 'text-anchor': 'end', text: o.yFormat ? o.yFormat(t) : String(t) }));
  });
  svg.appendChild(svgEl('line', { 'class': 'axis', x1: left, x2: left, y1: top, y2: top + ph }));
  svg.appendChild(svgEl('line', { 'class': 'axis', x1: left, x2: left + pw, y1: top + ph, y2: top + ph }));
  (o.vlines || []).forEach(function (x) { svg.appendChild(svgEl('line', { 'class': 'stage', x1: X(x), x2: X(x), y1: top, y2: top + ph })); });
  (o.hlines || []).forEach(function (l) {
    if (l.y === null || l.y === undefined) return;
    svg.appendChild(svgEl('line', { 'class': l.cls, x1: left, x2: left + pw, y1: Y(l.y), y2: Y(l.y) }));
  });
  (o.series || []).forEach(function (s) {
    let d = '';
    let pen = false;
    s.points.forEach(function (p) {
      if (p[1] === null || p[1] === undefined) { pen = false; return; }
      d += (pen ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1);
      pen = true;
    });
    if (s.line !== false && d) svg.appendChild(svgEl('path', { 'class': s.cls, d: d }));
    if (s.dots) s.points.forEach(function (p) {
      if (p[1] === null || p[1] === undefined) return;
      const c = svgEl('circle', { 'class': p[2] || s.dots, cx: X(p[0]).toFixed(1), cy: Y(p[1]).toFixed(1), r: s.r || 2.2 });
      if (p[3]) c.appendChild(svgEl('title', { text: p[3] }));
      svg.appendChild(c);
    });
  });
  (o.xLabels || []).forEach(function (l) {
    svg.appendChild(svgEl('text', { x: X(l[0]), y: top + ph + 12, 'text-anchor': 'middle', text: l[1] }));
  });
  if (o.xTitle) svg.appendChild(svgEl('text', { x: left + pw / 2, y: H - 2, 'text-anchor': 'middle', text: o.xTitle }));
  if (o.yTitle) svg.appendChild(svgEl('text', { x: 10, y: top + ph / 2, 'text-anchor': 'middle', transform: 'rotate(-90 10 ' + (top + ph / 2) + ')', text: o.yTitle }));
  container.appendChild(svg);
  if (o.hover) {
    svg.addEventListener('mousemove', function (ev) {
      const r = svg.getBoundingClientRect();
      const x = x0 + ((ev.clientX - r.left) * W / r.width - left) / pw * (x1 - x0);
      const lines = o.hover(x);
      if (lines) showTooltip(ev, lines); else hideTooltip();
    });
    svg.addEventListener('mouseleave', hideTooltip);
  }
  if (o.legend) {
    container.appendChild(el('div', { cls: 'chart-legend' }, o.legend.map(function (l) {
      return el('span', null, el('i', { cls: l[0], style: 'border-color:' + l[1] }), l[2]);
    })));
  }
  return svg;
}
function stageLabelsFor(list) {
  return stageSpans(list).filter(function (s) { return s.stage >= 1 && s.stage <= 3; })
    .map(function (s) { return [(s.first + s.last) / 2, 'stage ' + s.stage]; });
}

// ---------------------------------------------------------------- captions and specs
function whyMissing(m, what) {
  if (!m) return 'No model for this grid point.';
  const s = m.state;
  if (s === 'queued') return archName(m) + ' (seed ' + m.seed + '): queued \u2014 not trained yet.';
  if (s === 'training') return archName(m) + ' (seed ' + m.seed + '): training (epoch ' + m.epochs_trained + ' of ' + study.epochs + ').';
  if (s === 'failed' || s === 'cancelled' || s === 'interrupted') return archName(m) + ' (seed ' + m.seed + '): training ' + s + '.';
  if (s === 'analysing') return archName(m) + ': trained, ' + what + ' being computed.';
  return archName(m) + ': no ' + what + ' in the results.';
}
function verdictText(m, snap) {
  const has = snap ? snap.has_block_structure : m.has_block_structure;
  if (has === null || has === undefined) return el('span', { cls: 'verdict', text: 'block structure: not analysed' });
  if (!has) return el('span', { cls: 'verdict', text: 'no block structure' + (!snap && m.block_score !== undefined ? ' (score ' + fix(m.block_score, 2) + ')' : '') });
  if (snap) return el('span', { cls: 'verdict block', text: 'block structure' });
  const ranges = (m.block_ranges || []).map(function (b) {
    return b.first_name + ' \u2026 ' + b.last_name + ' (' + b.blocks_spanned + ' blocks, CKA ' + fix(b.mean_cka, 2) + ')';
  });
  return el('span', { cls: 'verdict block', text: 'block structure: ' + (ranges.length ? ranges.join('; ') : 'yes') });
}
function nearChanceWarning(m) {
  if (!m || !m.near_chance) return null;
  return el('div', { cls: 'warning', role: 'note', data: { warning: 'near-chance' } },
    '\u26a0 Near chance: test accuracy ' + pct(m.test_accuracy) + ' against chance ' + pct(chance(), 0) +
    '. This model failed to train; its high CKA is not the paper\u2019s block structure.');
}
function modelCaption(m, opts) {
  opts = opts || {};
  if (!m) return [];
  const snap = opts.snapshot || null;
  const out = [];
  const line1 = el('div', null, el('span', { cls: 'who', text: modelLabel(m) }));
  if (m.plain) line1.appendChild(el('span', { cls: 'badge', text: 'plain' }));
  if (opts.epochBadge) line1.appendChild(el('span', { cls: 'badge', text: opts.epochBadge }));
  out.push(line1);
  out.push(el('div', { cls: 'name', text: m.model }));
  const acc = el('div', null, el('span', { cls: 'acc', text: 'test accuracy ' + pct(m.test_accuracy) }));
  if (snap) acc.appendChild(document.createTextNode(' \u00b7 after epoch ' + snap.epoch + ': ' + pct(snap.test_accuracy)));
  acc.appendChild(document.createTextNode(' \u00b7 '));
  acc.appendChild(verdictText(m, snap));
  out.push(acc);
  out.push(nearChanceWarning(m));
  (m.notes || []).forEach(function (n) { if (!m.near_chance || n.indexOf('chance') < 0) out.push(el('div', { text: n })); });
  return out;
}
// The within-model heatmap of m under the global epoch slider (the final model at the last stop).
function withinSpec(m, extraTitle) {
  const ep = currentEpoch();
  if (ep === null) {
    return { model: m ? m.model : '', kind: 'within', epoch: null, heatmap: m && m.heatmap ? m.heatmap : null,
      missing: whyMissing(m, 'CKA heatmap'), title: (extraTitle || '') + (m ? archName(m) : ''),
      caption: modelCaption(m), valueLabel: 'CKA' };
  }
  const snap = m ? (m.snapshots || []).find(function (s) { return s.epoch === ep; }) : null;
  return { model: m ? m.model : '', kind: 'snapshot', epoch: ep, heatmap: snap && snap.heatmap ? snap.heatmap : null,
    missing: m && m.state === 'done' ? archName(m) + ': no snapshot after epoch ' + ep + '.' : whyMissing(m, 'snapshot'),
    title: (extraTitle || '') + (m ? archName(m) : '') + ' \u2014 epoch ' + ep,
    caption: modelCaption(m, { snapshot: snap || { epoch: ep }, epochBadge: 'epoch ' + ep + ' of ' + study.epochs }), valueLabel: 'CKA' };
}
function finalBadge() { return currentEpoch() === null ? null : 'final model'; }
function kindSpec(m, kind, field, what, label, title) {
  return { model: m ? m.model : '', kind: kind, epoch: null, heatmap: m && m[field] ? m[field] : null,
    missing: whyMissing(m, what), title: title, caption: modelCaption(m, { epochBadge: finalBadge() }), valueLabel: label };
}
function crossSpec(c, kind, missing) {
  if (!c) return { model: '', kind: kind, heatmap: null, missing: missing, title: kind === 'cross-seed' ? 'Across seeds' : 'Across architectures', caption: [] };
  const a = byName.get(c.model_a), b = byName.get(c.model_b);
  const la = a ? shortLabel(a) : c.model_a, lb = b ? shortLabel(b) : c.model_b;
  const cap = [
    el('div', null, el('span', { cls: 'who', text: 'rows: ' + la + ' \u00b7 columns: ' + lb }), el('span', { cls: 'badge', text: 'axis: ' + c.axis })),
    el('div', { cls: 'name', text: c.model_a + ' | ' + c.model_b }),
    el('div', null, 'test accuracy ' + pct(a && a.test_accuracy) + ' / ' + pct(b && b.test_accuracy)),
    nearChanceWarning(a), nearChanceWarning(b)
  ];
  return { model: c.model_a + '|' + c.model_b, kind: kind, heatmap: c.heatmap, title: la + ' vs ' + lb,
    tooltipTitle: la + ' (rows) vs ' + lb + ' (columns)', caption: cap, valueLabel: 'CKA',
    rowLabel: 'row', colLabel: 'column' };
}

// ---------------------------------------------------------------- controls
const controls = [];
function rangeControl(name, label, stops, get, set, ends, ticks) {
  const input = el('input', { type: 'range', min: 0, max: Math.max(0, stops.length - 1), step: 1, value: get(), data: { control: name }, 'aria-label': label });
  const out = el('output', { text: stops[get()] || '' });
  const wrap = el('div', { cls: 'control' },
    el('div', { cls: 'control-label' }, label + ':', out), input,
    el('div', { cls: 'ticks' }, (ticks || stops).map(function (s) { return el('span', { text: s }); })),
    ends ? el('div', { cls: 'ends' }, el('span', { text: ends[0] }), el('span', { text: ends[1] })) : null);
  input.addEventListener('input', function () { set(Number(input.value)); out.textContent = stops[Number(input.value)] || ''; update(); });
  controls.push({ name: name, sync: function () { input.value = get(); out.textContent = stops[get()] || ''; } });
  return wrap;
}
function toggleControl(name, label, options, get, set) {
  const group = el('div', { cls: 'toggle', role: 'group', 'aria-label': label, data: { control: name } });
  const buttons = options.map(function (o) {
    const b = el('button', { type: 'button', text: o[1], data: { value: o[0] }, 'aria-pressed': String(get() === o[0]) });
    b.addEventListener('click', function () { set(o[0]); update(); });
    group.appendChild(b);
    return b;
  });
  controls.push({ name: name, sync: function () { buttons.forEach(function (b, i) { b.setAttribute('aria-pressed', String(get() === options[i][0])); }); } });
  return el('div', { cls: 'control' }, el('div', { cls: 'control-label', text: label }), group);
}
function selectControl(name, label, options, get, set) {
  const sel = el('select', { data: { control: name }, 'aria-label': label });
  options.forEach(function (o, i) { sel.appendChild(el('option', { value: i, text: o })); });
  sel.value = String(get());
  sel.addEventListener('change', function () { set(Number(sel.value)); update(); });
  controls.push({ name: name, sync: function () { sel.value = String(get()); } });
  return el('div', { cls: 'control' }, el('div', { cls: 'control-label', text: label }), sel);
}

// ---------------------------------------------------------------- figure choices
// Fig 3 and 6: among the selected seed's residual models with a heatmap that are not near
// chance, the block model with the highest block score and the no-block model with the highest
// test accuracy (ties: the first in grid order).
function chooseModel(which) {
  const seed = currentSeed();
  let best = null, bestKey = -Infinity;
  for (const m of models) {
    if (m.seed !== seed || m.plain || !m.heatmap || m.near_chance) continue;
    if (which === 'block' ? m.has_block_structure !== true : m.has_block_structure !== false) continue;
    const raw = which === 'block' ? m.block_score : m.test_accuracy;
    const key = (raw === null || raw === undefined) ? -Infinity : raw;
    if (best === null || key > bestKey) { best = m; bestKey = key; }
  }
  return best;
}
function crossSeedFor(m) {
  if (!m) return null;
  const list = data.cross_seed || [];
  return list.find(function (c) { return c.model_a === m.model; }) || list.find(function (c) { return c.model_b === m.model; }) || null;
}
function plainDepthFraction() {
  let d = null;
  for (const m of plainModels) if (d === null || m.depth > d) d = m.depth;
  let f = null;
  for (const m of plainModels) if (m.depth === d && (f === null || m.fraction > f)) f = m.fraction;
  return [d, f];
}

// ---------------------------------------------------------------- page
const root = document.getElementById('report');
const figures = [];
function figure(n, title, lead) {
  const sec = el('section', { cls: 'figure', id: 'fig' + n, data: { figure: n } },
    el('h2', { text: (typeof n === 'number' ? 'Figure ' + n + ' \u2014 ' : '') + title }),
    lead ? el('p', { cls: 'lead', text: lead }) : null);
  root.appendChild(sec);
  return sec;
}

function header() {
  root.appendChild(el('h1', { text: 'Blockscope report \u2014 ' + (study.name || 'study') }));
  root.appendChild(el('p', { cls: 'subtitle', text: 'Do wide and deep networks learn the same things? Representations of this study\u2019s own models, measured with minibatch CKA.' }));
  const done = models.filter(function (m) { return m.state === 'done'; }).length;
  root.appendChild(el('ul', { cls: 'facts' },
    el('li', null, 'dataset ', el('b', { text: study.dataset + ' (' + study.classes + ' classes)' })),
    el('li', null, 'depths ', el('b', { text: depths.join(', ') })),
    el('li', null, 'widths ', el('b', { text: widths.map(short).join(', ') })),
    el('li', null, 'data ', el('b', { text: fractions.map(fracLabel).join(', ') })),
    el('li', null, 'seeds ', el('b', { text: seeds.join(', ') })),
    el('li', null, 'plain widths ', el('b', { text: plainWidths.length ? plainWidths.map(short).join(', ') : 'none' })),
    el('li', null, 'epochs ', el('b', { text: String(study.epochs) + (epochStops.length ? ' (snapshots after ' + epochStops.join(', ') + ')' : '') })),
    el('li', null, 'models trained ', el('b', { text: done + ' of ' + models.length })),
    el('li', null, 'generated ', el('b', { text: data.generated || '' }))));
  if ((data.notes || []).length) {
    root.appendChild(el('div', { cls: 'notes' }, el('b', { text: 'Notes' }), el('ul', null, data.notes.map(function (n) { return el('li', { text: n }); }))));
  }
  root.appendChild(el('details', { cls: 'declaration' }, el('summary', { text: 'Study declaration' }), el('pre', { text: study.declaration || '' })));
  root.appendChild(el('nav', { cls: 'toc' }, [
    ['#fig1', '1 depth and width'], ['#fig2', '2 data size'], ['#fig3', '3 first PC'], ['#fig4', '4 probes'],
    ['#fig5', '5 plain nets'], ['#fig6', '6 deletion and seeds'], ['#fig7', '7 populations'], ['#figx', 'across architectures'], ['#models', 'all models']
  ].map(function (x) { return el('a', { href: x[0], text: x[1] }); })));

  const bar = el('div', { cls: 'globalbar', data: { global: 'controls' } });
  bar.appendChild(selectControl('seed', 'Seed (all figures)', seeds.map(function (s) { return 'seed ' + s; }),
    function () { return state.seed; }, function (v) { state.seed = v; }));
  if (epochStops.length) {
    const stops = epochStops.map(String).concat(['final (' + study.epochs + ')']);
    bar.appendChild(rangeControl('epoch', 'Training epoch (CKA heatmaps, PC1)', stops,
      function () { return state.epoch; }, function (v) { state.epoch = v; }));
  }
  const cb = el('canvas');
  colourBar(cb, false);
  bar.appendChild(el('div', { cls: 'legend' }, el('span', { text: 'CKA 0' }), cb, el('span', { text: '1' }),
    el('span', { text: '\u00b7 grey: undefined \u00b7 white lines: stage boundaries' })));
  root.appendChild(bar);
}

function heatmapFigure(row, id) { const p = new HeatmapPanel(id); row.appendChild(p.root); return p; }

// Fig 1
function fig1() {
  const sec = figure(1, 'depth and width', 'Within-model CKA between every pair of representations (rows and columns from input to output). Left: deeper networks at the smallest width; right: wider networks at the largest depth; both on the largest data fraction. A bright square (the block structure) grows with depth and width.');
  const minW = minOf(widths), maxD = maxOf(depths), maxF = maxOf(fractions);
  const ctl = el('div', { cls: 'row two' });
  ctl.appendChild(el('div', { cls: 'controls' }, rangeControl('fig1-depth', 'Depth (width \u00d7' + short(minW) + ')', depths.map(function (d) { return 'ResNet-' + d; }),
    function () { return state.fig1Depth; }, function (v) { state.fig1Depth = v; }, ['shallow', 'deep'], depths.map(String))));
  ctl.appendChild(el('div', { cls: 'controls' }, rangeControl('fig1-width', 'Width (ResNet-' + maxD + ')', widths.map(function (w) { return '\u00d7' + short(w); }),
    function () { return state.fig1Width; }, function (v) { state.fig1Width = v; }, ['narrow', 'wide'])));
  sec.appendChild(ctl);
  const row = el('div', { cls: 'row two' });
  sec.appendChild(row);
  const left = heatmapFigure(row, 'fig1-depth'), right = heatmapFigure(row, 'fig1-width');
  return function () {
    left.set(withinSpec(findModel(depths[state.fig1Depth], minW, maxF, false, currentSeed())));
    right.set(withinSpec(findModel(maxD, widths[state.fig1Width], maxF, false, currentSeed())));
  };
}

// Fig 2
function fig2() {
  const sec = figure(2, 'data size', 'The same architecture trained on less and less of the training set. Wide family: the smallest depth at the largest width; deep family: the largest depth at the smallest width. With scarce data, block structure appears in smaller models.');
  sec.appendChild(el('div', { cls: 'controls' },
    rangeControl('fig2-fraction', 'Training data', fractionsDesc.map(fracLabel),
      function () { return state.fig2Fraction; }, function (v) { state.fig2Fraction = v; }, ['more data', 'less data']),
    toggleControl('fig2-family', 'Family', [['wide', 'wide (ResNet-' + minOf(depths) + ' \u00d7' + short(maxOf(widths)) + ')'], ['deep', 'deep (ResNet-' + maxOf(depths) + ' \u00d7' + short(minOf(widths)) + ')']],
      function () { return state.fig2Family; }, function (v) { state.fig2Family = v; })));
  const row = el('div', { cls: 'row one' });
  sec.appendChild(row);
  const panel = heatmapFigure(row, 'fig2');
  return function () {
    const wide = state.fig2Family === 'wide';
    const d = wide ? minOf(depths) : maxOf(depths), w = wide ? maxOf(widths) : minOf(widths);
    panel.set(withinSpec(findModel(d, w, fractionsDesc[state.fig2Fraction], false, currentSeed())));
  };
}

function pc1Chart(panel, m, snap) {
  const fracs = snap ? snap.pc1_fraction : (m && m.pc1_fraction);
  const list = m ? namesOf(m.pc_names || (m.heatmap && m.heatmap.column_names)) : null;
  panel.set(m ? m.model : '', snap ? snap.epoch : null, function (c) {
    c.appendChild(el('div', { cls: 'panel-title', text: 'PC1 variance fraction per layer' + (snap ? ' \u2014 epoch ' + snap.epoch : '') }));
    if (!m || !fracs || !list) { c.appendChild(emptyBox(!m ? 'No model.' : 'No first-principal-component result' + (snap ? ' for this snapshot.' : '.'), true)); return; }
    const n = fracs.length;
    const bands = (m.block_ranges || []).map(function (b) { return [b.first - 0.5, b.last + 0.5]; });
    xyChart(c, {
      xDomain: [-0.5, n - 0.5], yDomain: [0, 1], yTicks: [0, 0.5, 1], yFormat: function (t) { return t.toFixed(1); },
      vlines: stageBoundaries(list).map(function (b) { return b - 0.5; }), bands: snap ? [] : bands,
      series: [{ points: fracs.map(function (f, i) { return [i, f]; }), cls: 'line-a', dots: 'dot-a', r: 1.6 }],
      xLabels: stageLabelsFor(list), yTitle: 'PC1 fraction', aria: 'PC1 variance fraction per layer',
      hover: function (x) {
        const i = Math.round(x);
        if (i < 0 || i >= n) return null;
        return [ttLine('layer', (list.names[i] || '#' + i) + '  (#' + i + ')'), ttLine('PC1', fracs[i] === null ? 'constant' : fix(fracs[i], 3), 'tt-value')];
      },
      legend: [['', 'var(--line-a)', 'fraction of variance explained by PC1'], ['dash', '#8b949e', 'stage boundary']].concat(bands.length && !snap ? [['', '#f3d9b1', 'block structure']] : [])
    });
  });
}

// Fig 3
function fig3() {
  const sec = figure(3, 'first principal component', 'For one model: the |cosine| between the layers\u2019 first principal directions (in example space), the CKA heatmap, the fraction of variance the first PC explains per layer, and CKA after removing each layer\u2019s first PC. Inside a block PC1 dominates, its directions align, and removing it dissolves the block.');
  sec.appendChild(el('div', { cls: 'controls' },
    toggleControl('fig3-choice', 'Model', [['block', 'with block structure'], ['no-block', 'without block structure']],
      function () { return state.fig3Choice; }, function (v) { state.fig3Choice = v; }),
    toggleControl('fig3-pc1', 'CKA heatmap (b)', [['with', 'as measured'], ['without', 'PC1 removed']],
      function () { return state.fig3Pc1; }, function (v) { state.fig3Pc1 = v; })));
  const note = el('p', { cls: 'figure-note' });
  sec.appendChild(note);
  const row = el('div', { cls: 'row four' });
  sec.appendChild(row);
  const cos = heatmapFigure(row, 'fig3-cosine');
  const cka = heatmapFigure(row, 'fig3-cka');
  const lineWrap = el('figure', { cls: 'panel' });
  row.appendChild(lineWrap);
  const line = chartPanel('fig3-pc1', 'pc1-fraction');
  lineWrap.appendChild(line.root);
  const lineCaption = el('div', { cls: 'caption' });
  lineWrap.appendChild(lineCaption);
  const nopc = heatmapFigure(row, 'fig3-nopc1');
  return function () {
    const which = state.fig3Choice === 'block' ? 'block' : 'no-block';
    const m = chooseModel(which);
    const none = 'No model of seed ' + currentSeed() + ' ' + (which === 'block' ? 'has block structure' : 'is without block structure') + ' (models near chance excluded).';
    note.textContent = m ? 'Showing ' + modelLabel(m) + ' \u2014 ' + (which === 'block' ? 'the block model with the highest block score.' : 'the no-block model with the highest test accuracy.') : none;
    const miss = function (s) { if (!m) s.missing = none; return s; };
    cos.set(miss(kindSpec(m, 'pc1-cosine', 'pc1_cosine', 'PC1 cosine heatmap', '|cos PC1|', '(a) |cosine| of PC1 directions')));
    if (state.fig3Pc1 === 'with') {
      const s = withinSpec(m, '(b) CKA \u2014 ');
      cka.set(miss(s));
    } else {
      cka.set(miss(kindSpec(m, 'no-pc1', 'heatmap_no_pc1', 'CKA heatmap without PC1', 'CKA (no PC1)', '(b) CKA, PC1 removed')));
    }
    const ep = currentEpoch();
    const snap = (m && ep !== null) ? ((m.snapshots || []).find(function (s) { return s.epoch === ep; }) || { epoch: ep }) : null;
    pc1Chart(line, m, snap);
    clear(lineCaption);
    if (m) {
      lineCaption.appendChild(el('div', { text: '(c) PC1 inside blocks ' + fix(m.pc1_inside, 2) + ', outside ' + fix(m.pc1_outside, 2) + ' (final model); shaded: block ranges.' }));
    }
    nopc.set(miss(kindSpec(m, 'no-pc1', 'heatmap_no_pc1', 'CKA heatmap without PC1', 'CKA (no PC1)', '(d) CKA, PC1 removed')));
  };
}

function probesChart(panel, m, list) {
  panel.set(m ? m.model : '', null, function (c) {
    c.appendChild(el('div', { cls: 'panel-title', text: 'Linear probe test accuracy' + (currentEpoch() !== null ? ' (final model)' : '') }));
    if (!m || !m.probes || !m.probes.length || !list) { c.appendChild(emptyBox(m ? (m.state === 'done' ? 'No probe results.' : whyMissing(m, 'probes')) : 'No model.', true)); return; }
    const n = list.names.length;
    const pts = m.probes.slice().sort(function (a, b) { return a.index - b.index; });
    const adds = pts.filter(function (p) { return !/\.bn2$/.test(p.name); }).map(function (p) { return [p.index, p.test_accuracy, 'dot-a', p.name + ': ' + pct(p.test_accuracy)]; });
    const bns = pts.filter(function (p) { return /\.bn2$/.test(p.name); }).map(function (p) { return [p.index, p.test_accuracy, 'dot-b', p.name + ': ' + pct(p.test_accuracy)]; });
    xyChart(c, {
      xDomain: [-0.5, n - 0.5], yDomain: [0, 1], yTicks: [0, 0.5, 1], yFormat: function (t) { return (t * 100) + '%'; },
      vlines: stageBoundaries(list).map(function (b) { return b - 0.5; }),
      hlines: [{ y: chance(), cls: 'chance' }, { y: m.test_accuracy, cls: 'ref' }],
      series: [{ points: adds, cls: 'line-a', dots: 'dot-a', r: 2 }, { points: bns, cls: 'line-b', dots: 'dot-b', r: 2 }],
      xLabels: stageLabelsFor(list), yTitle: 'probe acc.', aria: 'probe accuracy per layer',
      hover: function (x) {
        let best = null;
        for (const p of pts) if (best === null || Math.abs(p.index - x) < Math.abs(best.index - x)) best = p;
        return best ? [ttLine('layer', best.name + '  (#' + best.index + ')'), ttLine('probe', pct(best.test_accuracy, 2), 'tt-value')] : null;
      },
      legend: [['', 'var(--line-a)', 'block output (' + (m.plain ? 'out' : 'add') + ')'], ['', 'var(--line-b)', 'end of branch (bn2)'], ['dash', '#1f2328', 'model'], ['dot', '#b42318', 'chance']]
    });
  });
}

// Fig 4
function fig4() {
  const sec = figure(4, 'linear probes', 'Models of increasing width at the largest depth; under each heatmap, the test accuracy of a linear probe on every block\u2019s output and on the end of its branch (x aligned with the heatmap\u2019s columns, stage boundaries dashed). Inside a block the probe accuracy stalls and drops at the pre-residual layers.');
  sec.appendChild(el('div', { cls: 'controls' },
    rangeControl('fig4-fraction', 'Training data', fractionsDesc.map(fracLabel),
      function () { return state.fig4Fraction; }, function (v) { state.fig4Fraction = v; }, ['more data', 'less data'])));
  const row = el('div', { cls: 'row ' + (widths.length <= 1 ? 'one' : widths.length === 2 ? 'two' : widths.length === 3 ? 'three' : 'four') });
  sec.appendChild(row);
  const panels = widths.map(function (w, j) {
    const p = heatmapFigure(row, 'fig4-' + j);
    const probes = chartPanel('fig4-probes-' + j, 'probes');
    p.extra.appendChild(probes.root);
    return [p, probes];
  });
  return function () {
    const d = maxOf(depths), f = fractionsDesc[state.fig4Fraction];
    widths.forEach(function (w, j) {
      const m = findModel(d, w, f, false, currentSeed());
      panels[j][0].set(withinSpec(m));
      const key = m && (m.heatmap ? m.heatmap.column_names : null);
      probesChart(panels[j][1], m, key ? namesOf(key) : (m ? namesOf(m.pc_names) : null));
    });
  };
}

// Fig 5
function fig5() {
  const sec = figure(5, 'plain networks', 'Networks without residual connections, under a width slider, beside the residual network of the same depth, width and data. Blocks appear there too, with softer edges.');
  if (!plainWidths.length || !plainModels.length) {
    sec.appendChild(el('p', { cls: 'figure-note', data: { missing: 'plain' }, text: 'This study trained no plain (non-residual) networks (plain_widths is empty), so there is nothing to show here.' }));
    return function () {};
  }
  const df = plainDepthFraction();
  sec.appendChild(el('div', { cls: 'controls' },
    rangeControl('fig5-width', 'Width (plain ResNet-' + df[0] + ', ' + fracLabel(df[1]) + ' data)', plainWidths.map(function (w) { return '\u00d7' + short(w); }),
      function () { return state.fig5Width; }, function (v) { state.fig5Width = v; }, ['narrow', 'wide'])));
  const row = el('div', { cls: 'row two' });
  sec.appendChild(row);
  const plain = heatmapFigure(row, 'fig5');
  const residual = heatmapFigure(row, 'fig5-residual');
  return function () {
    const w = plainWidths[state.fig5Width];
    plain.set(withinSpec(findModel(df[0], w, df[1], true, currentSeed()), 'plain: '));
    residual.set(withinSpec(findModel(df[0], w, df[1], false, currentSeed()), 'residual: '));
  };
}

function deletionChart(panel, m) {
  panel.set(m ? m.model : '', null, function (c) {
    c.appendChild(el('div', { cls: 'panel-title', text: 'Accuracy after deleting blocks' + (currentEpoch() !== null ? ' (final model)' : '') }));
    const del = m && m.deletion;
    if (!m || !del) { c.appendChild(emptyBox(!m ? 'No model.' : m.plain ? 'Plain nets have no blocks to delete.' : m.state === 'done' ? 'No block-deletion result.' : whyMissing(m, 'deletion'), true)); return; }
    const n = Math.max(1, Math.round((m.depth - 2) / 6));
    const total = 3 * n;
    const series = [];
    for (let s = 1; s <= 3; s++) {
      const base = (s - 1) * n;
      const tails = del.stage_tails.filter(function (t) { return t.stage === s; }).sort(function (a, b) { return a.removed - b.removed; });
      const pts = [[base + n - 0.5, del.intact_accuracy]].concat(tails.map(function (t) {
        return [base + n - t.removed, t.accuracy, 'dot-a', 'stage ' + s + ': last ' + t.removed + ' block' + (t.removed > 1 ? 's' : '') + ' removed: ' + pct(t.accuracy)];
      }));
      series.push({ points: pts, cls: 'line-a', dots: 'dot-a', r: 2 });
    }
    const singles = del.blocks.filter(function (b) { return b.removable && b.accuracy !== null && b.accuracy !== undefined; })
      .map(function (b) { return [(b.stage - 1) * n + b.index - 1, b.accuracy, 'dot-open', b.block + ' alone removed: ' + pct(b.accuracy)]; });
    series.push({ points: singles, line: false, dots: 'dot-open', r: 2.4 });
    xyChart(c, {
      xDomain: [-0.5, total - 0.5], yDomain: [0, 1], yTicks: [0, 0.5, 1], yFormat: function (t) { return (t * 100) + '%'; },
      vlines: [n - 0.5, 2 * n - 0.5], hlines: [{ y: del.intact_accuracy, cls: 'ref' }, { y: chance(), cls: 'chance' }],
      series: series, xLabels: [[(n - 1) / 2, 'stage 1'], [n + (n - 1) / 2, 'stage 2'], [2 * n + (n - 1) / 2, 'stage 3']],
      yTitle: 'test acc.', aria: 'accuracy after block deletion',
      hover: function (x) {
        const i = Math.round(x);
        const b = del.blocks.find(function (q) { return (q.stage - 1) * n + q.index - 1 === i; });
        if (!b) return null;
        const s = b.stage, removed = s * n - i;
        const t = del.stage_tails.find(function (q) { return q.stage === s && q.removed === removed; });
        return [ttLine('block', b.block + (b.removable ? '' : ' (projection: cannot be removed)')),
          ttLine('alone', b.accuracy === null || b.accuracy === undefined ? '\u2014' : pct(b.accuracy, 2)),
          ttLine('tail', t ? 'last ' + removed + ' of stage ' + s + ' removed: ' + pct(t.accuracy, 2) : '\u2014'),
          ttLine('intact', pct(del.intact_accuracy, 2), 'tt-value')];
      },
      legend: [['', 'var(--line-a)', 'last j blocks of the stage removed'], ['', '#8b949e', '\u25cb one block removed'], ['dash', '#1f2328', 'intact model'], ['dot', '#b42318', 'chance']]
    });
  });
}

// Fig 6
function fig6() {
  const sec = figure(6, 'block deletion and seeds', 'For a model without and one with block structure (as in Figure 3) and the same recipe trained from another seed: test accuracy after deleting blocks from the end of each stage (no retraining), and the cross-seed CKA heatmap (rows: one seed\u2019s layers, columns: the other\u2019s). Inside blocks, deletion costs little and representations differ across seeds.');
  const rows = [['no-block', 'Without block structure'], ['block', 'With block structure']].map(function (r) {
    const head = el('div', { cls: 'subhead', text: r[1] });
    sec.appendChild(head);
    const row = el('div', { cls: 'row three' });
    sec.appendChild(row);
    const a = heatmapFigure(row, 'fig6-' + r[0] + '-a');
    const aDel = chartPanel('fig6-' + r[0] + '-a-deletion', 'deletion');
    a.extra.appendChild(aDel.root);
    const b = heatmapFigure(row, 'fig6-' + r[0] + '-b');
    const bDel = chartPanel('fig6-' + r[0] + '-b-deletion', 'deletion');
    b.extra.appendChild(bDel.root);
    const cross = heatmapFigure(row, 'fig6-' + r[0] + '-cross');
    return { which: r[0], head: head, a: a, aDel: aDel, b: b, bDel: bDel, cross: cross };
  });
  return function () {
    rows.forEach(function (r) {
      const m = chooseModel(r.which);
      const c = crossSeedFor(m);
      const partner = c ? byName.get(c.model_a === m.model ? c.model_b : c.model_a) || null : null;
      const none = 'No model of seed ' + currentSeed() + ' ' + (r.which === 'block' ? 'has block structure' : 'is without block structure') + ' (models near chance excluded).';
      const sa = withinSpec(m);
      if (!m) sa.missing = none;
      r.a.set(sa);
      deletionChart(r.aDel, m);
      const sb = withinSpec(partner);
      if (!partner) sb.missing = m ? 'No cross-seed result for this model, so no second seed to show.' : none;
      r.b.set(sb);
      deletionChart(r.bDel, partner);
      r.cross.set(crossSpec(c, 'cross-seed', m ? 'No cross-seed heatmap for ' + shortLabel(m) + '.' : none));
    });
  };
}

function decodeAcc(s, n) {
  const b = b64(s);
  const out = new Float32Array(n);
  for (let i = 0; i < n && i < b.length; i++) out[i] = b[i] / 254;
  return out;
}
function scatterPanel(id, sc, title) {
  const wrap = el('figure', { cls: 'panel scatter', data: { panel: id, model: '', kind: 'scatter' } });
  wrap.appendChild(el('figcaption', { cls: 'panel-title', text: title }));
  if (!sc) { wrap.appendChild(emptyBox('No data.', true)); return wrap; }
  wrap.setAttribute('data-model', sc.x.label + '|' + sc.y.label);
  const n = sc.examples;
  const xs = decodeAcc(sc.x_accuracy, n), ys = decodeAcc(sc.y_accuracy, n);
  const canvas = el('canvas', { role: 'img', 'aria-label': 'per-example accuracy scatter' });
  const plot = el('div', { cls: 'plot' }, el('div', { cls: 'yaxis' }, el('span', { cls: 'top', text: '1' }), el('span', { cls: 'mid', text: sc.y.label }), el('span', { cls: 'bottom', text: '0' })), canvas, el('div'));
  wrap.appendChild(plot);
  wrap.appendChild(el('div', { cls: 'plot' }, el('div'), el('div', { cls: 'xaxis' }, el('span', { cls: 'start', text: '0' }), el('span', { text: sc.x.label, style: 'left:50%' }), el('span', { cls: 'end', text: '1' })), el('div')));
  let sq = 0;
  for (let i = 0; i < n; i++) sq += (xs[i] - ys[i]) * (xs[i] - ys[i]);
  const rms = Math.sqrt(sq / Math.max(1, n));
  wrap.appendChild(el('div', { cls: 'caption' },
    el('div', null, el('span', { cls: 'who', text: 'x: ' + sc.x.label }), ' (' + plural(sc.x.models.length, 'model') + ', mean accuracy ' + pct(sc.x.mean_accuracy) + ')'),
    el('div', null, el('span', { cls: 'who', text: 'y: ' + sc.y.label }), ' (' + plural(sc.y.models.length, 'model') + ', mean accuracy ' + pct(sc.y.mean_accuracy) + ')'),
    el('div', null, n + ' test examples \u00b7 RMS difference ' + fix(rms, 3) + ' \u00b7 ' + pct(sc.significant_fraction) + ' differ significantly (BH)')));
  const draw = function () {
    const dpr = window.devicePixelRatio || 1;
    const css = canvas.clientWidth || 260;
    const W = Math.round(css * dpr);
    canvas.width = W; canvas.height = W;
    const ctx = canvas.getContext('2d');
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, W, W);
    ctx.strokeStyle = '#d0d7de'; ctx.lineWidth = dpr;
    ctx.strokeRect(0.5 * dpr, 0.5 * dpr, W - dpr, W - dpr);
    ctx.setLineDash([4 * dpr, 4 * dpr]);
    ctx.beginPath(); ctx.moveTo(0, W); ctx.lineTo(W, 0); ctx.stroke();
    ctx.setLineDash([]);
    let seed = 12345;
    const rnd = function () { seed = (seed * 1103515245 + 12345) & 0x7fffffff; return seed / 0x7fffffff; };
    const jitter = 0.035, pad = 0.05;
    const sz = Math.max(1, Math.round(1.6 * dpr));
    // Fewer dots, more opaque: 200 examples at 0.7, 2000 at 0.27, 10000 at 0.12.
    const alpha = Math.min(0.7, Math.max(0.08, 12 / Math.sqrt(Math.max(1, n))));
    ctx.fillStyle = 'rgba(61, 90, 152, ' + alpha.toFixed(3) + ')';
    for (let i = 0; i < n; i++) {
      const x = (xs[i] + (rnd() - 0.5) * 2 * jitter + pad) / (1 + 2 * pad);
      const y = (ys[i] + (rnd() - 0.5) * 2 * jitter + pad) / (1 + 2 * pad);
      ctx.fillRect(Math.round(x * W) - (sz >> 1), Math.round((1 - y) * W) - (sz >> 1), sz, sz);
    }
  };
  resizeHooks.push(draw);
  requestAnimationFrame(draw);
  return wrap;
}
const CLASS_NAMES = {
  'fashion-mnist': ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'],
  'cifar10': ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
};
function className(i) {
  const names = CLASS_NAMES[String(study.dataset || '').toLowerCase().replace('_', '-')];
  return names && names[i] ? names[i] : 'class ' + i;
}
function classBars(container, pop) {
  const cls = pop.classes.slice().sort(function (a, b) { return a.class_index - b.class_index; });
  const diffs = cls.map(function (c) { return [c.accuracy_b - c.accuracy_a, c.null_accuracy_b - c.null_accuracy_a]; });
  let m = 0.02;
  diffs.forEach(function (d) { m = Math.max(m, Math.abs(d[0]), Math.abs(d[1])); });
  m *= 1.15;
  const W = Math.max(200, Math.round(container.clientWidth || 400)), H = 220, left = 44, right = 8, top = 10, bottom = 52;
  const pw = W - left - right, ph = H - top - bottom;
  const Y = function (v) { return top + (1 - (v + m) / (2 * m)) * ph; };
  const svg = svgEl('svg', { viewBox: '0 0 ' + W + ' ' + H, width: W, height: H, role: 'img', 'aria-label': 'per-class accuracy differences' });
  [-m / 1.15, 0, m / 1.15].forEach(function (t) {
    svg.appendChild(svgEl('line', { 'class': t === 0 ? 'axis' : 'grid', x1: left, x2: left + pw, y1: Y(t), y2: Y(t) }));
    svg.appendChild(svgEl('text', { x: left - 4, y: Y(t) + 3, 'text-anchor': 'end', text: (t > 0 ? '+' : '') + (t * 100).toFixed(1) }));
  });
  svg.appendChild(svgEl('text', { x: 10, y: top + ph / 2, 'text-anchor': 'middle', transform: 'rotate(-90 10 ' + (top + ph / 2) + ')', text: '\u0394 acc. (points)' }));
  const slot = pw / Math.max(1, cls.length), bw = slot * 0.34;
  cls.forEach(function (c, i) {
    const x = left + i * slot + slot / 2;
    [[diffs[i][0], 'bar-a', x - bw - 1], [diffs[i][1], 'bar-null', x + 1]].forEach(function (b) {
      const y0 = Y(0), y1 = Y(b[0]);
      const r = svgEl('rect', { 'class': b[1], x: b[2], y: Math.min(y0, y1), width: bw, height: Math.max(0.5, Math.abs(y1 - y0)) });
      r.appendChild(svgEl('title', { text: className(c.class_index) + ': ' + (b[1] === 'bar-a' ? 'comparison ' : 'null ') + (b[0] * 100).toFixed(2) + ' points' }));
      svg.appendChild(r);
    });
    if (c.significant) svg.appendChild(svgEl('text', { 'class': 'sig', x: x - bw / 2 - 1, y: Y(diffs[i][0]) + (diffs[i][0] >= 0 ? -3 : 11), 'text-anchor': 'middle', text: '*' }));
    svg.appendChild(svgEl('text', { x: x, y: top + ph + 12, 'text-anchor': 'end', transform: 'rotate(-35 ' + x + ' ' + (top + ph + 12) + ')', text: className(c.class_index) }));
  });
  container.appendChild(svg);
  container.appendChild(el('div', { cls: 'chart-legend' },
    el('span', null, el('i', { style: 'border-color: var(--line-a); border-top-width: 8px' }), pop.comparison.y.label + ' \u2212 ' + pop.comparison.x.label),
    el('span', null, el('i', { style: 'border-color: #b8c0c8; border-top-width: 8px' }), 'null: ' + pop.null.y.label + ' \u2212 ' + pop.null.x.label),
    el('span', { text: '* significant' })));
}

// Fig 7
function fig7() {
  const pops = data.populations || [];
  const sec = figure(7, 'outputs of populations', 'Per-example test accuracy averaged over each group\u2019s seeds (one dot per test example, jittered: with few seeds accuracies take few values): two architectures of similar mean accuracy, beside the null of two disjoint seed groups of one architecture. Below: per-class accuracy differences, the comparison beside the null.');
  if (!pops.length) {
    sec.appendChild(el('p', { cls: 'figure-note', data: { missing: 'populations' }, text: 'No population comparison in the results: it needs every seed of two architecture groups of similar accuracy trained (at least 2 seeds each).' }));
    return function () {};
  }
  if (pops.length > 1) {
    sec.appendChild(el('div', { cls: 'controls' }, selectControl('fig7-comparison', 'Comparison', pops.map(function (p) { return p.title; }),
      function () { return state.fig7; }, function (v) { state.fig7 = v; })));
  }
  const holder = el('div');
  sec.appendChild(holder);
  let shown = -1;
  return function () {
    if (shown === state.fig7) return;
    shown = state.fig7;
    clear(holder);
    const p = pops[state.fig7];
    holder.appendChild(el('div', { cls: 'subhead', text: p.title }));
    const row = el('div', { cls: 'row three' });
    holder.appendChild(row);
    row.appendChild(scatterPanel('fig7-comparison', p.comparison, '(a) ' + p.comparison.x.label + ' vs ' + p.comparison.y.label));
    row.appendChild(scatterPanel('fig7-null', p.null, '(b) null: ' + p.null.x.label + ' vs ' + p.null.y.label));
    const bars = el('figure', { cls: 'panel', data: { panel: 'fig7-classes', model: p.title, kind: 'class-differences' } },
      el('figcaption', { cls: 'panel-title', text: '(c) per-class accuracy difference' }));
    row.appendChild(bars);
    const inner = el('div');
    bars.appendChild(inner);
    const drawBars = function () { clear(inner); classBars(inner, p); };
    resizeHooks.push(drawBars);
    requestAnimationFrame(drawBars);
    (p.notes || []).forEach(function (n) { holder.appendChild(el('p', { cls: 'figure-note', text: n })); });
  };
}

// Across architectures (not one of the paper's figures; every cross-architecture heatmap).
function figX() {
  const list = data.cross_architecture || [];
  const sec = figure('x', 'Across architectures', 'CKA between the layers of two grid neighbours that differ along one axis (rows: the first model, columns: the second), fed the same minibatches.');
  sec.id = 'figx';
  if (!list.length) {
    sec.appendChild(el('p', { cls: 'figure-note', data: { missing: 'cross-architecture' }, text: 'No cross-architecture heatmaps in the results.' }));
    return function () {};
  }
  const label = function (c) {
    const a = byName.get(c.model_a), b = byName.get(c.model_b);
    return (a ? shortLabel(a) : c.model_a) + ' vs ' + (b ? shortLabel(b) : c.model_b) + ' (' + c.axis + ')';
  };
  sec.appendChild(el('div', { cls: 'controls' }, selectControl('cross-architecture', 'Pair', list.map(label),
    function () { return state.xarch; }, function (v) { state.xarch = v; })));
  const row = el('div', { cls: 'row one' });
  sec.appendChild(row);
  const panel = heatmapFigure(row, 'xarch');
  return function () { panel.set(crossSpec(list[state.xarch] || null, 'cross-architecture', 'No heatmap.')); };
}

// The table of every model.
function modelTable() {
  const sec = el('section', { cls: 'figure', id: 'models', data: { figure: 'models' } },
    el('h2', { text: 'All models' }),
    el('p', { cls: 'lead', text: 'Every model of the grid in grid order (click a column to sort). Links: the full-precision heatmaps beside this page.' }));
  root.appendChild(sec);
  const cols = [
    ['model', 'model', function (m) { return shortLabel(m); }],
    ['depth', 'depth', function (m) { return m.depth; }],
    ['width', 'width', function (m) { return m.width; }],
    ['fraction', 'data', function (m) { return m.fraction; }],
    ['seed', 'seed', function (m) { return m.seed; }],
    ['plain', 'plain', function (m) { return m.plain ? 1 : 0; }],
    ['state', 'state', function (m) { return m.state; }],
    ['accuracy', 'test acc.', function (m) { return m.test_accuracy; }],
    ['blocks', 'block ranges', function (m) { return (m.block_ranges || []).length; }],
    ['score', 'block score', function (m) { return m.block_score; }],
    ['pc1in', 'PC1 inside', function (m) { return m.pc1_inside; }],
    ['pc1out', 'PC1 outside', function (m) { return m.pc1_outside; }],
    ['files', 'data', null]
  ];
  const table = el('table', { cls: 'models', data: { table: 'models' } });
  const thead = el('thead');
  const tr = el('tr');
  const ths = cols.map(function (c) {
    const th = el('th', { scope: 'col', 'data-col': c[0] });
    if (c[2]) {
      const b = el('button', { type: 'button', text: c[1], data: { control: 'table-sort', value: c[0] } });
      b.addEventListener('click', function () {
        if (state.sortKey === c[0]) state.sortDir = -state.sortDir; else { state.sortKey = c[0]; state.sortDir = 1; }
        renderBody();
      });
      th.appendChild(b);
    } else th.textContent = c[1];
    tr.appendChild(th);
    return th;
  });
  thead.appendChild(tr);
  table.appendChild(thead);
  const tbody = el('tbody');
  table.appendChild(tbody);
  sec.appendChild(el('div', { cls: 'table-wrap' }, table));
  const link = function (h, what) {
    if (!h) return [];
    const out = [];
    if (h.npy) out.push(el('a', { href: h.npy, text: what + '.npy' }));
    if (h.csv) out.push(el('a', { href: h.csv, text: what + '.csv' }));
    return out;
  };
  function renderBody() {
    const col = cols.find(function (c) { return c[0] === state.sortKey; });
    const rows = models.map(function (m, i) { return [m, i]; });
    if (col) {
      rows.sort(function (a, b) {
        const x = col[2](a[0]), y = col[2](b[0]);
        const xn = x === null || x === undefined, yn = y === null || y === undefined;
        if (xn || yn) return xn && yn ? a[1] - b[1] : xn ? 1 : -1;
        const c = typeof x === 'string' ? x.localeCompare(y) : x - y;
        return c !== 0 ? c * state.sortDir : a[1] - b[1];
      });
    }
    ths.forEach(function (th, i) {
      if (cols[i][0] === state.sortKey) th.setAttribute('aria-sort', state.sortDir > 0 ? 'ascending' : 'descending'); else th.removeAttribute('aria-sort');
    });
    clear(tbody);
    rows.forEach(function (r) {
      const m = r[0];
      const files = [].concat(link(m.heatmap, 'cka'), link(m.heatmap_no_pc1, 'no-pc1'), link(m.pc1_cosine, 'pc1-cos'));
      const filesCell = el('td');
      files.forEach(function (a, i) { if (i) filesCell.appendChild(document.createTextNode(' ')); filesCell.appendChild(a); });
      if (!files.length) filesCell.textContent = '\u2014';
      const ranges = (m.block_ranges || []).map(function (b) { return b.first_name + '\u2026' + b.last_name; }).join('; ');
      tbody.appendChild(el('tr', { cls: m.near_chance ? 'warn' : null, data: { model: m.model } },
        el('td', null, el('div', { text: shortLabel(m) }), el('div', { cls: 'mono', text: m.model })),
        el('td', { cls: 'num', text: String(m.depth) }), el('td', { cls: 'num', text: short(m.width) }),
        el('td', { cls: 'num', text: fracLabel(m.fraction) }), el('td', { cls: 'num', text: String(m.seed) }),
        el('td', { text: m.plain ? 'yes' : '' }),
        el('td', { text: m.state + (m.state === 'training' ? ' (' + m.epochs_trained + '/' + study.epochs + ')' : '') }),
        el('td', { cls: 'num', text: pct(m.test_accuracy) + (m.near_chance ? ' \u26a0 near chance' : '') }),
        el('td', { text: m.has_block_structure === true ? (ranges || 'yes') : m.has_block_structure === false ? 'none' : '\u2014' }),
        el('td', { cls: 'num', text: fix(m.block_score, 3) }), el('td', { cls: 'num', text: fix(m.pc1_inside, 2) }),
        el('td', { cls: 'num', text: fix(m.pc1_outside, 2) }), filesCell));
    });
  }
  renderBody();
  return function () {};
}

// ---------------------------------------------------------------- wiring
const resizeHooks = [];
const renders = [];
function safe(name, f) {
  try { return f(); } catch (e) {
    api.errors.push(name + ': ' + (e && e.message));
    console.error('blockscope report: ' + name + ': ' + (e && e.stack || e));
    return function () {};
  }
}
// Re-renders every figure from the state; panels whose content did not change keep their
// drawing. api.lastUpdateMs: the whole update (every figure, captions and charts included).
function update() {
  const t0 = performance.now();
  for (const c of controls) c.sync();
  for (const r of renders) {
    try { r[1](); } catch (e) {
      api.errors.push(r[0] + ': ' + (e && e.message));
      console.error('blockscope report: ' + r[0] + ': ' + (e && e.stack || e));
    }
  }
  api.lastUpdateMs = performance.now() - t0;
}
header();
[['fig1', fig1], ['fig2', fig2], ['fig3', fig3], ['fig4', fig4], ['fig5', fig5], ['fig6', fig6], ['fig7', fig7], ['figx', figX], ['table', modelTable]]
  .forEach(function (f) { renders.push([f[0], safe(f[0], f[1])]); });
update();
let pending = false;
window.addEventListener('resize', function () {
  if (pending) return;
  pending = true;
  requestAnimationFrame(function () {
    pending = false;
    heatmapPanels.forEach(function (p) { p.draw(false); });
    chartPanels.forEach(function (p) { p.draw(); });
    resizeHooks.forEach(function (f) { f(); });
  });
});
api.update = update;
api.ready = true;
})();
"""#
}
