// borg-batch report: the "only failed" filter and the unified / side-by-side diff toggle.
// Reads the page, never fetches anything; builds DOM with textContent only.
(function () {
  "use strict";
  var body = document.body;
  var hide = document.getElementById("hide-passed");
  hide.addEventListener("change", function () {
    body.classList.toggle("hide-passed", hide.checked);
  });

  function el(tag, cls) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    return e;
  }
  // One side of a split row: number and code, or an empty filler.
  function side(tr, row, kind) {
    var ln = el("td", "ln " + kind), code = el("td", "code " + kind);
    if (row) {
      var n = row.cells[kind === "del" ? 0 : 1].getAttribute("data-n");
      if (row.className === "ctx") {
        n = row.cells[kind === "left" ? 0 : 1].getAttribute("data-n");
      }
      if (n) { ln.setAttribute("data-n", n); }
      code.textContent = row.cells[2].textContent;
    } else {
      ln.className = "ln empty";
      code.className = "code empty";
    }
    tr.appendChild(ln);
    tr.appendChild(code);
  }
  function wide(tb, row) {
    var tr = el("tr", row.className), td = el("td", "code");
    td.colSpan = 4;
    td.textContent = row.cells[2].textContent;
    tr.appendChild(td);
    tb.appendChild(tr);
  }
  function buildSplit(table) {
    var out = el("table", "diff split");
    var cols = el("colgroup");
    ["ln", "", "ln", ""].forEach(function (c) { cols.appendChild(el("col", c)); });
    out.appendChild(cols);
    var tb = el("tbody");
    out.appendChild(tb);
    var dels = [], adds = [];
    function flush() {
      for (var i = 0; i < Math.max(dels.length, adds.length); i++) {
        var tr = el("tr");
        side(tr, dels[i], "del");
        side(tr, adds[i], "add");
        tb.appendChild(tr);
      }
      dels = [];
      adds = [];
    }
    Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
      if (row.className === "del") {
        if (adds.length) { flush(); }
        dels.push(row);
      } else if (row.className === "add") {
        adds.push(row);
      } else {
        flush();
        if (row.className === "ctx") {
          var tr = el("tr", "ctx");
          side(tr, row, "left");
          side(tr, row, "right");
          tb.appendChild(tr);
        } else {
          wide(tb, row);
        }
      }
    });
    flush();
    return out;
  }
  var built = false;
  function view(split) {
    if (split && !built) {
      built = true;
      Array.prototype.forEach.call(document.querySelectorAll("table.unified-view"), function (t) {
        t.parentNode.insertBefore(buildSplit(t), t.nextSibling);
      });
    }
    body.classList.toggle("split", split);
    document.getElementById("view-unified").classList.toggle("on", !split);
    document.getElementById("view-split").classList.toggle("on", split);
  }
  document.getElementById("view-unified").addEventListener("click", function () { view(false); });
  document.getElementById("view-split").addEventListener("click", function () { view(true); });
  // report.html#split opens side by side, so a link can share that view.
  if (location.hash === "#split") { view(true); }
})();
