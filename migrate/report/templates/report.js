// Client-side filters for the report's tables: no data is embedded here, rows are read from
// the page itself (their text and their .reason chips). Filters can be set from the URL hash,
// e.g. report.html#excluded-reason=DORMANT&excluded-q=lond, and the hash follows the filters.
// A long table shows its matching rows a page at a time: the rows after the first page wait
// in a <template> inside the table, which the browser parses but never lays out (tens of
// thousands of rows laid out at once take a browser minutes).
(function () {
  "use strict";

  function hashParams() {
    var hash = window.location.hash.replace(/^#/, "");
    return new URLSearchParams(hash.indexOf("=") >= 0 ? hash : "");
  }

  var forms = Array.prototype.slice.call(document.querySelectorAll("form[data-filter-for]"));

  function saveHash() {
    var params = new URLSearchParams();
    forms.forEach(function (form) {
      var id = form.getAttribute("data-filter-for");
      var text = form.querySelector("[data-filter-text]").value.trim();
      var reason = form.querySelector("[data-filter-reason]").value;
      if (text) { params.set(id + "-q", text); }
      if (reason) { params.set(id + "-reason", reason); }
    });
    var hash = params.toString();
    try {
      history.replaceState(null, "", hash ? "#" + hash : window.location.pathname + window.location.search);
    } catch (error) {
      // Some viewers refuse history changes on file:// pages; the filters work regardless.
    }
  }

  function setUp(form) {
    var id = form.getAttribute("data-filter-for");
    var pageRows = Number(form.getAttribute("data-page-rows"));
    var section = document.getElementById(id);
    var table = section.querySelector("table[data-filterable]");
    var body = table.tBodies[0];
    var input = form.querySelector("[data-filter-text]");
    var select = form.querySelector("[data-filter-reason]");
    var status = form.querySelector("[data-filter-status]");
    var pager = form.querySelector("[data-pager]");
    var previous = pager.querySelector('[data-page="previous"]');
    var next = pager.querySelector('[data-page="next"]');
    var rows = Array.prototype.slice.call(body.rows);
    var waiting = body.querySelector("template[data-more-rows]");
    if (waiting) {
      rows = rows.concat(Array.prototype.slice.call(waiting.content.children));
    }
    var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
    var reasons = rows.map(function (row) {
      return Array.prototype.map.call(row.querySelectorAll(".reason"), function (chip) {
        return chip.textContent;
      });
    });
    var matching = [];
    var first = 0;

    function count(n) { return n.toLocaleString("en-GB"); }

    function show() {
      var page = document.createDocumentFragment();
      matching.slice(first, first + pageRows).forEach(function (index) {
        page.appendChild(rows[index]);
      });
      while (body.firstChild) { body.removeChild(body.firstChild); }
      body.appendChild(page);
      var paged = matching.length > pageRows;
      status.textContent = paged
        ? "showing " + count(first + 1) + "–" + count(Math.min(first + pageRows, matching.length)) +
          " of " + count(matching.length) +
          (matching.length < rows.length ? " matching (" + count(rows.length) + " in all)" : "")
        : "showing " + count(matching.length) + " of " + count(rows.length);
      pager.hidden = !paged;
      previous.disabled = first === 0;
      next.disabled = first + pageRows >= matching.length;
      section.setAttribute("data-shown", String(matching.length));
    }

    function apply() {
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var reason = select.value;
      matching = [];
      rows.forEach(function (row, index) {
        if ((!reason || reasons[index].indexOf(reason) >= 0) &&
            terms.every(function (term) { return texts[index].indexOf(term) >= 0; })) {
          matching.push(index);
        }
      });
      first = 0;
      show();
    }

    var params = hashParams();
    input.value = params.get(id + "-q") || "";
    var wanted = params.get(id + "-reason") || "";
    if (Array.prototype.some.call(select.options, function (option) { return option.value === wanted; })) {
      select.value = wanted;
    }
    input.addEventListener("input", function () { apply(); saveHash(); });
    select.addEventListener("change", function () { apply(); saveHash(); });
    previous.addEventListener("click", function () { first = Math.max(0, first - pageRows); show(); });
    next.addEventListener("click", function () { first += pageRows; show(); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.hidden = false;
    apply();
  }

  forms.forEach(setUp);
})();
