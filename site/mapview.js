// atlas: a pannable, zoomable map of images or units on a canvas (window.ATLAS_MAP).
// Thumbnails come from sprite sheets (the data thumbnails' or the featvis stage's) loaded only when their tiles are
// on screen and large enough to see; until then a point is a dot in its class colour.
// Drawing images from file:// taints the canvas, which is fine: pixels are never read back.
(function () {
  "use strict";
  var D = window.ATLAS_MAP;
  var box = document.getElementById("map"), canvas = document.getElementById("mapcanvas");
  if (!D || !box || !canvas) return;
  var root = document.body.getAttribute("data-root") || "";
  var $ = function (id) { return document.getElementById(id); };
  var tip = $("maptip"), hint = $("maphint"), hlSel = $("hl");
  $("mapcontrols").hidden = false;
  var g = canvas.getContext("2d");
  var n = D.n, layout = 0, xy = D.layouts[0].xy;
  var W = 0, H = 0, dpr = 1, s = 1, ox = 0, oy = 0;
  function tileOf(l) { return l.tile || Math.max(40, Math.min(1200, 10000 / Math.sqrt(Math.max(1, n)) * 0.9)); }
  var T = tileOf(D.layouts[0]);  // thumbnail size in map units (0..10000)
  var show = "thumbs", hl = -1, mark = -1, hover = -1, pending = false;
  var sheets = {}, strips = {}, loadingStrips = 0, MAX_STRIP_LOADS = 48;

  function color(c) {
    if (c < 0) return "#9aa3ad";
    return "hsl(" + ((c * 137.508) % 360).toFixed(1) + ",62%,48%)";
  }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function buttons(container, options, current, onpick) {
    if (!container) return;
    options.forEach(function (o) {
      var b = el("button", "", o.name);
      b.type = "button";
      b.setAttribute("aria-pressed", String(o.id === current));
      b.addEventListener("click", function () {
        Array.prototype.forEach.call(container.children, function (c) { c.setAttribute("aria-pressed", "false"); });
        b.setAttribute("aria-pressed", "true");
        onpick(o.id);
      });
      container.appendChild(b);
    });
  }

  buttons($("layouts"), D.layouts.map(function (l, i) { return {id: i, name: l.name}; }), 0, function (i) {
    layout = i; xy = D.layouts[i].xy; T = tileOf(D.layouts[i]); request();
  });
  var shows = [{id: "thumbs", name: D.kind === "units" ? "top image" : "images"}];
  if (D.strips) shows.push({id: "strips", name: D.strips.name});
  shows.push({id: "dots", name: "dots"});
  if (D.strips) show = "strips";
  buttons($("show"), shows, show, function (v) { show = v; request(); });
  if (hlSel) hlSel.addEventListener("change", function () { hl = +hlSel.value; request(); });

  function legend() {
    if (!D.catNames.length || D.catNames.length > 40) return;
    var ul = el("ul", "legend");
    D.catNames.forEach(function (name, i) {
      var li = el("li");
      var sw = el("span", "sw");
      sw.style.background = color(i);
      li.appendChild(sw);
      li.appendChild(el("span", "", name));
      li.addEventListener("click", function () { hl = hl === i ? -1 : i; if (hlSel) hlSel.value = String(hl); request(); });
      ul.appendChild(li);
    });
    box.parentNode.insertBefore(ul, box.nextSibling);
  }
  legend();

  function resize() {
    dpr = window.devicePixelRatio || 1;
    W = box.clientWidth; H = box.clientHeight;
    canvas.width = Math.round(W * dpr); canvas.height = Math.round(H * dpr);
    canvas.style.width = W + "px"; canvas.style.height = H + "px";
  }
  function fit() {
    s = Math.min(W, H) / (10000 + T) * 0.96;
    ox = (W - 10000 * s) / 2; oy = (H - 10000 * s) / 2;
  }
  function request() { if (!pending) { pending = true; window.requestAnimationFrame(draw); } }

  function sheetFor(tile) {
    var k = Math.floor(tile / D.sheets.per);
    var sh = sheets[k];
    if (!sh) {
      sh = sheets[k] = {img: new Image(), ready: false};
      sh.img.onload = function () { sh.ready = true; request(); };
      sh.img.src = root + D.sheets.files[k];
    }
    return sh.ready ? sh.img : null;
  }
  // a unit's feature visualization: its tile in the featvis stage's sheets (atlasSprite)
  function stripFor(u) {
    var p = window.atlasSprite(D.strips, u, 0);
    if (!p) return null;
    var st = strips[p.url];
    if (!st) {
      if (loadingStrips >= MAX_STRIP_LOADS) return null;
      st = strips[p.url] = {img: new Image(), ready: false};
      loadingStrips++;
      st.img.onload = function () { st.ready = true; loadingStrips--; request(); };
      st.img.onerror = function () { loadingStrips--; };
      st.img.src = root + p.url;
    }
    return st.ready ? {img: st.img, p: p} : null;
  }

  function classBar(c, ts, x, y) {
    if (ts < 14) return;
    g.fillStyle = color(c);
    g.fillRect(x - ts / 2, y + ts / 2 - Math.max(2, ts / 16), ts, Math.max(2, ts / 16));
  }

  function drawPoint(i, ts, x, y) {
    var c = D.cat[i];
    var half = ts / 2;
    if (show !== "dots" && ts >= 7) {
      if (show === "strips" && D.strips && window.atlasSprite(D.strips, i, 0)) {
        var sp = ts >= 14 ? stripFor(i) : null;
        if (sp) {
          var w = sp.img.naturalWidth / sp.p.tx, h = sp.img.naturalHeight / sp.p.ty;
          g.drawImage(sp.img, sp.p.x * w, sp.p.y * h, w, h, x - half, y - half, ts, ts);
          classBar(c, ts, x, y);
          return;
        }
        if (ts >= 14) return drawDot(c, ts, x, y);  // its picture is on its way
      }
      var tile = D.tiles ? D.tiles[i] : i;  // the point's data image (a unit's top image)
      if (tile >= 0) {
        var sh = sheetFor(tile);
        if (sh) {
          var t = D.sheets.tile, j = tile % D.sheets.per;
          g.drawImage(sh, (j % D.sheets.cols) * t, Math.floor(j / D.sheets.cols) * t, t, t, x - half, y - half, ts, ts);
          classBar(c, ts, x, y);
          return;
        }
      }
    }
    drawDot(c, ts, x, y);
  }

  function drawDot(c, ts, x, y) {
    g.fillStyle = color(c);
    var d = Math.max(2.5, Math.min(ts, 10));
    g.fillRect(x - d / 2, y - d / 2, d, d);
  }

  function draw() {
    pending = false;
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.fillStyle = "#f4f6f8";
    g.fillRect(0, 0, W, H);
    var ts = T * s, half = ts / 2, i, x, y, dim = [];
    g.imageSmoothingEnabled = ts > 40;
    for (i = 0; i < n; i++) {
      x = ox + xy[2 * i] * s; y = oy + xy[2 * i + 1] * s;
      if (x < -half || y < -half || x > W + half || y > H + half) continue;
      if (hl >= 0 && D.cat[i] !== hl) { dim.push(i); continue; }
      drawPoint(i, ts, x, y);
    }
    if (dim.length) {
      g.globalAlpha = 0.12;
      dim.forEach(function (k) { drawPoint(k, ts, ox + xy[2 * k] * s, oy + xy[2 * k + 1] * s); });
      g.globalAlpha = 1;
    }
    [mark, hover].forEach(function (k, idx) {  // on top of their neighbours, outlined
      if (k < 0) return;
      x = ox + xy[2 * k] * s; y = oy + xy[2 * k + 1] * s;
      drawPoint(k, ts, x, y);
      var r = Math.max(ts, 10) / 2 + 3;
      g.lineWidth = idx === 0 ? 3 : 2;
      g.strokeStyle = idx === 0 ? "#d62828" : "#1d232b";
      g.strokeRect(x - r, y - r, 2 * r, 2 * r);
    });
    hint.textContent = ts < 7 && show !== "dots" ? "zoom in to see thumbnails" : "";
  }

  function pick(mx, my) {
    var ts = Math.max(T * s, 8), half = ts / 2, best = -1;
    for (var i = 0; i < n; i++) {
      var x = ox + xy[2 * i] * s, y = oy + xy[2 * i + 1] * s;
      if (Math.abs(mx - x) <= half && Math.abs(my - y) <= half && (hl < 0 || D.cat[i] === hl)) best = i;  // topmost wins
    }
    [hover, mark].forEach(function (k) {  // drawn last, so they are on top
      if (k >= 0 && Math.abs(mx - (ox + xy[2 * k] * s)) <= half && Math.abs(my - (oy + xy[2 * k + 1] * s)) <= half) best = k;
    });
    return best;
  }
  function title(i) {
    var c = D.cat[i], cname = c >= 0 && c < D.catNames.length ? D.catNames[c] : "";
    if (D.kind === "units") {
      var lab = D.names && D.names[i] ? D.names[i] : "";
      return D.layer + " unit " + i + (lab ? " · " + lab : "") + (cname ? " · top class " + cname : "");
    }
    return "image " + i + (cname ? " · " + cname : "");
  }
  function href(i) { return root + D.href.replace("{id}", String(D.ids ? D.ids[i] : i)); }

  function zoom(f, cx, cy) {
    var ns = Math.max(0.01, Math.min(s * f, 80 * Math.min(W, H) / 10000));
    f = ns / s;
    ox = cx - (cx - ox) * f; oy = cy - (cy - oy) * f; s = ns;
    request();
  }

  var drag = null;
  canvas.addEventListener("mousedown", function (ev) { drag = {x: ev.clientX, y: ev.clientY, ox: ox, oy: oy, moved: false}; });
  window.addEventListener("mouseup", function () { setTimeout(function () { drag = null; }, 0); });
  canvas.addEventListener("mousemove", function (ev) {
    var r = canvas.getBoundingClientRect(), mx = ev.clientX - r.left, my = ev.clientY - r.top;
    if (drag && (ev.buttons & 1)) {
      var dx = ev.clientX - drag.x, dy = ev.clientY - drag.y;
      if (Math.abs(dx) + Math.abs(dy) > 3) drag.moved = true;
      ox = drag.ox + dx; oy = drag.oy + dy;
      tip.hidden = true;
      request();
      return;
    }
    var i = pick(mx, my);
    if (i !== hover) { hover = i; request(); }
    canvas.style.cursor = i >= 0 ? "pointer" : "grab";
    if (i >= 0) {
      tip.textContent = title(i);
      tip.style.left = Math.min(mx + 14, W - 220) + "px"; tip.style.top = (my + 14) + "px";
      tip.hidden = false;
    } else tip.hidden = true;
  });
  canvas.addEventListener("mouseleave", function () { tip.hidden = true; if (hover >= 0) { hover = -1; request(); } });
  canvas.addEventListener("click", function (ev) {
    if (drag && drag.moved) return;
    var r = canvas.getBoundingClientRect(), i = pick(ev.clientX - r.left, ev.clientY - r.top);
    if (i >= 0) window.location.href = href(i);
  });
  canvas.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    var r = canvas.getBoundingClientRect();
    zoom(Math.exp(-ev.deltaY * 0.0015), ev.clientX - r.left, ev.clientY - r.top);
  }, {passive: false});
  box.addEventListener("keydown", function (ev) {
    var step = 60;
    switch (ev.key) {
      case "+": case "=": zoom(1.4, W / 2, H / 2); break;
      case "-": case "_": zoom(1 / 1.4, W / 2, H / 2); break;
      case "0": fit(); request(); break;
      case "ArrowLeft": ox += step; request(); break;
      case "ArrowRight": ox -= step; request(); break;
      case "ArrowUp": oy += step; request(); break;
      case "ArrowDown": oy -= step; request(); break;
      case "Enter": if (hover >= 0) window.location.href = href(hover); else if (mark >= 0) window.location.href = href(mark); return;
      default: return;
    }
    ev.preventDefault();
  });
  $("zin").addEventListener("click", function () { zoom(1.4, W / 2, H / 2); });
  $("zout").addEventListener("click", function () { zoom(1 / 1.4, W / 2, H / 2); });
  $("zreset").addEventListener("click", function () { fit(); request(); });
  window.addEventListener("resize", function () { resize(); request(); });

  function fromHash() {
    var h = window.location.hash.replace(/^#/, ""), m;
    if ((m = /(?:^|&)(?:image|unit)=(\d+)/.exec(h)) && (D.ids ? D.ids.indexOf(+m[1]) >= 0 : +m[1] < n)) {
      mark = D.ids ? D.ids.indexOf(+m[1]) : +m[1];  // a point's row (the map may show a sample)
      s = Math.max(s, 6 * Math.min(W, H) / 10000 / (T / 1000 + 1));
      var want = Math.max(64 / T, s);
      s = want;
      ox = W / 2 - xy[2 * mark] * s; oy = H / 2 - xy[2 * mark + 1] * s;
    }
    if ((m = /(?:^|&)class=(-?\d+)/.exec(h)) && +m[1] < D.catNames.length) {
      hl = +m[1];
      if (hlSel) hlSel.value = String(hl);
    }
  }

  resize();
  fit();
  fromHash();
  draw();
})();
