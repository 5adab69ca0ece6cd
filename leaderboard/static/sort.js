// Column sorting for the leaderboard tables. The page is complete without this script; it only
// re-orders rows. A metric header sorts best first on the first click (direction from its
// data-hib = higher-is-better attribute) and toggles on the next; missing values always go last.
(function () {
  "use strict";
  function cellValue(row, index) {
    var cell = row.cells[index];
    return cell ? cell.getAttribute("data-v") : "";
  }
  function compare(a, b, type, descending) {
    var aMissing = a === "" || a === null, bMissing = b === "" || b === null;
    if (aMissing || bMissing) { return aMissing === bMissing ? 0 : (aMissing ? 1 : -1); }
    var result;
    if (type === "text") { result = a.localeCompare(b); } else { result = parseFloat(a) - parseFloat(b); }
    return descending ? -result : result;
  }
  function sortBy(table, th, index) {
    var type = th.getAttribute("data-type") || "text";
    var current = th.getAttribute("aria-sort");
    var descending;
    if (current === "descending") { descending = false; }
    else if (current === "ascending") { descending = true; }
    else { descending = type === "num" ? th.getAttribute("data-hib") === "1" : false; }
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.forEach(function (r, i) { r._order = i; });
    rows.sort(function (a, b) {
      return compare(cellValue(a, index), cellValue(b, index), type, descending) || a._order - b._order;
    });
    rows.forEach(function (r, i) {
      body.appendChild(r);
      var rank = r.querySelector("td.rank");
      if (rank) { rank.textContent = String(i + 1); }
    });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", descending ? "descending" : "ascending");
  }
  function init() {
    Array.prototype.forEach.call(document.querySelectorAll("table.sortable"), function (table) {
      table.classList.add("js-sortable");
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, index) {
        if (th.getAttribute("data-type") === "rank") { return; }
        th.tabIndex = 0;
        th.addEventListener("click", function () { sortBy(table, th, index); });
        th.addEventListener("keydown", function (e) {
          if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, index); }
        });
      });
    });
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", init); } else { init(); }
})();
