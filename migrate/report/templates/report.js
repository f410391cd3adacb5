// Client-side filters for the report's tables: no data is embedded here, rows are read from
// the page itself (their text and their .reason chips). Filters can be set from the URL hash,
// e.g. report.html#excluded-reason=DORMANT&excluded-q=lond, and the hash follows the filters.
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
    var section = document.getElementById(id);
    var table = section.querySelector("table[data-filterable]");
    var input = form.querySelector("[data-filter-text]");
    var select = form.querySelector("[data-filter-reason]");
    var status = form.querySelector("[data-filter-status]");
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
    var reasons = rows.map(function (row) {
      return Array.prototype.map.call(row.querySelectorAll(".reason"), function (chip) {
        return chip.textContent;
      });
    });

    function apply() {
      var terms = input.value.toLowerCase().split(/\s+/).filter(Boolean);
      var reason = select.value;
      var shown = 0;
      rows.forEach(function (row, index) {
        var match = (!reason || reasons[index].indexOf(reason) >= 0) &&
          terms.every(function (term) { return texts[index].indexOf(term) >= 0; });
        row.hidden = !match;
        if (match) { shown += 1; }
      });
      status.textContent = "showing " + shown.toLocaleString("en-GB") + " of " +
        rows.length.toLocaleString("en-GB");
      section.setAttribute("data-shown", String(shown));
    }

    var params = hashParams();
    input.value = params.get(id + "-q") || "";
    var wanted = params.get(id + "-reason") || "";
    if (Array.prototype.some.call(select.options, function (option) { return option.value === wanted; })) {
      select.value = wanted;
    }
    input.addEventListener("input", function () { apply(); saveHash(); });
    select.addEventListener("change", function () { apply(); saveHash(); });
    form.addEventListener("submit", function (event) { event.preventDefault(); });
    form.hidden = false;
    apply();
  }

  forms.forEach(setUp);
})();
