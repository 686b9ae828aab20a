// atlas: heatmaps on unit pages. Each top image's map is stored as a small grid of bytes
// (0..255, in the canvas's data-heat, base64) and drawn here over the shared image, so a
// heatmap costs no second picture. The grid is upsampled bilinearly with half-pixel
// centres (as the evidence stage's `upsample` and NetDissect do) and coloured as
// heatmaps.overlay does: where the unit is silent the image is dimmed to a third, where
// it fires a warm tint shows. The image's pixels are never read (file:// canvases taint).
// The layer grid's heatmap mode draws the same way over its sprite tiles (atlasHeat.paint).
(function () {
  "use strict";
  function axis(n, size) {
    // for each output pixel: the two grid cells and the weight of the second
    var i0 = new Int32Array(size), i1 = new Int32Array(size), w = new Float32Array(size);
    for (var o = 0; o < size; o++) {
      var x = (o + 0.5) * n / size - 0.5;
      if (x < 0) x = 0;
      var a = Math.floor(x);
      if (a > n - 1) a = n - 1;
      i0[o] = a; i1[o] = Math.min(a + 1, n - 1); w[o] = x - a;
    }
    return {i0: i0, i1: i1, w: w};
  }
  function draw(cv) {
    paint(cv, atob(cv.getAttribute("data-heat") || ""), +cv.getAttribute("data-h"), +cv.getAttribute("data-w"), 0);
  }
  // Draw the h x w grid held in `raw` (a binary string, one byte per cell) from `at` on,
  // at the canvas's shown width (or `css` px when it is not in the page yet).
  function paint(cv, raw, h, w, at, css) {
    if (!h || !w || raw.length < at + h * w) return;
    var g = new Float32Array(h * w);
    for (var i = 0; i < g.length; i++) g[i] = raw.charCodeAt(at + i) / 255;
    var size = Math.max(16, Math.min(512, Math.round((cv.clientWidth || css || 224) * (window.devicePixelRatio || 1))));
    cv.width = size; cv.height = size;
    var ctx = cv.getContext("2d"), img = ctx.createImageData(size, size), d = img.data;
    var ry = axis(h, size), rx = axis(w, size);
    for (var y = 0; y < size; y++) {
      var r0 = ry.i0[y] * w, r1 = ry.i1[y] * w, wy = ry.w[y];
      for (var x = 0; x < size; x++) {
        var c0 = rx.i0[x], c1 = rx.i1[x], wx = rx.w[x];
        var a = (1 - wy) * ((1 - wx) * g[r0 + c0] + wx * g[r0 + c1]) + wy * ((1 - wx) * g[r1 + c0] + wx * g[r1 + c1]);
        // out = img * m + tint * 0.45a with m = (0.3 + 0.7a)(1 - 0.45a): drawn over the image as
        // colour C with alpha 1 - m, C = tint * 0.45a / (1 - m)
        var m = (0.3 + 0.7 * a) * (1 - 0.45 * a), alpha = 1 - m, k = alpha > 0 ? 0.45 * a / alpha : 0;
        var p = (y * size + x) * 4;
        d[p] = 255 * k * Math.min(1, Math.max(0, 3 * a));
        d[p + 1] = 255 * k * Math.min(1, Math.max(0, 3 * a - 1));
        d[p + 2] = 255 * k * Math.min(1, Math.max(0, 3 * a - 2));
        d[p + 3] = 255 * alpha;
      }
    }
    ctx.putImageData(img, 0, 0);
  }
  window.atlasHeat = {paint: paint};
  var all = document.querySelectorAll("canvas.heat");
  if (!all.length) return;
  if ("IntersectionObserver" in window) {
    var io = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) { if (e.isIntersecting) { io.unobserve(e.target); draw(e.target); } });
    }, {rootMargin: "400px"});
    Array.prototype.forEach.call(all, function (cv) { io.observe(cv); });
  } else {
    Array.prototype.forEach.call(all, draw);
  }
  var btn = document.getElementById("heattoggle");
  if (btn) btn.addEventListener("click", function () {
    var off = document.body.classList.toggle("noheat");
    btn.textContent = off ? "show maps" : "hide maps";
  });
})();
