#!/usr/bin/env python3
"""Real-browser test of a Blockscope report page (headless Debian chromium + selenium).

Usage: tools/report_browser_test.py REPORT_DIR [--screenshots OUT_DIR]

Opens file://REPORT_DIR/index.html, reads the embedded data, and checks the page against
expectations computed here, from the data alone (not from the page's script):
- every control (data-control) is moved through every stop; after each move every panel
  (data-panel) must show the model, kind and epoch the data says it should (data-model,
  data-kind, data-epoch), a canvas when that heatmap exists, a labelled empty panel when not,
  and the near-chance warning when its model is near chance;
- hovering heatmap cells (the pointer moved to viewport coordinates inside the canvas) shows a
  tooltip naming the row and column representations and the dequantised value (and 'undefined'
  for an undefined cell);
- the largest within-model heatmap redraws in under 16 ms after a slider move (median of
  several moves, measured by the page: window.blockscopeReport.lastDraw), and the page's whole
  update on that move (every figure) stays under 16 ms too (lastUpdateMs); both drawing modes
  of the page give the same pixels;
- the model table sorts;
- no console error or warning;
- one PNG screenshot per figure into OUT_DIR.
Needs tools/setup-browser (chromium, chromium-driver, selenium). Exits non-zero on failure.
"""
import argparse
import base64
import json
import math
import os
import re
import statistics
import sys
import time

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.action_builder import ActionBuilder
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
except ImportError:  # pragma: no cover
    sys.exit("report_browser_test: selenium is missing; run tools/setup-browser")

FRAME_MS = 16.0


class Failure(Exception):
    pass


# ----------------------------------------------------------------------------- expectations

def decode_heatmap(h):
    raw = base64.b64decode(h["values"])
    n = h["rows"] * h["columns"]
    bits = h["bits"]
    if bits == 8:
        codes = list(raw)
    elif bits == 16:
        codes = [raw[2 * i] | (raw[2 * i + 1] << 8) for i in range(n)]
    else:
        raise Failure("heatmap with %d bits" % bits)
    if len(codes) != n:
        raise Failure("heatmap has %d codes for %dx%d" % (len(codes), h["rows"], h["columns"]))
    undef = (1 << bits) - 1
    step = (h["hi"] - h["lo"]) / (undef - 1)
    values = [None if c == undef else h["lo"] + c * step for c in codes]
    ses = None
    if h.get("standard_errors"):
        se_codes = base64.b64decode(h["standard_errors"])
        se_max = h.get("se_max") or 0.0
        ses = [None if c == 255 else c * se_max / 254 for c in se_codes]
    return values, ses


