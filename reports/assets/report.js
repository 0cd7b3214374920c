/* tiva-bench static report: draws the tables and the paginated clip pages from data/report.js
   and data/clips-NNNN.js (plain script files, so the report opens from disk without a server).
   Every text goes through textContent: names from results files are never parsed as HTML. */
(function () {
  "use strict";
  var R = window.TIVA_REPORT;
  window.TIVA_PAGES = window.TIVA_PAGES || {};
  var state = { clipMetric: null, clipPage: 0, clipSort: null, detailPage: 0 };
  var CLIP_ROWS = 50;
  var CHECK = /[?&]check\b/.test(location.search);  // index.html?check: load every player's metadata (tests)

  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    if (attrs) for (var k in attrs) if (attrs[k] !== null && attrs[k] !== undefined) e.setAttribute(k, attrs[k]);
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }
  function fmt(v, d) { return (v === null || v === undefined || !isFinite(v)) ? "--" : Number(v).toFixed(d === undefined ? 3 : d); }
  function arrow(m) { return m.higher_is_better ? " \u2191" : " \u2193"; }
  function metricByName(name) { for (var i = 0; i < R.metrics.length; i++) if (R.metrics[i].name === name) return R.metrics[i]; return null; }

  /* ---------- sortable tables: click a header; numbers sort numerically, "--" last ---------- */
  function makeSortable(table, onSort) {
    var ths = table.querySelectorAll("th");
    ths.forEach(function (th, col) {
      th.addEventListener("click", function () {
        var dir = th.getAttribute("data-dir") === "asc" ? "desc" : "asc";
        ths.forEach(function (h) { h.removeAttribute("data-dir"); });
        th.setAttribute("data-dir", dir);
        if (onSort) { onSort(col, dir); return; }
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) { return compare(a.cells[col].getAttribute("data-sort"), b.cells[col].getAttribute("data-sort"), dir); });
        rows.forEach(function (r) { body.appendChild(r); });
      });
    });
  }
  function compare(a, b, dir) {
    var na = parseFloat(a), nb = parseFloat(b);
    var fa = isFinite(na), fb = isFinite(nb);
    if (fa && fb) return dir === "asc" ? na - nb : nb - na;
    if (fa !== fb) return fa ? -1 : 1;
    a = a || ""; b = b || "";
    return dir === "asc" ? a.localeCompare(b) : b.localeCompare(a);
  }

  /* ---------- summary table ---------- */
  function drawSummary() {
    var t = document.getElementById("summary-table");
    var head = el("thead"), tr = el("tr");
    tr.appendChild(el("th", null, "System"));
    R.metrics.forEach(function (m) { tr.appendChild(el("th", { title: m.description || "" }, m.display + arrow(m) + (m.scale !== 1 ? " (\u00d7" + m.scale + ")" : ""))); });
    tr.appendChild(el("th", null, "clips"));
    head.appendChild(tr); t.appendChild(head);
    var body = el("tbody");
    R.systems.forEach(function (s) {
      var row = el("tr", { "class": s.ranked ? null : "unranked" });
      row.appendChild(el("td", { "data-sort": s.label }, s.label + (s.ranked ? "" : " (not ranked)")));
      R.metrics.forEach(function (m) {
        var c = (R.summary[m.name] || {})[s.label];
        var td = el("td");
        if (!c || c.value === null || c.value === undefined) { td.textContent = "--"; td.setAttribute("data-sort", ""); row.appendChild(td); return; }
        td.setAttribute("data-sort", c.value);
        td.appendChild(document.createTextNode(fmt(c.value, R.decimals)));
        if (c.ci_low !== null && c.ci_low !== undefined && c.ci_high !== null && c.ci_high !== undefined)
          td.appendChild(el("span", { "class": "ci" }, " [" + fmt(c.ci_low, R.decimals) + ", " + fmt(c.ci_high, R.decimals) + "]"));
        if (c.best) { td.className = "best"; td.title = "best ranked system"; }
        else if (c.same_as_best) {
          td.className = "tied";
          td.appendChild(el("span", { "class": "mark" }, " \u2248"));
          td.title = "not significantly different from the best (Holm-adjusted p = " + fmt(c.p_holm, 3) + ")";
        } else if (c.p_holm !== null && c.p_holm !== undefined) { td.title = "worse than the best (Holm-adjusted p = " + fmt(c.p_holm, 4) + ")"; }
        row.appendChild(td);
      });
      row.appendChild(el("td", { "data-sort": s.n_scored }, s.n_scored + (s.n_skipped ? " (+" + s.n_skipped + " skipped)" : "")));
      body.appendChild(row);
    });
    t.appendChild(body);
    makeSortable(t);
    document.getElementById("summary-note").textContent = R.summary_note;
    var w = document.getElementById("warnings");
    R.systems.forEach(function (s) {
      if (!s.warnings || !s.warnings.length) return;
      var d = el("details"); d.appendChild(el("summary", { "class": "warn" }, s.label + ": " + s.warnings.length + " warning(s)"));
      var ul = el("ul"); s.warnings.forEach(function (x) { ul.appendChild(el("li", null, x)); }); d.appendChild(ul); w.appendChild(d);
    });
  }

  /* ---------- per-clip table: one metric (clips x systems) or every metric (clip, system rows);
     sorted over all clips, then paginated ---------- */
  var ALL = "__all__";
  function perClipMetrics() { return R.metrics.filter(function (m) { return m.per_clip; }); }
  function clipRows() {
    /* rows of the current view: {clip index, cells: [{v, why}], first: [texts]} */
    var rows = [];
    R.clips.forEach(function (c, i) {
      if (state.clipMetric === ALL) {
        R.systems.forEach(function (s) {
          if (!c.values[s.label]) return;
          rows.push({ i: i, keys: [c.key, s.label], cells: perClipMetrics().map(function (m) {
            return { v: c.values[s.label][m.name], why: (c.undefined[s.label] || {})[m.name] }; }) });
        });
      } else {
        rows.push({ i: i, keys: [c.key], cells: R.systems.map(function (s) {
          var v = c.values[s.label] ? c.values[s.label][state.clipMetric] : undefined;
          return { v: v, why: c.values[s.label] ? (c.undefined[s.label] || {})[state.clipMetric] : "skipped for this system", skipped: !c.values[s.label] }; }) });
      }
    });
    if (state.clipSort) {
      var col = state.clipSort.col, dir = state.clipSort.dir;
      rows.sort(function (a, b) {
        if (col < a.keys.length) return compare(a.keys[col], b.keys[col], dir);
        var va = a.cells[col - a.keys.length].v, vb = b.cells[col - b.keys.length].v;
        return compare(va === null || va === undefined ? "" : String(va), vb === null || vb === undefined ? "" : String(vb), dir);
      });
    }
    return rows;
  }
  function drawClipTable() {
    var t = document.getElementById("clip-table");
    t.textContent = "";
    var all = state.clipMetric === ALL;
    var head = el("thead"), tr = el("tr");
    tr.appendChild(el("th", null, "Clip"));
    if (all) {
      tr.appendChild(el("th", null, "System"));
      perClipMetrics().forEach(function (m) { tr.appendChild(el("th", null, m.display + arrow(m))); });
    } else {
      R.systems.forEach(function (s) { tr.appendChild(el("th", null, s.label)); });
    }
    head.appendChild(tr); t.appendChild(head);
    if (state.clipSort && tr.cells[state.clipSort.col]) tr.cells[state.clipSort.col].setAttribute("data-dir", state.clipSort.dir);
    var body = el("tbody"), rows = clipRows();
    var start = state.clipPage * CLIP_ROWS;
    rows.slice(start, start + CLIP_ROWS).forEach(function (r) {
      var c = R.clips[r.i], row = el("tr");
      var first = el("td", { "data-sort": c.key });
      var a = el("a", { href: "#clip-" + c.slug }, c.key);
      a.addEventListener("click", function (ev) { ev.preventDefault(); showClip(r.i); });
      first.appendChild(a); row.appendChild(first);
      if (all) row.appendChild(el("td", { "data-sort": r.keys[1], style: "text-align:left" }, r.keys[1]));
      r.cells.forEach(function (cell) {
        var v = cell.v;
        row.appendChild(el("td", { "data-sort": v === null || v === undefined ? "" : v, title: cell.why || null }, cell.skipped ? "skipped" : fmt(v, R.decimals)));
      });
      body.appendChild(row);
    });
    t.appendChild(body);
    makeSortable(t, function (col, dir) { state.clipSort = { col: col, dir: dir }; state.clipPage = 0; drawClipTable(); });
    pager(document.getElementById("clip-pager"), Math.ceil(rows.length / CLIP_ROWS), state.clipPage, function (p) { state.clipPage = p; drawClipTable(); });
  }
  function setupClipTable() {
    var sel = document.getElementById("clip-metric");
    perClipMetrics().forEach(function (m) { sel.appendChild(el("option", { value: m.name }, m.display + arrow(m))); });
    if (!sel.options.length) { document.getElementById("clips").appendChild(el("p", { "class": "note" }, "No per-clip metric in these results.")); return; }
    sel.appendChild(el("option", { value: ALL }, "every metric (one row per clip and system)"));
    var wanted = /[?&]metric=([^&#]+)/.exec(location.search);  // index.html?metric=dtw_dis (or __all__) opens that view
    if (wanted) for (var k = 0; k < sel.options.length; k++) if (sel.options[k].value === decodeURIComponent(wanted[1])) sel.selectedIndex = k;
    state.clipMetric = sel.value;
    sel.addEventListener("change", function () { state.clipMetric = sel.value; state.clipSort = null; state.clipPage = 0; drawClipTable(); });
    drawClipTable();
  }

  function pager(box, n, current, go) {
    box.textContent = "";
    if (n <= 1) return;
    function button(label, page, disabled, cls) {
      var b = el("button", { type: "button", "class": cls || null }, label);
      if (disabled) b.setAttribute("disabled", "disabled");
      b.addEventListener("click", function () { go(page); });
      box.appendChild(b);
    }
    button("\u2039", current - 1, current === 0);
    var pages = {};
    [0, 1, current - 2, current - 1, current, current + 1, current + 2, n - 2, n - 1].forEach(function (p) { if (p >= 0 && p < n) pages[p] = 1; });
    var last = -1;
    Object.keys(pages).map(Number).sort(function (a, b) { return a - b; }).forEach(function (p) {
      if (p > last + 1) box.appendChild(el("span", null, " \u2026 "));
      button(String(p + 1), p, false, p === current ? "current" : null);
      last = p;
    });
    button("\u203a", current + 1, current === n - 1);
    box.appendChild(el("span", { "class": "note" }, " page " + (current + 1) + " of " + n));
  }

  /* ---------- clip pages: loaded lazily from data/clips-NNNN.js ---------- */
  function loadPage(p, done) {
    if (window.TIVA_PAGES[p]) { done(window.TIVA_PAGES[p]); return; }
    var s = el("script", { src: "data/clips-" + ("000" + p).slice(-4) + ".js" });
    s.onload = function () { done(window.TIVA_PAGES[p] || []); };
    s.onerror = function () { console.error("missing clip page " + p); };
    document.head.appendChild(s);
  }
  function showClip(i) {
    var p = Math.floor(i / R.page_size);
    drawDetails(p, function () { var t = document.getElementById("clip-" + R.clips[i].slug); if (t) t.scrollIntoView(); });
  }
  function odfSvg(ref, gen) {
    var n = Math.max(ref.length, gen.length, 2), peak = 1e-9;
    ref.concat(gen).forEach(function (v) { if (v > peak) peak = v; });
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", "0 0 " + (n - 1) + " 100");
    svg.setAttribute("preserveAspectRatio", "none");
    function line(values, cls) {
      var pts = values.map(function (v, k) { return k + "," + (100 - 96 * v / peak).toFixed(2); }).join(" ");
      var pl = document.createElementNS(NS, "polyline");
      pl.setAttribute("points", pts); pl.setAttribute("class", cls); pl.setAttribute("vector-effect", "non-scaling-stroke");
      svg.appendChild(pl);
    }
    line(ref, "refline"); line(gen, "genline");
    return svg;
  }
  function mediaRow(label, audio, mel, extra) {
    var row = el("div", { "class": "row" });
    row.appendChild(el("div", { "class": "label", title: label }, label));
    var mid = el("div");
    if (mel) mid.appendChild(el("img", { "class": "mel", src: mel, alt: "mel spectrogram: " + label, loading: "lazy" }));
    else mid.appendChild(el("span", { "class": "missing" }, extra || "not scored"));
    row.appendChild(mid);
    var right = el("div");
    if (audio) right.appendChild(el("audio", { controls: "controls", preload: CHECK ? "metadata" : "none", src: audio }));
    row.appendChild(right);
    return row;
  }
  function drawClip(c) {
    var box = el("article", { "class": "clip", id: "clip-" + c.slug });
    box.appendChild(el("h3", null, c.key));
    if (c.frames) {
      var vrow = el("div", { "class": "row" });
      vrow.appendChild(el("div", { "class": "label" }, "video"));
      var vmid = el("div"); vmid.appendChild(el("img", { "class": "frames", src: c.frames, alt: "video frames: " + c.key, loading: "lazy" }));
      vrow.appendChild(vmid); vrow.appendChild(el("div")); box.appendChild(vrow);
    }
    box.appendChild(mediaRow("reference", c.ref.audio, c.ref.mel));
    c.rows.forEach(function (r) { box.appendChild(mediaRow(r.label, r.audio, r.mel, r.reason)); });
    if (c.layout) {
      var row = el("div", { "class": "row" });
      row.appendChild(el("div", { "class": "label" }, "predicted layout" + (c.layout_system ? " (" + c.layout_system + ")" : "")));
      var mid = el("div"); mid.appendChild(el("img", { "class": "layout", src: c.layout, alt: "predicted audio layout", loading: "lazy" }));
      row.appendChild(mid); row.appendChild(el("div")); box.appendChild(row);
    }
    if (c.ref_odf) {
      var grid = el("div", { "class": "odf" });
      c.rows.forEach(function (r) {
        if (!r.odf) return;
        var fig = el("figure");
        fig.appendChild(odfSvg(c.ref_odf, r.odf));
        fig.appendChild(el("figcaption", null, r.label + " \u2014 W-dis " + fmt(r.w_dis, 2) + ", DTW-dis " + fmt(r.dtw_dis, 2) + " (frames of " + (c.hop_s * 1000).toFixed(0) + " ms)"));
        grid.appendChild(fig);
      });
      box.appendChild(grid);
    }
    return box;
  }
  function drawDetails(p, after) {
    state.detailPage = p;
    var n = Math.ceil(R.clips.length / R.page_size);
    pager(document.getElementById("detail-pager"), n, p, function (q) { drawDetails(q); });
    loadPage(p, function (clips) {
      var list = document.getElementById("detail-list");
      list.textContent = "";
      clips.forEach(function (c) { list.appendChild(drawClip(c)); });
      watchMedia(list);
      if (after) after();
    });
  }

  /* ---------- skipped, provenance ---------- */
  function drawSkipped() {
    var box = document.getElementById("skipped-body");
    if (!R.skipped.length) { box.appendChild(el("p", { "class": "note" }, "No clip was skipped.")); return; }
    var t = el("table", { "class": "sortable", id: "skipped-table" }), head = el("thead"), tr = el("tr");
    ["System", "Clip", "Reason"].forEach(function (h) { tr.appendChild(el("th", null, h)); });
    head.appendChild(tr); t.appendChild(head);
    var body = el("tbody");
    R.skipped.forEach(function (s) {
      var row = el("tr");
      [s.system, s.clip, s.reason].forEach(function (v) { row.appendChild(el("td", { "data-sort": v, style: "text-align:left" }, v)); });
      body.appendChild(row);
    });
    t.appendChild(body); box.appendChild(t); makeSortable(t);
  }
  function drawProvenance() {
    var box = document.getElementById("provenance-body");
    box.appendChild(el("p", { "class": "note" }, R.stats_note));
    R.systems.forEach(function (s) {
      var d = el("details");
      var p = s.provenance || {};
      d.appendChild(el("summary", null, s.label + " \u2014 tiva-bench git " + (p.git || "unknown") + ", " + (p.started_at || "") + ", " + s.gen_dir));
      d.appendChild(el("pre", null, JSON.stringify({ command: p.command, versions: p.versions, python: p.python, platform: p.platform, extractors: p.extractors, generation: p.generation, gen_dir: s.gen_dir, ref_dir: s.ref_dir }, null, 1)));
      d.appendChild(el("pre", null, "config: " + JSON.stringify(s.config, null, 1)));
      box.appendChild(d);
    });
  }

  /* ---------- self-check for tests and users: broken media are counted on <body> ---------- */
  var broken = { images: 0, audio: 0, errors: 0 };
  function mark() {
    document.body.setAttribute("data-broken-images", broken.images);
    document.body.setAttribute("data-broken-audio", broken.audio);
    document.body.setAttribute("data-errors", broken.errors);
  }
  function watchMedia(root) {
    root.querySelectorAll("img").forEach(function (img) {
      function check() { if (!(img.naturalWidth > 0)) { broken.images++; console.error("image failed to load: " + img.getAttribute("src")); } img.setAttribute("data-loaded", img.naturalWidth > 0 ? "1" : "0"); mark(); }
      if (img.complete) check(); else { img.addEventListener("load", check); img.addEventListener("error", check); }
    });
    root.querySelectorAll("audio").forEach(function (a) {
      a.addEventListener("error", function () { broken.audio++; console.error("audio failed to load: " + a.getAttribute("src")); mark(); });
    });
  }
  window.addEventListener("error", function () { broken.errors++; mark(); });

  function main() {
    document.title = R.title;
    drawSummary();
    setupClipTable();
    drawSkipped();
    drawProvenance();
    watchMedia(document.querySelector("header"));
    mark();
    var m = /^#clip-(.+)$/.exec(location.hash || "");
    var target = -1;
    if (m) R.clips.forEach(function (c, i) { if (c.slug === m[1]) target = i; });
    function ready() { document.body.setAttribute("data-ready", "1"); document.body.setAttribute("data-ready-ms", Math.round(performance.now())); }
    if (target >= 0) { showClip(target); ready(); }
    else drawDetails(0, ready);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", main); else main();
})();
