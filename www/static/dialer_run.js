// The run page (dialer_run.html) live: while the run goes, its JSON is fetched every second and the
// status, times, counts, bar and the rows of the page shown are updated in place (no reload). The
// JSON holds the counts and one page of rows only, so a run of 200 000 numbers costs the same.
"use strict";
(function () {
  var box = document.getElementById("run");
  var table = document.getElementById("results");
  if (!box || !table) { return; }
  var url = box.getAttribute("data-json") + "?p=" + encodeURIComponent(table.getAttribute("data-page") || "1") +
    "&q=" + encodeURIComponent(table.getAttribute("data-q") || "");
  // A search reads every row of the run (LIKE on number and comment): polled less often.
  var every = table.getAttribute("data-q") ? 3000 : 1000;
  window.akRunPage = {loadedAt: Date.now(), updates: 0};
  var COLS = ["number", "comment", "result", "pressed", "attempts", "start", "end", "optout", "note"];

  function text(id, value) {
    var el = document.getElementById(id);
    if (el && el.textContent !== value) { el.textContent = value; }
  }
  function show(id, on) {
    var el = document.getElementById(id);
    if (el) { el.hidden = !on; }
  }
  function row(r) {
    var tr = document.createElement("tr");
    tr.setAttribute("data-number", r.number);
    var values = [r.number, r.comment, r.outcome_text, r.pressed, String(r.attempts), r.start, r.end, r.optout,
                  r.note];
    COLS.forEach(function (cls, i) {
      var td = document.createElement("td");
      td.className = cls;
      td.textContent = values[i];
      if (cls === "result") { td.setAttribute("data-result", r.outcome); }
      tr.appendChild(td);
    });
    return tr;
  }
  function apply(s) {
    var st = document.getElementById("run-status");
    st.textContent = s.run.status_text;
    st.setAttribute("data-status", s.run.status);
    text("run-started", s.run.started || "—");
    text("run-finished", s.run.finished || "—");
    text("run-note", s.run.note);
    show("run-note-wrap", !!s.run.note);
    show("live", s.run.active);
    show("stop-form", s.run.active);
    show("again-form", !s.run.active);
    var again = document.getElementById("again-form");
    if (again) { again.setAttribute("data-confirm", s.again_confirm); }
    ["answered", "unanswered", "calling", "waiting"].forEach(function (k) { text("count-" + k, String(s.counts[k])); });
    text("count-optout", s.optout_text);
    s.bar.forEach(function (b) {
      var rect = document.querySelector("#progress rect[data-seg='" + b.key + "']");
      if (rect) { rect.setAttribute("x", b.x); rect.setAttribute("width", b.w); }
    });
    var old = table.tBodies[0];
    var body = document.createElement("tbody");
    s.rows.forEach(function (r) { body.appendChild(row(r)); });
    table.replaceChild(body, old);
    show("empty", s.rows.length === 0);
    text("page-text", s.page_text);
    box.setAttribute("data-active", s.run.active ? "1" : "0");
    window.akRunPage.updates += 1;
  }
  function poll() {
    fetch(url, {headers: {"Accept": "application/json"}, credentials: "same-origin"})
      .then(function (resp) {
        if (resp.status === 401) { window.location.reload(); throw new Error("logged out"); }
        if (!resp.ok) { throw new Error("HTTP " + resp.status); }
        return resp.json();
      })
      .then(function (s) {
        apply(s);
        // The answer that says the run ended is the last one: the page then shows its final state.
        if (s.run.active) { setTimeout(poll, every); }
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  if (box.getAttribute("data-active") === "1") { setTimeout(poll, every); }
})();
