// BLF panel: live updates from /blf/events (Server-Sent Events), search / state filter, time in state.
"use strict";
(function () {
  var root = document.getElementById("blf");
  if (!root) { return; }
  var L = JSON.parse(document.getElementById("blf-labels").textContent);
  var offset = parseFloat(root.getAttribute("data-now")) - Date.now() / 1000;   // server clock - ours
  var search = document.getElementById("blf-search");
  var stateSel = document.getElementById("blf-state");
  var status = document.getElementById("blf-status");
  var FREE = { idle: 1 }, BUSY = { inuse: 1, busy: 1, ringing: 1, inuse_ringing: 1, hold: 1, inuse_hold: 1 };

  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    var mm = (h ? (m < 10 ? "0" : "") : "") + m, ss = (sec < 10 ? "0" : "") + sec;
    return (h ? h + ":" : "") + mm + ":" + ss;
  }
  function tick() {
    var now = Date.now() / 1000 + offset;
    var tiles = document.querySelectorAll(".tile");
    for (var i = 0; i < tiles.length; i++) {
      var t = tiles[i], since = parseFloat(t.getAttribute("data-since"));
      t.querySelector(".since").textContent = (t.getAttribute("data-known") === "1" ? "" : "≥ ") + fmt(now - since);
    }
  }
  function setStale(reason) {
    status.setAttribute("data-stale", reason || "");
    status.className = "blf-status" + (reason ? " stale" : "");
    status.textContent = reason ? L["blf.stale." + reason] : L["blf.live"];
    root.className = root.className.replace(/ ?stale-now/, "") + (reason ? " stale-now" : "");
  }
  function el(tag, cls, text) { var e = document.createElement(tag); e.className = cls; e.textContent = text || ""; return e; }
  function fill(t, e) {
    t.setAttribute("data-state", e.state);
    t.setAttribute("data-since", e.since);
    t.setAttribute("data-known", e.since_known ? "1" : "0");
    t.querySelector(".name").textContent = e.name || "";
    t.querySelector(".state").textContent = (L["state." + e.state] || e.state) +
      (e.presence ? " · " + (L["presence." + e.presence] || e.presence) : "");
    if (e.presence_message) { t.title = e.presence_message; } else { t.removeAttribute("title"); }
  }
  function tile(e) {
    var t = document.createElement("div");
    t.className = "tile"; t.id = "ext-" + e.exten; t.setAttribute("data-exten", e.exten);
    t.appendChild(el("div", "num", e.exten)); t.appendChild(el("div", "name")); t.appendChild(el("div", "state"));
    t.appendChild(el("div", "since"));
    fill(t, e);
    return t;
  }
  function rebuild(msg) {
    var groups = {}, order = msg.groups.slice(), box = document.getElementById("blf-groups");
    box.textContent = "";
    var other = msg.groups.length ? L["blf.other_group"] : "";
    msg.extensions.forEach(function (e) {
      var g = msg.groups.indexOf(e.group) >= 0 ? e.group : other;
      if (!groups[g]) { groups[g] = []; if (order.indexOf(g) < 0) { order.push(g); } }
      groups[g].push(e);
    });
    order.forEach(function (g) {
      if (!groups[g] && msg.groups.length) { groups[g] = []; }
      if (!groups[g]) { return; }
      var sec = el("section", "blf-group"); sec.setAttribute("data-group", g);
      if (g) { sec.appendChild(el("h2", "", g)); }
      var grid = el("div", "blf-grid");
      groups[g].forEach(function (e) { grid.appendChild(tile(e)); });
      sec.appendChild(grid); box.appendChild(sec);
    });
    var empty = document.getElementById("blf-empty");
    if (empty) { empty.style.display = msg.extensions.length ? "none" : ""; }
    document.getElementById("blf-count").textContent = document.getElementById("blf-count").textContent.replace(/\d+/, msg.extensions.length);
  }
  function apply(msg, full) {
    offset = msg.now - Date.now() / 1000;
    if (full) { rebuild(msg); }
    else {
      var needRebuild = false;
      msg.changed.forEach(function (e) {
        var t = document.getElementById("ext-" + e.exten);
        if (t) { fill(t, e); } else { needRebuild = true; }
      });
      msg.removed.forEach(function (x) { var t = document.getElementById("ext-" + x); if (t) { t.parentNode.removeChild(t); } });
      if (needRebuild) { fetchFull(); }
    }
    setStale(msg.stale);
    root.setAttribute("data-seq", msg.seq);
    filter(); tick();
  }
  function fetchFull() {
    var x = new XMLHttpRequest();
    x.open("GET", "/blf.json"); x.setRequestHeader("Accept", "application/json");
    x.onload = function () { if (x.status === 200) { apply(JSON.parse(x.responseText), true); } };
    x.send();
  }
  function filter() {
    var q = search.value.trim().toLowerCase(), want = stateSel.value;
    var sections = document.querySelectorAll(".blf-group");
    for (var i = 0; i < sections.length; i++) {
      var tiles = sections[i].querySelectorAll(".tile"), shown = 0;
      for (var j = 0; j < tiles.length; j++) {
        var t = tiles[j], st = t.getAttribute("data-state");
        var text = (t.getAttribute("data-exten") + " " + t.querySelector(".name").textContent).toLowerCase();
        var ok = (!q || text.indexOf(q) >= 0) && (!want || (want === "free" ? FREE[st] : BUSY[st]));
        t.classList.toggle("hidden", !ok); if (ok) { shown++; }
      }
      sections[i].classList.toggle("hidden", tiles.length > 0 && shown === 0);
    }
  }
  search.addEventListener("input", filter);
  stateSel.addEventListener("change", filter);
  setInterval(tick, 1000);
  tick();

  // The browser reconnects by itself after a dropped stream; after a refusal (503: too many viewers,
  // 401: login expired) the EventSource is closed for good, so we open a new one a little later.
  var es, lostTimer = null;
  function connect() {
    es = new EventSource("/blf/events");
    es.addEventListener("snapshot", function (ev) { apply(JSON.parse(ev.data), true); });
    es.addEventListener("update", function (ev) { apply(JSON.parse(ev.data), false); });
    es.onerror = function () {
      if (es.readyState === EventSource.CLOSED) { setStale("offline"); setTimeout(connect, 5000); return; }
      if (!lostTimer) {
        lostTimer = setTimeout(function () { lostTimer = null; if (es.readyState !== EventSource.OPEN) { setStale("offline"); } }, 3000);
      }
    };
  }
  connect();
})();