class Expect:
    """What the page must show, from the data alone."""

    def __init__(self, data):
        self.data = data
        study = data["study"]
        self.study = study
        self.models = data["models"]
        self.by_name = {m["model"]: m for m in self.models}
        self.depths = sorted(set(study.get("depths", [])))
        self.widths = sorted(set(study.get("widths", [])))
        self.fractions = sorted(set(study.get("fractions", [])))
        self.fractions_desc = list(reversed(self.fractions))
        self.seeds = sorted(set(study.get("seeds") or [m["seed"] for m in self.models]))
        self.plain_widths = sorted(set(study.get("plain_widths", [])))
        self.plain_models = [m for m in self.models if m["plain"]]
        self.has_plain = bool(self.plain_widths) and bool(self.plain_models)
        self.epoch_stops = sorted(set(e for e in study.get("snapshot_epochs", []) if e < study["epochs"]))
        self.pops = data.get("populations", [])
        self.cross_seed = data.get("cross_seed", [])
        self.cross_arch = data.get("cross_architecture", [])
        if self.has_plain:
            d = max(m["depth"] for m in self.plain_models)
            f = max(m["fraction"] for m in self.plain_models if m["depth"] == d)
            self.plain_df = (d, f)

    # The controls: name -> (type, number of stops, value of stop i)
    def controls(self):
        c = {"seed": ("select", len(self.seeds)),
             "fig1-depth": ("range", len(self.depths)),
             "fig1-width": ("range", len(self.widths)),
             "fig2-fraction": ("range", len(self.fractions)),
             "fig2-family": ("toggle", ["wide", "deep"]),
             "fig3-choice": ("toggle", ["block", "no-block"]),
             "fig3-pc1": ("toggle", ["with", "without"]),
             "fig4-fraction": ("range", len(self.fractions))}
        if self.epoch_stops:
            c["epoch"] = ("range", len(self.epoch_stops) + 1)
        if self.has_plain:
            c["fig5-width"] = ("range", len(self.plain_widths))
        if len(self.pops) > 1:
            c["fig7-comparison"] = ("select", len(self.pops))
        if self.cross_arch:
            c["cross-architecture"] = ("select", len(self.cross_arch))
        return c

    def find(self, depth, width, fraction, plain, seed):
        for m in self.models:
            if (m["depth"], m["width"], m["fraction"], m["plain"], m["seed"]) == (depth, width, fraction, plain, seed):
                return m
        return None

    def epoch(self, st):
        i = st.get("epoch", len(self.epoch_stops))
        return self.epoch_stops[i] if i < len(self.epoch_stops) else None

    def within(self, m, st):
        ep = self.epoch(st)
        name = m["model"] if m else ""
        if ep is None:
            return {"model": name, "kind": "within", "epoch": None, "heatmap": m.get("heatmap") if m else None, "m": m}
        snap = next((s for s in (m or {}).get("snapshots", []) if s["epoch"] == ep), None) if m else None
        return {"model": name, "kind": "snapshot", "epoch": str(ep), "heatmap": snap.get("heatmap") if snap else None, "m": m}

    def kind(self, m, kind, field):
        return {"model": m["model"] if m else "", "kind": kind, "epoch": None, "heatmap": m.get(field) if m else None, "m": m}

    def choose(self, which, seed):
        best, best_key = None, -math.inf
        for m in self.models:
            if m["seed"] != seed or m["plain"] or not m.get("heatmap") or m.get("near_chance"):
                continue
            if which == "block" and m.get("has_block_structure") is not True:
                continue
            if which == "no-block" and m.get("has_block_structure") is not False:
                continue
            raw = m.get("block_score") if which == "block" else m.get("test_accuracy")
            key = -math.inf if raw is None else raw
            if best is None or key > best_key:
                best, best_key = m, key
        return best

    def cross_seed_for(self, m):
        if not m:
            return None
        for c in self.cross_seed:
            if c["model_a"] == m["model"]:
                return c
        for c in self.cross_seed:
            if c["model_b"] == m["model"]:
                return c
        return None

    def cross(self, c, kind):
        if not c:
            return {"model": "", "kind": kind, "epoch": None, "heatmap": None, "m": None}
        return {"model": c["model_a"] + "|" + c["model_b"], "kind": kind, "epoch": None, "heatmap": c["heatmap"],
                "m": None, "cross": c}

    def chart(self, m, kind, epoch=None):
        return {"model": m["model"] if m else "", "kind": kind, "epoch": epoch, "chart": True, "m": m}

    def panels(self, st):
        seed = self.seeds[st["seed"]]
        ep = self.epoch(st)
        out = {}
        min_w, max_w = self.widths[0], self.widths[-1]
        min_d, max_d = self.depths[0], self.depths[-1]
        max_f = self.fractions[-1]
        out["fig1-depth"] = self.within(self.find(self.depths[st["fig1-depth"]], min_w, max_f, False, seed), st)
        out["fig1-width"] = self.within(self.find(max_d, self.widths[st["fig1-width"]], max_f, False, seed), st)
        wide = st["fig2-family"] == "wide"
        out["fig2"] = self.within(self.find(min_d if wide else max_d, max_w if wide else min_w,
                                            self.fractions_desc[st["fig2-fraction"]], False, seed), st)
        m3 = self.choose(st["fig3-choice"], seed)
        out["fig3-cosine"] = self.kind(m3, "pc1-cosine", "pc1_cosine")
        out["fig3-cka"] = self.within(m3, st) if st["fig3-pc1"] == "with" else self.kind(m3, "no-pc1", "heatmap_no_pc1")
        out["fig3-pc1"] = self.chart(m3, "pc1-fraction", str(ep) if (m3 and ep is not None) else None)
        out["fig3-nopc1"] = self.kind(m3, "no-pc1", "heatmap_no_pc1")
        f4 = self.fractions_desc[st["fig4-fraction"]]
        for j, w in enumerate(self.widths):
            m = self.find(max_d, w, f4, False, seed)
            out["fig4-%d" % j] = self.within(m, st)
            out["fig4-probes-%d" % j] = self.chart(m, "probes")
        if self.has_plain:
            d, f = self.plain_df
            w = self.plain_widths[st["fig5-width"]]
            out["fig5"] = self.within(self.find(d, w, f, True, seed), st)
            out["fig5-residual"] = self.within(self.find(d, w, f, False, seed), st)
        for which in ("no-block", "block"):
            m = self.choose(which, seed)
            c = self.cross_seed_for(m)
            partner = None
            if c:
                partner = self.by_name.get(c["model_b"] if c["model_a"] == m["model"] else c["model_a"])
            out["fig6-%s-a" % which] = self.within(m, st)
            out["fig6-%s-a-deletion" % which] = self.chart(m, "deletion")
            out["fig6-%s-b" % which] = self.within(partner, st)
            out["fig6-%s-b-deletion" % which] = self.chart(partner, "deletion")
            out["fig6-%s-cross" % which] = self.cross(c, "cross-seed")
        if self.pops:
            p = self.pops[st.get("fig7-comparison", 0)]
            for key, sc in (("fig7-comparison", p["comparison"]), ("fig7-null", p["null"])):
                out[key] = {"model": sc["x"]["label"] + "|" + sc["y"]["label"], "kind": "scatter", "epoch": None, "chart": True, "m": None}
            out["fig7-classes"] = {"model": p["title"], "kind": "class-differences", "epoch": None, "chart": True, "m": None}
        if self.cross_arch:
            out["xarch"] = self.cross(self.cross_arch[st.get("cross-architecture", 0)], "cross-architecture")
        return out


