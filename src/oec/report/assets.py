"""The report's inline stylesheet and script.

Inline, because the report must open anywhere with no network: one file that
can be mailed, attached to an issue or opened from a cluster's scratch disk.
The script only filters and folds what the server-side HTML already holds,
so the page reads fine with scripts off. It ends by setting
`data-ready` on <html>, which tells a headless browser it ran to the end.
"""

from __future__ import annotations

# Scripts and styles only from this file, images only as data: URIs, nothing fetched.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"

CSS = """
:root { --student: #2563eb; --student-bg: #eff6ff; --expert: #ea580c; --expert-bg: #fff7ed;
        --ok: #15803d; --bad: #b91c1c; --muted: #6b7280; --line: #e5e7eb; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #111827; background: #f9fafb; }
main { max-width: 1200px; margin: 0 auto; padding: 16px 24px 48px; }
h1 { font-size: 22px; margin: 8px 0 4px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 16px 0 6px; }
.muted { color: var(--muted); }
table { border-collapse: collapse; margin: 6px 0 12px; background: #fff; }
th, td { border: 1px solid var(--line); padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f3f4f6; font-weight: 600; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
pre { margin: 4px 0; padding: 6px 8px; background: #fff; border: 1px solid var(--line); border-radius: 4px;
      white-space: pre-wrap; word-break: break-word; font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; } .plots figure { margin: 0; background: #fff; border: 1px solid var(--line); padding: 6px; }
.plots img { max-width: 100%; display: block; } figcaption { color: var(--muted); font-size: 12px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 9px; font-size: 12px; font-weight: 600; margin-right: 4px;
         border: 1px solid transparent; }
.badge.student { background: var(--student); color: #fff; } .badge.expert { background: var(--expert); color: #fff; }
.badge.resolved { background: #dcfce7; color: var(--ok); border-color: #86efac; }
.badge.unresolved { background: #fee2e2; color: var(--bad); border-color: #fca5a5; }
.badge.dropped { background: #f3f4f6; color: #374151; border-color: #d1d5db; } .badge.strategy { background: #e0e7ff; color: #3730a3; }
.controls { position: sticky; top: 0; z-index: 2; background: #f9fafb; padding: 8px 0; border-bottom: 1px solid var(--line);
            display: flex; gap: 12px; align-items: center; flex-wrap: wrap; }
.controls select, .controls input, .controls button { font: inherit; padding: 2px 6px; }
details.traj { scroll-margin-top: 56px; background: #fff; border: 1px solid var(--line); border-radius: 6px; margin: 8px 0; }
details.traj > summary { padding: 6px 10px; cursor: pointer; }
details.traj[open] > summary { border-bottom: 1px solid var(--line); }
.traj-body { padding: 8px 12px; }
.turn { border-left: 6px solid; border-radius: 4px; padding: 6px 10px; margin: 6px 0; }
.turn.student { border-color: var(--student); background: var(--student-bg); }
.turn.expert { border-color: var(--expert); background: var(--expert-bg); }
.turn-head { font-size: 12px; color: #374151; margin-bottom: 2px; }
.thought { white-space: pre-wrap; margin: 2px 0 4px; }
.action-label { font-size: 12px; font-weight: 600; color: #374151; }
.format-error { white-space: pre-wrap; border: 1px solid #fca5a5; background: #fef2f2; color: var(--bad); padding: 4px 8px; border-radius: 4px; }
.switch-marker { margin: 10px 0; padding: 4px 10px; border-top: 3px dashed var(--expert); border-bottom: 3px dashed var(--expert);
                 color: var(--expert); font-weight: 700; text-align: center; background: repeating-linear-gradient(
                 45deg, #fff, #fff 8px, #ffedd5 8px, #ffedd5 16px); }
.diff .add { color: #166534; background: #dcfce7; display: block; } .diff .del { color: #991b1b; background: #fee2e2; display: block; }
.diff .hunk { color: #6d28d9; display: block; } .diff .meta { color: var(--muted); font-weight: 600; display: block; }
.diff span { display: block; white-space: pre-wrap; }
td.PASSED, td.XFAIL { color: var(--ok); font-weight: 600; } td.FAILED, td.ERROR, td.MISSING { color: var(--bad); font-weight: 600; }
.legend span { margin-right: 12px; } .c-student { color: var(--student); font-weight: 600; } .c-expert { color: var(--expert); font-weight: 600; }
.hidden { display: none !important; }
"""

JS = """
(function () {
  "use strict";
  var list = document.getElementById("trajectories");
  var items = list ? Array.prototype.slice.call(list.querySelectorAll("details.traj")) : [];
  var controls = {
    strategy: document.getElementById("f-strategy"),
    resolved: document.getElementById("f-resolved"),
    kept: document.getElementById("f-kept"),
    text: document.getElementById("f-text")
  };
  var shown = document.getElementById("shown-count");
  function matches(item) {
    var d = item.dataset;
    if (controls.strategy && controls.strategy.value && d.strategy !== controls.strategy.value) return false;
    if (controls.resolved && controls.resolved.value && d.resolved !== controls.resolved.value) return false;
    if (controls.kept && controls.kept.value && d.kept !== controls.kept.value) return false;
    var q = controls.text && controls.text.value.trim().toLowerCase();
    if (q && d.id.toLowerCase().indexOf(q) < 0) return false;
    return true;
  }
  function apply() {
    var n = 0;
    items.forEach(function (item) {
      var ok = matches(item);
      item.classList.toggle("hidden", !ok);
      if (ok) n += 1;
    });
    if (shown) shown.textContent = n + " of " + items.length + " shown";
  }
  Object.keys(controls).forEach(function (key) {
    var el = controls[key];
    if (el) el.addEventListener(key === "text" ? "input" : "change", apply);
  });
  function setAll(open) {
    items.forEach(function (item) { if (!item.classList.contains("hidden")) item.open = open; });
  }
  var expand = document.getElementById("expand-all");
  var collapse = document.getElementById("collapse-all");
  if (expand) expand.addEventListener("click", function () { setAll(true); });
  if (collapse) collapse.addEventListener("click", function () { setAll(false); });
  function openFromHash() {
    // report.html#traj-3 opens that rollout and scrolls to it, so links into a report stay useful;
    // report.html#open=traj-3,traj-5 only opens them, in place (for screenshots and printing)
    var hash = decodeURIComponent(location.hash.slice(1));
    var opening = hash.indexOf("open=") === 0;
    var ids = opening ? hash.slice(5).split(",") : [hash];
    ids.forEach(function (id) {
      var target = id && document.getElementById(id);
      if (target && target.matches("details.traj")) {
        target.open = true;
        if (!opening) target.scrollIntoView();
      }
    });
  }
  window.addEventListener("hashchange", openFromHash);
  apply();
  openFromHash();
  document.documentElement.dataset.ready = "1";
})();
"""
