// borg-batch report: file bodies built when scrolled near (from the JSON data), unified or
// split (remembered), word highlights, fold / expand all, "viewed" boxes kept in
// localStorage, the "only failed" filter. Reads the page, never fetches anything; builds
// DOM with textContent only.
(function () {
  "use strict";
  var body = document.body;
  var data = JSON.parse(document.getElementById("diff-data").textContent);
  var run = body.getAttribute("data-run") || "";
  var store = (function () {
    try { var s = window.localStorage; s.getItem("x"); return s; } catch (e) { return null; }
  })();
  function get(key) { return store ? store.getItem("borg-batch:" + key) : null; }
  function set(key, value) {
    if (!store) { return; }
    try {
      if (value === null) { store.removeItem("borg-batch:" + key); }
      else { store.setItem("borg-batch:" + key, value); }
    } catch (e) { /* full or denied: the page works without */ }
  }

  var hide = document.getElementById("hide-passed");
  hide.addEventListener("change", function () {
    body.classList.toggle("hide-passed", hide.checked);
  });

  function el(tag, cls) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    return e;
  }
  var KIND = ["ctx", "add", "del", "hunk", "meta"];
  // The code cell of a row: text with its changed words in <mark>.
  function code(td, row) {
    var text = row[3], ranges = row[4];
    if (!ranges) { td.textContent = text; return; }
    var at = 0;
    ranges.forEach(function (r) {
      if (r[0] > at) { td.appendChild(document.createTextNode(text.slice(at, r[0]))); }
      var m = el("mark");
      m.textContent = text.slice(r[0], r[1]);
      td.appendChild(m);
      at = r[1];
    });
    if (at < text.length) { td.appendChild(document.createTextNode(text.slice(at))); }
  }
  function num(td, n) { if (n !== null && n !== undefined) { td.setAttribute("data-n", n); } }

  function unified(rows) {
    var t = el("table", "diff"), tb = el("tbody");
    var cols = el("colgroup");
    ["ln", "ln", ""].forEach(function (c) { cols.appendChild(el("col", c)); });
    t.appendChild(cols);
    rows.forEach(function (row) {
      var tr = el("tr", KIND[row[0]]);
      var a = el("td", "ln"), b = el("td", "ln"), c = el("td", "code");
      num(a, row[1]); num(b, row[2]); code(c, row);
      tr.appendChild(a); tr.appendChild(b); tr.appendChild(c);
      tb.appendChild(tr);
    });
    t.appendChild(tb);
    return t;
  }

  function split(rows) {
    var t = el("table", "diff split"), tb = el("tbody");
    var cols = el("colgroup");
    ["ln", "", "ln", ""].forEach(function (c) { cols.appendChild(el("col", c)); });
    t.appendChild(cols);
    function side(tr, row, kind, n) {
      var ln = el("td", "ln " + kind), c = el("td", "code " + kind);
      if (row) { num(ln, n); code(c, row); }
      else { ln.className = "ln empty"; c.className = "code empty"; }
      tr.appendChild(ln); tr.appendChild(c);
    }
    var dels = [], adds = [];
    function flush() {
      for (var i = 0; i < Math.max(dels.length, adds.length); i++) {
        var tr = el("tr");
        side(tr, dels[i], "del", dels[i] && dels[i][1]);
        side(tr, adds[i], "add", adds[i] && adds[i][2]);
        tb.appendChild(tr);
      }
      dels = []; adds = [];
    }
    rows.forEach(function (row) {
      if (row[0] === 2) { if (adds.length) { flush(); } dels.push(row); }
      else if (row[0] === 1) { adds.push(row); }
      else {
        flush();
        var tr = el("tr", KIND[row[0]]);
        if (row[0] === 0) {
          side(tr, row, "left", row[1]);
          side(tr, row, "right", row[2]);
        } else {
          var td = el("td", "code");
          td.colSpan = 4;
          td.textContent = row[3];
          tr.appendChild(td);
        }
        tb.appendChild(tr);
      }
    });
    flush();
    t.appendChild(tb);
    return t;
  }

  var isSplit = false;
  // Builds (or rebuilds, after a view change) the table of one file that is open.
  function build(file) {
    if (!file.hasAttribute("data-rows") || file.classList.contains("collapsed")) { return; }
    var want = isSplit ? "split" : "unified";
    if (file.getAttribute("data-built") === want) { return; }
    var fbody = file.querySelector(".fbody");
    var old = fbody.querySelector("table.diff");
    if (old) { fbody.removeChild(old); }
    var rows = data[+file.getAttribute("data-i")] || [];
    fbody.appendChild(isSplit ? split(rows) : unified(rows));
    file.setAttribute("data-built", want);
  }
  var files = Array.prototype.slice.call(document.querySelectorAll("section.file"));
  var near = null;
  if ("IntersectionObserver" in window) {
    near = new IntersectionObserver(function (entries) {
      entries.forEach(function (e) {
        e.target.classList.toggle("near", e.isIntersecting);
        if (e.isIntersecting) { build(e.target); }
      });
    }, { rootMargin: "1500px 0px" });
    files.forEach(function (f) { near.observe(f); });
  }
  // The first files are built at once, so the top of the page is whole on first paint.
  files.slice(0, 30).forEach(function (f) { f.classList.add("near"); });
  function buildNear() {
    files.forEach(function (f) { if (!near || f.classList.contains("near")) { build(f); } });
  }

  function fold(file, collapsed) {
    file.classList.toggle("collapsed", collapsed);
    if (!collapsed) { build(file); }
  }
  files.forEach(function (file) {
    var box = file.querySelector(".viewed input");
    var key = "viewed:" + run + ":" + file.id;
    if (get(key) === "1") { box.checked = true; file.classList.add("collapsed", "is-viewed"); }
    box.addEventListener("change", function () {
      set(key, box.checked ? "1" : null);
      file.classList.toggle("is-viewed", box.checked);
      fold(file, box.checked);
    });
    file.querySelector(".fold").addEventListener("click", function () {
      fold(file, !file.classList.contains("collapsed"));
    });
  });
  document.getElementById("expand-all").addEventListener("click", function () {
    files.forEach(function (f) { f.classList.remove("collapsed"); });
    buildNear();
  });
  document.getElementById("collapse-all").addEventListener("click", function () {
    files.forEach(function (f) { f.classList.add("collapsed"); });
  });

  function view(splitOn, remember) {
    isSplit = splitOn;
    body.classList.toggle("split", splitOn);
    document.getElementById("view-unified").classList.toggle("on", !splitOn);
    document.getElementById("view-split").classList.toggle("on", splitOn);
    if (remember) { set("view", splitOn ? "split" : "unified"); }
    buildNear();
  }
  document.getElementById("view-unified").addEventListener("click", function () { view(false, true); });
  document.getElementById("view-split").addEventListener("click", function () { view(true, true); });
  // report.html#split opens side by side, so a link can share that view; else the last
  // choice made on this machine.
  view(location.hash === "#split" || (location.hash !== "#unified" && get("view") === "split"), false);
  // A link to a file opens it, even when it was folded.
  function reveal() {
    var target = location.hash && document.getElementById(location.hash.slice(1));
    if (target && target.classList.contains("file")) { fold(target, false); }
  }
  window.addEventListener("hashchange", reveal);
  reveal();
})();