# ----------------------------------------------------------------------------- the browser

READ_PANELS = """
return Array.from(document.querySelectorAll('[data-panel]')).map(function (e) {
  return {panel: e.getAttribute('data-panel'), model: e.getAttribute('data-model'), kind: e.getAttribute('data-kind'),
          epoch: e.getAttribute('data-epoch'),
          canvas: (function () { var c = e.querySelector(':scope > div > .plot > canvas.hm'); return !!c && c.offsetParent !== null && c.width > 0; })(),
          empty: (function () { var x = e.querySelector(':scope > div > .empty'); return x && x.offsetParent !== null ? x.textContent : null; })(),
          warning: !!e.querySelector('[data-warning=near-chance]')};
});
"""


PIXEL_SUM = """
var c = document.querySelector('[data-panel="' + arguments[0] + '"] canvas.hm');
var copy = document.createElement('canvas');
copy.width = c.width; copy.height = c.height;
var x = copy.getContext('2d', {willReadFrequently: true});
x.drawImage(c, 0, 0);
var d = x.getImageData(0, 0, c.width, c.height).data;
var a = 0, b = 0;
for (var i = 0; i < d.length; i++) { a = (a + d[i]) % 65521; b = (b + a) % 65521; }
return c.width + 'x' + c.height + ':' + a + ':' + b;
"""


