// atlas: the layer page's unit grid. Windowed: only the rows on screen (plus a margin)
// exist in the DOM, and a cell's thumbnail is fetched only when the cell exists, so a
// 4096-unit layer costs a few hundred nodes. Sorting and filtering run on the data file
// (window.ATLAS_LAYER); the state lives in the URL hash so links and Back restore it.
(function () {
  "use strict";
  var D = window.ATLAS_LAYER;
  var grid = document.getElementById("grid");
  if (!D || !grid) return;
  var root = document.body.getAttribute("data-root") || "";
  var $ = function (id) { return document.getElementById(id); };
  var sortSel = $("sort"), dirBtn = $("dir"), modeSel = $("mode"), filterIn = $("filter");
  var deadBox = $("hidedead"), sizeIn = $("size"), countEl = $("count");
  $("controls").hidden = false;

  var GAP = 8, CAP = 36, MARGIN_ROWS = 3;
  var DEFAULT_DESC = {unit: false, max: true, sel: true, label: false, score: true};
  var modes = {};
  D.modes.forEach(function (m) { modes[m.id] = m; });
  var st = {sort: "unit", desc: false, mode: D.modes[0].id, q: "", dead: false, size: 112};
  var order = [], cols = 1, rowH = 1, cellW = 112, pool = {}, focusPos = -1, scheduled = false;

  // Heatmap mode: the unit's heat grid (window.ATLAS_HEAT, loaded with a script tag the
  // first time the mode is chosen: file:// allows no fetch) drawn by heat.js over the tile.
  var heat = null, heatLoading = false;
  function heatGrids(m) {
    if (heat || !m.heat || !window.atlasHeat) return heat;
    if (window.ATLAS_HEAT) {
      heat = {raw: atob(window.ATLAS_HEAT.b64), h: window.ATLAS_HEAT.h, w: window.ATLAS_HEAT.w};
      return heat;
    }
    if (!heatLoading) {
      heatLoading = true;
      var s = document.createElement("script");
      s.src = root + m.heat;
      s.onload = function () { layout(true); };
      document.body.appendChild(s);
    }
    return null;
  }

  function readHash() {
    var h = window.location.hash.replace(/^#/, "");
    h.split("&").forEach(function (kv) {
      var i = kv.indexOf("=");
      if (i < 0) return;
      var k = decodeURIComponent(kv.slice(0, i)), v = decodeURIComponent(kv.slice(i + 1));
      if (k === "sort" && DEFAULT_DESC.hasOwnProperty(v) && hasOption(sortSel, v)) st.sort = v;
      else if (k === "dir") st.desc = v === "desc";
      else if (k === "mode" && modes[v]) st.mode = v;
      else if (k === "q") st.q = v;
      else if (k === "dead") st.dead = v === "1";
      else if (k === "size" && +v >= 64 && +v <= 192) st.size = +v;
    });
    if (h.indexOf("dir=") < 0) st.desc = DEFAULT_DESC[st.sort];
  }
  function hasOption(sel, v) {
    for (var i = 0; i < sel.options.length; i++) if (sel.options[i].value === v) return true;
    return false;
  }
  function writeHash() {
    var parts = ["sort=" + st.sort, "dir=" + (st.desc ? "desc" : "asc"), "mode=" + encodeURIComponent(st.mode)];
    if (st.q) parts.push("q=" + encodeURIComponent(st.q));
    if (st.dead) parts.push("dead=1");
    if (st.size !== 112) parts.push("size=" + st.size);
    history.replaceState(null, "", "#" + parts.join("&"));
  }

  function key(u) {
    switch (st.sort) {
      case "max": return D.max[u];
      case "sel": return D.sel ? D.sel[u] : null;
      case "score": return D.score ? D.score[u] : null;
      case "label": return D.label && D.label[u] ? D.label[u].toLowerCase() : null;
      default: return u;
    }
  }
  function className(u) { var c = D.cls[u]; return c >= 0 && c < D.classNames.length ? D.classNames[c] : ""; }

  function compute() {
    var q = st.q.trim().toLowerCase(), units = [], u;
    for (u = 0; u < D.units; u++) {
      if (st.dead && D.dead && D.dead[u]) continue;
      if (q) {
        var lab = D.label ? D.label[u].toLowerCase() : "";
        if (lab.indexOf(q) < 0 && className(u).toLowerCase().indexOf(q) < 0 && String(u) !== q) continue;
      }
      units.push(u);
    }
    var keys = {};
    units.forEach(function (v) { keys[v] = key(v); });
    var sign = st.desc ? -1 : 1;
    units.sort(function (a, b) {
      var ka = keys[a], kb = keys[b];
      if (ka === kb) return a - b;
      if (ka === null) return 1;       // missing values last, whatever the direction
      if (kb === null) return -1;
      return (ka < kb ? -1 : 1) * sign;
    });
    order = units;
    var m = modes[st.mode], covered = m.byImage ? D.units : m.units ? m.units.length : Math.min(m.slots, D.units);
    countEl.textContent = (order.length === D.units ? D.units + " units" : order.length + " of " + D.units + " units") +
      (covered < D.units ? " · " + m.name + " for " + (m.units ? covered + " units" : "units 0–" + (covered - 1)) +
       ", faded: stand-ins" : "");
    layout(true);
  }

  function layout(clear) {
    cellW = st.size;
    var w = grid.clientWidth || 800;
    cols = Math.max(1, Math.floor((w + GAP) / (cellW + GAP)));
    rowH = cellW + CAP + GAP;
    grid.style.height = Math.max(0, Math.ceil(order.length / cols) * rowH - GAP) + "px";
    if (clear) { for (var p in pool) grid.removeChild(pool[p]); pool = {}; }
    draw();
  }

  // The chosen picture of unit u, or, when the run has none for it (feature visualizations
  // cover only the chosen units of a layer), the best one it has, marked as a stand-in.
  // Sheet modes: unit u's tile of a sprite sheet (atlasSprite, site/atlas.js).
  function thumbOf(u) {
    var chosen = modes[st.mode], list = [chosen].concat(D.modes);
    for (var i = 0; i < list.length; i++) {
      var m = list[i];
      var standIn = m !== chosen ? m.name : null;
      if (m.byImage) {
        if (D.top[u] < 0) continue;
        return {url: root + m.base + D.top[u] + m.ext, x: 0, y: 0, tx: 1, ty: 1, standIn: standIn};
      }
      var p = window.atlasSprite(m, u, 0);
      if (!p) continue;
      p.url = root + p.url;
      p.standIn = standIn;
      return p;
    }
    return null;
  }

  function label(u) { return D.label && D.label[u] ? D.label[u] : ""; }

  function valueText(u) {
    if (st.sort === "sel" && D.sel) return D.sel[u] === null ? "" : "sel " + D.sel[u].toFixed(2);
    if (st.sort === "score" && D.score) return D.score[u] === null ? "" : "score " + D.score[u].toFixed(2);
    return D.max[u] === null ? "" : "max " + (+D.max[u].toPrecision(3));
  }

  function makeCell(pos) {
    var u = order[pos];
    var a = document.createElement("a");
    var dead = D.dead && D.dead[u];
    a.className = dead ? "cell dead" : "cell";
    a.setAttribute("role", "listitem");
    a.setAttribute("href", D.unitUrl.replace("{unit}", String(u)));
    a.setAttribute("data-pos", String(pos));
    a.setAttribute("data-unit", String(u));
    var th = document.createElement("span");
    th.className = "thumb";
    var t = thumbOf(u);
    if (t) {
      th.style.backgroundImage = 'url("' + t.url + '")';
      th.style.backgroundSize = (t.tx * 100) + "% " + (t.ty * 100) + "%";   // tile (x, y) of a tx x ty sheet
      th.style.backgroundPosition = (t.tx > 1 ? 100 * t.x / (t.tx - 1) : 0) + "% " + (t.ty > 1 ? 100 * t.y / (t.ty - 1) : 0) + "%";
      if (t.standIn) {
        th.className = "thumb standin";
        th.setAttribute("title", "no " + modes[st.mode].name + " for this unit; showing its " + t.standIn);
      } else if (modes[st.mode].heat) {
        var g = heatGrids(modes[st.mode]);
        if (g) {
          var cv = document.createElement("canvas");
          cv.className = "heat";
          cv.setAttribute("aria-hidden", "true");
          th.appendChild(cv);
          window.atlasHeat.paint(cv, g.raw, g.h, g.w, u * g.h * g.w, cellW);
        }
      }
    } else {
      th.className = "thumb none";
      th.textContent = "–";
    }
    a.appendChild(th);
    var cap = document.createElement("span");
    cap.className = "cap";
    var line = document.createElement("span");
    line.className = "l1";
    var b = document.createElement("b");
    b.textContent = String(u);
    line.appendChild(b);
    var v = document.createElement("span");
    v.className = "val";
    v.textContent = dead ? "dead" : valueText(u);
    line.appendChild(v);
    cap.appendChild(line);
    var lab = label(u) || (className(u) ? "top: " + className(u) : "");
    var l = document.createElement("span");
    l.className = label(u) ? "lab" : "lab cls";
    l.textContent = lab || "\u00a0";
    cap.appendChild(l);
    a.appendChild(cap);
    a.setAttribute("title", D.short + " unit " + u + (lab ? " · " + lab : ""));
    var row = Math.floor(pos / cols), col = pos % cols;
    a.style.transform = "translate(" + col * (cellW + GAP) + "px," + row * rowH + "px)";
    a.style.width = cellW + "px";
    a.style.height = (cellW + CAP) + "px";
    a.addEventListener("focus", function () { focusPos = pos; });
    return a;
  }

  function draw() {
    scheduled = false;
    var top = grid.getBoundingClientRect().top + window.pageYOffset;
    var y0 = window.pageYOffset - top, y1 = y0 + window.innerHeight;
    var r0 = Math.max(0, Math.floor(y0 / rowH) - MARGIN_ROWS);
    var r1 = Math.min(Math.ceil(order.length / cols), Math.ceil(y1 / rowH) + MARGIN_ROWS);
    var p0 = r0 * cols, p1 = Math.min(order.length, r1 * cols);
    var keep = {}, p;
    for (p in pool) {
      var n = +p;
      if (n < p0 || n >= p1) { if (n !== focusPos || document.activeElement !== pool[p]) grid.removeChild(pool[p]); else keep[p] = pool[p]; }
      else keep[p] = pool[p];
    }
    pool = keep;
    var frag = document.createDocumentFragment();
    for (p = p0; p < p1; p++) if (!pool[p]) { pool[p] = makeCell(p); frag.appendChild(pool[p]); }
    grid.appendChild(frag);
  }
  function schedule() { if (!scheduled) { scheduled = true; window.requestAnimationFrame(draw); } }

  function focusAt(pos) {
    pos = Math.max(0, Math.min(order.length - 1, pos));
    if (pos < 0) return;
    var top = grid.getBoundingClientRect().top + window.pageYOffset;
    var rowTop = top + Math.floor(pos / cols) * rowH;
    var header = 64;
    if (rowTop < window.pageYOffset + header) window.scrollTo(0, rowTop - header);
    else if (rowTop + rowH > window.pageYOffset + window.innerHeight) window.scrollTo(0, rowTop + rowH - window.innerHeight);
    draw();
    focusPos = pos;
    if (pool[pos]) pool[pos].focus({preventScroll: true});
  }

  grid.addEventListener("keydown", function (ev) {
    var t = ev.target;
    if (!t || !t.classList || !t.classList.contains("cell")) return;
    var pos = +t.getAttribute("data-pos"), next = null;
    var pageRows = Math.max(1, Math.floor(window.innerHeight / rowH) - 1);
    switch (ev.key) {
      case "ArrowRight": next = pos + 1; break;
      case "ArrowLeft": next = pos - 1; break;
      case "ArrowDown": next = pos + cols; break;
      case "ArrowUp": next = pos - cols; break;
      case "PageDown": next = pos + cols * pageRows; break;
      case "PageUp": next = pos - cols * pageRows; break;
      case "Home": next = 0; break;
      case "End": next = order.length - 1; break;
    }
    if (next === null || next < 0 || next >= order.length) return;
    ev.preventDefault();
    focusAt(next);
  });
  // the first Tab into the grid lands on the first visible cell
  grid.setAttribute("tabindex", "-1");

  function sync() {
    sortSel.value = st.sort; modeSel.value = st.mode; filterIn.value = st.q; sizeIn.value = String(st.size);
    if (deadBox) deadBox.checked = st.dead;
    dirBtn.textContent = st.desc ? "descending" : "ascending";
  }
  sortSel.addEventListener("change", function () { st.sort = sortSel.value; st.desc = DEFAULT_DESC[st.sort]; sync(); writeHash(); compute(); });
  dirBtn.addEventListener("click", function () { st.desc = !st.desc; sync(); writeHash(); compute(); });
  modeSel.addEventListener("change", function () { st.mode = modeSel.value; writeHash(); compute(); });
  filterIn.addEventListener("input", function () { st.q = filterIn.value; writeHash(); compute(); });
  if (deadBox) deadBox.addEventListener("change", function () { st.dead = deadBox.checked; writeHash(); compute(); });
  sizeIn.addEventListener("input", function () { st.size = +sizeIn.value; writeHash(); layout(true); });
  window.addEventListener("scroll", schedule, {passive: true});
  window.addEventListener("resize", function () { layout(true); });

  readHash();
  sync();
  compute();
})();
