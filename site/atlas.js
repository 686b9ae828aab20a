// atlas: search box and keyboard navigation, on every page.
// Works from file:// (the index is a <script>, loaded on first use). DOM is built with
// textContent and setAttribute only: data never becomes markup.
(function () {
  "use strict";
  var body = document.body;
  var root = body.getAttribute("data-root") || "";
  var kind = body.getAttribute("data-kind") || "";
  var input = document.getElementById("q");
  var list = document.getElementById("results");
  var MAX = 20;
  var loading = false;
  var active = -1;
  var items = [];

  // Fill one of the site's URL patterns (search.js `urls`, from atlas/render/names.py).
  function atlasUrl(pattern, params) {
    return pattern.replace(/\{(\w+)\}/g, function (_, k) { return encodeURIComponent(String(params[k])); });
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  // The index is loaded on first use; whatever asks for it meanwhile runs once it is there.
  var waiting = [];
  function loadIndex(then) {
    if (window.ATLAS_SEARCH) { then(); return; }
    waiting.push(then);
    if (loading) return;
    loading = true;
    var s = document.createElement("script");
    s.src = root + "search.js";
    s.onload = function () {
      loading = false;
      var todo = waiting;
      waiting = [];
      todo.forEach(function (f) { f(); });
    };
    s.onerror = function () { loading = false; waiting = []; };
    document.head.appendChild(s);
  }

  function matchLayers(token) {
    var L = window.ATLAS_SEARCH.layers, out = [];
    for (var i = 0; i < L.length; i++) {
      var a = L[i].short.toLowerCase(), b = L[i].name.toLowerCase();
      if (a === token || b === token) return [L[i]];
      if (a.indexOf(token) === 0 || b.indexOf(token) === 0 || b.indexOf("." + token) >= 0) out.push(L[i]);
    }
    return out;
  }

  // Results: {kind, text, sub, href}
  function search(raw) {
    var S = window.ATLAS_SEARCH, q = raw.trim().toLowerCase(), out = [];
    if (!q) return out;
    var L = S.layers, i, u;
    var m = /^(?:(.+?)\s*[:\s]\s*)?#?(\d+)$/.exec(q);
    if (m) {
      var n = parseInt(m[2], 10);
      var layers = m[1] ? matchLayers(m[1]) : L;
      for (i = 0; i < layers.length; i++) {
        if (n < layers[i].units) {
          var lab = layers[i].labels ? layers[i].labels[n] : "";
          out.push({kind: "unit", text: layers[i].short + ":" + n, sub: lab,
                    href: atlasUrl(S.urls.unit, {slug: layers[i].slug, unit: n})});
        }
      }
      if (!m[1] && (S.paged ? S.paged.indexOf(n) >= 0 : n < S.images)) out.push({kind: "image", text: "image " + n, sub: "", href: atlasUrl(S.urls.image, {image: n})});
    }
    var ls = matchLayers(q);
    for (i = 0; i < ls.length && out.length < MAX; i++) {
      out.push({kind: "layer", text: ls[i].short, sub: ls[i].name + ", " + ls[i].units + " units",
                href: atlasUrl(S.urls.layer, {slug: ls[i].slug})});
    }
    for (i = 0; i < S.classes.length && out.length < MAX; i++) {
      if (S.classes[i].name.toLowerCase().indexOf(q) >= 0) {
        out.push({kind: "class", text: S.classes[i].name, sub: "", href: S.classes[i].href});
      }
    }
    var exact = [], partial = [];
    for (i = 0; i < L.length; i++) {
      var labels = L[i].labels;
      if (!labels) continue;
      for (u = 0; u < labels.length; u++) {
        var t = labels[u].toLowerCase();
        if (!t) continue;
        var at = t.indexOf(q);
        if (at < 0) continue;
        var r = {kind: "label", text: labels[u], sub: L[i].short + ":" + u, href: atlasUrl(S.urls.unit, {slug: L[i].slug, unit: u})};
        (t === q ? exact : partial).push(r);
        if (exact.length + partial.length > 4 * MAX) break;
      }
    }
    out = out.concat(exact, partial);
    return out.slice(0, MAX);
  }

  function show(results, query) {
    while (list.firstChild) list.removeChild(list.firstChild);
    items = [];
    active = results.length ? 0 : -1;
    if (!results.length) {
      if (query) { list.appendChild(el("li", "none", "no unit, label or class matches")); list.hidden = false; }
      else list.hidden = true;
      return;
    }
    results.forEach(function (r, i) {
      var li = el("li");
      var a = el("a");
      a.setAttribute("href", root + r.href);
      a.appendChild(el("span", "kind", r.kind));
      a.appendChild(el("span", "what", r.text));
      if (r.sub) a.appendChild(el("span", "sub", r.sub));
      li.appendChild(a);
      if (i === 0) li.className = "active";
      list.appendChild(li);
      items.push(li);
    });
    list.hidden = false;
  }

  function setActive(i) {
    if (!items.length) return;
    if (active >= 0) items[active].className = "";
    active = (i + items.length) % items.length;
    items[active].className = "active";
    items[active].scrollIntoView({block: "nearest"});
  }

  function run() { show(search(input.value), input.value.trim()); }

  if (input && list) {
    input.addEventListener("focus", function () { loadIndex(function () {}); });
    if (document.activeElement === input && input.value) loadIndex(run);
    input.addEventListener("input", function () { loadIndex(run); });
    input.addEventListener("keydown", function (ev) {
      if (ev.key === "ArrowDown") { ev.preventDefault(); setActive(active + 1); }
      else if (ev.key === "ArrowUp") { ev.preventDefault(); setActive(active - 1); }
      else if (ev.key === "Enter") {
        ev.preventDefault();
        if (!window.ATLAS_SEARCH) { loadIndex(function () { run(); if (items.length) items[0].querySelector("a").click(); }); return; }
        run();
        if (active >= 0 && items[active]) items[active].querySelector("a").click();
      } else if (ev.key === "Escape") { list.hidden = true; input.blur(); }
    });
    document.addEventListener("click", function (ev) {
      if (!list.contains(ev.target) && ev.target !== input) list.hidden = true;
    });
  }

  document.addEventListener("keydown", function (ev) {
    if (ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    var t = ev.target, tag = t && t.tagName;
    var typing = tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (t && t.isContentEditable);
    if (typing) return;
    if (ev.key === "/" && input) { ev.preventDefault(); input.focus(); input.select(); return; }
    if (kind === "unit" || kind === "image") {
      var rel = ev.key === "ArrowLeft" ? "prev" : ev.key === "ArrowRight" ? "next" : ev.key === "u" ? "up" : null;
      var a = rel && document.querySelector('a[rel="' + rel + '"]');
      if (a) { ev.preventDefault(); window.location.href = a.href; }
    }
  });
})();

// Sprite sheets (atlas/render/tiles.py SheetRef.js): where tile offset + j of unit u lies.
// m: {base, ext, per, cols, n, offset, slots, units?}; returns {url, x, y, tx, ty} (x, y in
// tiles; the sheet is tx x ty tiles, the last sheet of a layer may be smaller) or null.
window.atlasSprite = function (m, u, j) {
  var slot = u;
  if (m.units) {
    if (!m.slotOf) { m.slotOf = {}; m.units.forEach(function (v, i) { m.slotOf[v] = i; }); }
    slot = m.slotOf.hasOwnProperty(u) ? m.slotOf[u] : -1;
  }
  if (slot < 0 || slot >= m.slots) return null;
  var s = Math.floor(slot / m.per), i = slot % m.per, left = Math.min(m.per, m.slots - s * m.per);
  return {url: m.base + s + m.ext, x: (i % m.cols) * m.n + m.offset + (j || 0), y: Math.floor(i / m.cols),
          tx: Math.min(m.cols, left) * m.n, ty: Math.ceil(left / m.cols)};
};

// "This unit's pictures" links on unit pages: the unit's tiles cut from the sheet on a canvas
// and saved as a PNG (lossless: the sheets are opaque, PNG in and out). A page opened from
// file:// may not read a canvas it drew an image on; then the link opens the whole sheet.
document.addEventListener("click", function (ev) {
  var a = ev.target && ev.target.closest ? ev.target.closest("a.fvsave") : null;
  if (!a || ev.button !== 0 || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
  ev.preventDefault();
  var d = a.dataset, im = new Image();
  function whole() { window.location.href = a.href; }
  im.onerror = whole;
  im.onload = function () {
    var w = im.naturalWidth / +d.tx, h = im.naturalHeight / +d.ty, n = +d.n;
    var c = document.createElement("canvas");
    c.width = n * w; c.height = h;
    c.getContext("2d").drawImage(im, +d.x * w, +d.y * h, n * w, h, 0, 0, n * w, h);
    try {
      c.toBlob(function (blob) {
        if (!blob) return whole();
        var url = URL.createObjectURL(blob), link = document.createElement("a");
        link.href = url; link.download = d.file;
        document.body.appendChild(link); link.click(); link.remove();
        setTimeout(function () { URL.revokeObjectURL(url); }, 10000);
      }, "image/png");
    } catch (e) { whole(); }
  };
  im.src = a.href;
});