class Browser:
    def __init__(self, args):
        opts = webdriver.ChromeOptions()
        opts.binary_location = args.chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000",
                  "--force-device-scale-factor=1", "--hide-scrollbars", "--no-first-run", "--disable-extensions",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--mute-audio", "--disable-features=Translate,OptimizationHints"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # The driver is given explicitly: Selenium Manager is not asked (and would need a network).
        self.driver = webdriver.Chrome(service=Service(executable_path=args.chromedriver), options=opts)
        self.driver.set_script_timeout(30)
        self.console = []

    def logs(self):
        entries = self.driver.get_log("browser")
        self.console.extend(entries)
        return entries

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def control(self, name):
        els = self.driver.find_elements(By.CSS_SELECTOR, '[data-control="%s"]' % name)
        if len(els) != 1:
            raise Failure("control %s: %d elements with data-control=%s" % (name, len(els), name))
        return els[0]

    def center(self, el):
        self.js("arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});", el)

    def set_control(self, name, kind, i):
        el = self.control(name)
        self.center(el)
        if kind[0] == "range":
            el.send_keys(Keys.HOME)
            for _ in range(i):
                el.send_keys(Keys.ARROW_RIGHT)
            got = int(el.get_attribute("value"))
            if got != i:
                raise Failure("control %s: at %d after the keys, wanted %d" % (name, got, i))
        elif kind[0] == "toggle":
            value = kind[1][i]
            buttons = el.find_elements(By.CSS_SELECTOR, 'button[data-value="%s"]' % value)
            if len(buttons) != 1:
                raise Failure("control %s: no button data-value=%s" % (name, value))
            buttons[0].click()
            if buttons[0].get_attribute("aria-pressed") != "true":
                raise Failure("control %s: button %s not pressed after the click" % (name, value))
        else:
            Select(el).select_by_index(i)

    def read_control(self, name, kind):
        el = self.control(name)
        if kind[0] == "range":
            return int(el.get_attribute("value"))
        if kind[0] == "toggle":
            for b in el.find_elements(By.CSS_SELECTOR, "button[data-value]"):
                if b.get_attribute("aria-pressed") == "true":
                    return kind[1].index(b.get_attribute("data-value"))
            raise Failure("control %s: no button pressed" % name)
        return int(Select(el).first_selected_option.get_attribute("value"))


def stops_of(kind):
    return kind[1] if isinstance(kind[1], int) else len(kind[1])


def state_value(kind, i):
    return kind[1][i] if kind[0] == "toggle" else i


# ----------------------------------------------------------------------------- checks

class Run:
    def __init__(self, args):
        self.args = args
        self.checks = 0
        self.failures = []
        self.notes = []

    def fail(self, msg):
        self.failures.append(msg)
        if len(self.failures) == 40:
            raise Failure("stopping after 40 problems")

    def check_panels(self, b, ex, st, where):
        got = {p["panel"]: p for p in b.js(READ_PANELS)}
        want = ex.panels(st)
        for pid in sorted(set(want) - set(got)):
            self.fail("%s: panel %s missing" % (where, pid))
        for pid in sorted(set(got) - set(want)):
            self.fail("%s: unexpected panel %s" % (where, pid))
        for pid, w in want.items():
            g = got.get(pid)
            if not g:
                continue
            self.checks += 1
            if g["model"] != w["model"] or g["kind"] != w["kind"] or g["epoch"] != w["epoch"]:
                self.fail("%s: panel %s shows model=%r kind=%r epoch=%r, the data says model=%r kind=%r epoch=%r"
                          % (where, pid, g["model"], g["kind"], g["epoch"], w["model"], w["kind"], w["epoch"]))
                continue
            if w.get("chart"):
                continue
            if w["heatmap"] is not None and not g["canvas"]:
                self.fail("%s: panel %s has no canvas, though %s has that heatmap" % (where, pid, w["model"]))
            if w["heatmap"] is None and (g["canvas"] or not (g["empty"] or "").strip()):
                self.fail("%s: panel %s should be a labelled empty panel (no heatmap for %r)" % (where, pid, w["model"]))
            m = w.get("m")
            if m is not None and bool(m.get("near_chance")) != g["warning"]:
                self.fail("%s: panel %s near-chance warning %s, near_chance=%s" % (where, pid, g["warning"], m.get("near_chance")))


def hover_cell(b, ex, run, pid, want, r, c, label):
    """Moves the pointer over cell (r, c) of panel pid's canvas and checks the tooltip."""
    h = want["heatmap"]
    values, ses = decode_heatmap(h)
    canvas = b.driver.find_element(By.CSS_SELECTOR, '[data-panel="%s"] canvas.hm' % pid)
    b.center(canvas)
    rect = b.js("var r = arguments[0].getBoundingClientRect(); return [r.left, r.top, r.width, r.height];", canvas)
    left, top, width, height = rect
    x = int(round(left + (c + 0.5) * width / h["columns"]))
    y = int(round(top + (r + 0.5) * height / h["rows"]))
    # The cell under the pointer, from the geometry alone.
    col = int(math.floor((x - left) / width * h["columns"]))
    row = int(math.floor((y - top) / height * h["rows"]))
    viewport = b.js("return [window.innerWidth, window.innerHeight];")
    if not (0 <= x < viewport[0] and 0 <= y < viewport[1]):
        run.fail("hover %s: cell %d,%d at %d,%d is outside the viewport %s (canvas %s)" % (pid, r, c, x, y, viewport, rect))
        return None
    action = ActionBuilder(b.driver)
    action.pointer_action.move_to_location(x, y)
    action.perform()
    tip = b.driver.find_element(By.ID, "tooltip")
    text = tip.text if tip.is_displayed() else ""
    run.checks += 1
    rows = ex.data["name_lists"][h["row_names"]]["names"]
    cols = ex.data["name_lists"][h["column_names"]]["names"]
    where = "hover %s (%s) cell %d,%d" % (pid, label, row, col)
    if not text:
        run.fail(where + ": no tooltip")
        return None
    if (rows[row] + "  (#%d)" % row) not in text.replace("\n", " ") and not re.search(r"\b%s\s+\(#%d\)" % (re.escape(rows[row]), row), text):
        run.fail(where + ": tooltip %r does not name row %s" % (text, rows[row]))
    if not re.search(r"\b%s\s+\(#%d\)" % (re.escape(cols[col]), col), text):
        run.fail(where + ": tooltip %r does not name column %s" % (text, cols[col]))
    v = values[row * h["columns"] + col]
    if v is None:
        if "undefined" not in text:
            run.fail(where + ": undefined cell, tooltip %r" % text)
    else:
        mm = re.search(r"(-?\d+\.\d{3,4})", text.split("\n")[-1])
        if not mm or abs(float(mm.group(1)) - v) > 5.1e-5:
            run.fail(where + ": tooltip %r, the data says %.5f" % (text, v))
        se = ses[row * h["columns"] + col] if ses else None
        if se is not None:
            ms = re.search(r"\u00b1\s*(\d+\.\d+)", text)
            if not ms or abs(float(ms.group(1)) - se) > 5.1e-5:
                run.fail(where + ": tooltip %r lacks the standard error %.5f" % (text, se))
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("report_dir")
    ap.add_argument("--screenshots", metavar="OUT_DIR")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    ap.add_argument("--moves", type=int, default=9, help="slider moves for the redraw timing")
    args = ap.parse_args()

    start = time.time()
    index = os.path.abspath(os.path.join(args.report_dir, "index.html"))
    if not os.path.isfile(index):
        sys.exit("report_browser_test: %s does not exist" % index)
    for exe in (args.chromium, args.chromedriver):
        if not os.access(exe, os.X_OK):
            sys.exit("report_browser_test: %s missing; run tools/setup-browser" % exe)

    run = Run(args)
    b = None
    timing = None
    shots = []
    try:
        b = Browser(args)
        b.driver.get("file://" + index)
        deadline = time.time() + 30
        while not b.js("return !!(window.blockscopeReport && window.blockscopeReport.ready);"):
            if time.time() > deadline:
                raise Failure("window.blockscopeReport.ready never became true")
            time.sleep(0.1)
        b.logs()

        # The data: the embedded JSON, parsed here, is what the page exposes.
        embedded = json.loads(b.js("return document.getElementById('report-data').textContent;"))
        exposed = json.loads(b.js("return JSON.stringify(window.blockscopeReport.data);"))
        if embedded != exposed:
            raise Failure("window.blockscopeReport.data differs from the embedded JSON")
        errors = b.js("return window.blockscopeReport.errors;")
        if errors:
            run.fail("the page reported errors: %s" % errors)
        ex = Expect(embedded)

        # No external URL in the page.
        html = b.js("return document.documentElement.outerHTML;")
        for bad in ("http://", "https://"):
            if bad in html:
                run.fail("the page contains %s" % bad)
        for n in ["1", "2", "3", "4", "5", "6", "7"]:
            if len(b.driver.find_elements(By.CSS_SELECTOR, '[data-figure="%s"]' % n)) != 1:
                run.fail("figure %s: no single data-figure=%s container" % (n, n))

        controls = ex.controls()
        present = set(b.js("return Array.from(document.querySelectorAll('[data-control]')).map(function (e) { return e.getAttribute('data-control'); });"))
        present.discard("table-sort")
        if present != set(controls):
            run.fail("controls on the page %s, the data calls for %s" % (sorted(present), sorted(controls)))

        # The page's initial state, read from its controls.
        st = {}
        for name, kind in controls.items():
            st[name] = state_value(kind, b.read_control(name, kind))
        initial = dict(st)
        st.setdefault("epoch", 0)
        run.check_panels(b, ex, st, "initial")

        # Every control through every stop.
        stops_total = 0
        order = ["seed", "epoch"] + [n for n in controls if n not in ("seed", "epoch")]
        for name in order:
            if name not in controls:
                continue
            kind = controls[name]
            for i in range(stops_of(kind)):
                b.set_control(name, kind, i)
                st[name] = state_value(kind, i)
                run.check_panels(b, ex, st, "%s=%s" % (name, st[name]))
                stops_total += 1
        # Seeds x epochs.
        if "epoch" in controls:
            for s in range(len(ex.seeds)):
                b.set_control("seed", controls["seed"], s)
                st["seed"] = s
                for e in range(stops_of(controls["epoch"])):
                    b.set_control("epoch", controls["epoch"], e)
                    st["epoch"] = e
                    run.check_panels(b, ex, st, "seed=%d epoch=%d" % (s, e))
                    stops_total += 1
        final_epoch = len(ex.epoch_stops)
        if "epoch" in controls:
            b.set_control("epoch", controls["epoch"], final_epoch)
        st["epoch"] = final_epoch

        # The largest within-model heatmap reachable by one range control (from the current
        # state at each seed): time its redraw after slider moves.
        best = None
        for s in range(len(ex.seeds)):
            for name, kind in controls.items():
                if kind[0] != "range" or name == "epoch" or stops_of(kind) < 2:
                    continue
                for i in range(stops_of(kind)):
                    trial = dict(st, seed=s)
                    trial[name] = i
                    # A neighbouring stop that shows something else in the panel: moving
                    # between the two redraws it.
                    neighbour = dict(trial)
                    neighbour[name] = i - 1 if i > 0 else i + 1
                    before = ex.panels(neighbour)
                    for pid, w in ex.panels(trial).items():
                        h = w.get("heatmap")
                        if w.get("chart") or h is None or w["kind"] != "within":
                            continue
                        if before[pid].get("heatmap") is h:
                            continue
                        size = h["rows"] * h["columns"]
                        if best is None or size > best[0]:
                            best = (size, s, name, i, pid, h["rows"], h["columns"])
        if best is None:
            run.fail("no heatmap reachable by a slider: cannot time a redraw")
        else:
            size, s, name, i, pid, R, C = best
            b.set_control("seed", controls["seed"], s)
            st["seed"] = s
            other = i - 1 if i > 0 else i + 1
            times, updates = [], []
            for _ in range(args.moves):
                b.set_control(name, controls[name], other)
                b.set_control(name, controls[name], i)
                last = b.js("return window.blockscopeReport.lastDraw;")
                if not last or last["panel"] != pid or last["rows"] * last["columns"] != size:
                    run.fail("redraw timing: the last draw was %r, expected panel %s (%dx%d)" % (last, pid, R, C))
                    break
                times.append(last["ms"])
                updates.append(b.js("return window.blockscopeReport.lastUpdateMs;"))
            st[name] = i
            if times:
                med = statistics.median(times)
                timing = (R, C, pid, name, med, max(times), len(times))
                upd = statistics.median(updates)
                run.notes.append("the whole page update around those redraws (every figure): median %.2f ms" % upd)
                run.checks += 1
                if upd >= FRAME_MS:
                    run.fail("the page update on a slider move (every figure) took a median %.2f ms >= %.0f ms" % (upd, FRAME_MS))
                run.checks += 1
                if med >= FRAME_MS:
                    run.fail("redraw of the %dx%d heatmap (%s via %s): median %.2f ms >= %.0f ms" % (R, C, pid, name, med, FRAME_MS))
            run.check_panels(b, ex, st, "after the timing")

            # Hover cells of that heatmap, including an undefined one if it has any.
            want = ex.panels(st)[pid]
            values, _ = decode_heatmap(want["heatmap"])
            targets = [(R // 3, (2 * C) // 3, "upper right"), (R - 1, 0, "bottom left"), (R // 2, R // 2 if R == C else C // 2, "diagonal")]
            undefined = [k for k, v in enumerate(values) if v is None]
            if undefined:
                k = undefined[len(undefined) // 2]
                targets.append((k // C, k % C, "undefined"))
            for r, c, label in targets:
                hover_cell(b, ex, run, pid, want, r, c, label)

        # An undefined cell somewhere (a constant representation), if the data has one on a
        # within-model heatmap reachable by one control.
        found = None
        for s in range(len(ex.seeds)):
            for name, kind in controls.items():
                if name in ("epoch", "seed"):
                    continue
                for i in range(stops_of(kind)):
                    trial = dict(st, seed=s)
                    trial[name] = state_value(kind, i)
                    for pid, w in ex.panels(trial).items():
                        if w.get("chart") or w.get("heatmap") is None:
                            continue
                        vals, _ = decode_heatmap(w["heatmap"])
                        if any(v is None for v in vals):
                            found = (s, name, i, pid, w, vals)
                            break
                    if found:
                        break
                if found:
                    break
            if found:
                break
        if found:
            s, name, i, pid, w, vals = found
            b.set_control("seed", controls["seed"], s)
            st["seed"] = s
            b.set_control(name, controls[name], i)
            st[name] = state_value(controls[name], i)
            run.check_panels(b, ex, st, "undefined-cell search")
            k = [j for j, v in enumerate(vals) if v is None]
            k = k[len(k) // 3]
            C = w["heatmap"]["columns"]
            hover_cell(b, ex, run, pid, w, k // C, k % C, "undefined cell")
        else:
            run.notes.append("no undefined cell reachable: the 'undefined' tooltip was not checked")

        # The model table sorts.
        for key, col in (("depth", 1), ("accuracy", 7)):
            for direction in (1, -1):
                btn = b.driver.find_element(By.CSS_SELECTOR, '[data-control="table-sort"][data-value="%s"]' % key)
                b.center(btn)
                btn.click()
                cells = b.js("return Array.from(document.querySelectorAll('table.models tbody tr')).map(function (r) { return r.children[%d].textContent; });" % col)
                nums = []
                for t in cells:
                    mm = re.match(r"\s*(-?\d+(?:\.\d+)?)", t)
                    if mm:
                        nums.append(float(mm.group(1)))
                run.checks += 1
                if len(cells) != len(ex.models):
                    run.fail("table: %d rows for %d models" % (len(cells), len(ex.models)))
                if nums != sorted(nums, reverse=(direction < 0)):
                    run.fail("table: sorting by %s (%s) gave %s" % (key, "ascending" if direction > 0 else "descending", nums[:10]))

        # The same heatmap drawn the page's other way (api.drawMode: 'rects' is fillRect per
        # run of equal cells, 'pixels' a device-resolution buffer), for comparison only; the
        # two must give the same pixels.
        if timing:
            R, C, pid, name, med, mx, k = timing
            other = st[name] - 1 if st[name] > 0 else st[name] + 1
            here = st[name]
            mode = b.js("return window.blockscopeReport.drawMode;")
            alt = "pixels" if mode == "rects" else "rects"
            sums, alt_times = {}, []
            for m in (mode, alt):
                b.js("window.blockscopeReport.drawMode = arguments[0];", m)
                for _ in range(3 if m == alt else 1):
                    b.set_control(name, controls[name], other)
                    b.set_control(name, controls[name], here)
                    if m == alt:
                        alt_times.append(b.js("return window.blockscopeReport.lastDraw.ms;"))
                sums[m] = b.js(PIXEL_SUM, pid)
            b.js("window.blockscopeReport.drawMode = arguments[0];", mode)
            b.set_control(name, controls[name], other)
            b.set_control(name, controls[name], here)
            run.checks += 1
            if sums[mode] != sums[alt]:
                run.fail("the '%s' and '%s' drawings of %s differ: %s vs %s" % (mode, alt, pid, sums[mode], sums[alt]))
            run.notes.append("draw mode '%s' (timed above); for comparison '%s': median %.2f ms for the same %dx%d heatmap, same pixels"
                             % (mode, alt, statistics.median(alt_times), R, C))

        # Back to the page's initial state for the screenshots.
        for name, value in initial.items():
            kind = controls[name]
            b.set_control(name, kind, kind[1].index(value) if kind[0] == "toggle" else value)
            st[name] = value

        # Screenshots, one per figure, in a window tall enough for the tallest.
        if args.screenshots:
            os.makedirs(args.screenshots, exist_ok=True)
            hideTip = "document.getElementById('tooltip').hidden = true;"
            b.js(hideTip)
            ActionChains(b.driver).move_by_offset(0, 0).perform()
            tallest = b.js("return Math.max.apply(null, Array.from(document.querySelectorAll('[data-figure]')).map(function (e) { return e.getBoundingClientRect().height; }));")
            b.driver.set_window_size(1400, int(min(8000, tallest + 200)))
            time.sleep(0.3)
            b.js(hideTip)
            for fig in b.driver.find_elements(By.CSS_SELECTOR, "[data-figure]"):
                n = fig.get_attribute("data-figure")
                b.js("arguments[0].scrollIntoView({block: 'start'}); window.scrollBy(0, -60);", fig)
                time.sleep(0.15)
                path = os.path.join(args.screenshots, "figure-%s.png" % n)
                if not fig.screenshot(path):
                    run.fail("screenshot of figure %s failed" % n)
                shots.append(path)
            b.driver.set_window_size(1400, 1000)
            b.driver.execute_script("window.scrollTo(0, 0);")
            time.sleep(0.2)
            b.driver.save_screenshot(os.path.join(args.screenshots, "page-top.png"))
            shots.append(os.path.join(args.screenshots, "page-top.png"))

        errors = b.js("return window.blockscopeReport.errors;")
        if errors:
            run.fail("the page reported errors: %s" % errors)
        b.logs()
        for e in b.console:
            if e.get("level") in ("SEVERE", "WARNING"):
                run.fail("console %s: %s" % (e.get("level"), e.get("message")))
    except Failure as e:
        run.failures.append(str(e))
    except WebDriverException as e:
        run.failures.append("webdriver: %s" % (e.msg or e))
    finally:
        if b is not None:
            try:
                b.driver.quit()
            except Exception:
                pass

    elapsed = time.time() - start
    for n in run.notes:
        print("note: " + n)
    timing_text = "no redraw timing"
    if timing:
        R, C, pid, name, med, mx, k = timing
        timing_text = "redraw of the %dx%d heatmap (%s, via %s): median %.2f ms, max %.2f ms over %d moves" % (R, C, pid, name, med, mx, k)
    if run.failures:
        for f in run.failures:
            print("FAIL: " + f, file=sys.stderr)
        print("report browser test: FAILED (%d problems) after %d checks; %s; %.1f s" % (len(run.failures), run.checks, timing_text, elapsed))
        return 1
    print("report browser test: OK: %d checks, %d control stops, %s, 0 console errors, %d screenshots%s; %.1f s"
          % (run.checks, stops_total, timing_text, len(shots), (" in " + args.screenshots) if shots else "", elapsed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
