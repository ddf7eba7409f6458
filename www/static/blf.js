// BLF / operator panel: live updates from /blf/events (Server-Sent Events), search / state filter,
// per key the call (other party, direction, queue, talk time), DND and presence, queues, parked calls,
// missed calls today. Numbers a viewer may not see never reach this page (the server drops them).
"use strict";
(function () {
  var root = document.getElementById("blf");
  if (!root) { return; }
  var L = JSON.parse(document.getElementById("blf-labels").textContent);
  var offset = parseFloat(root.getAttribute("data-now")) - Date.now() / 1000;   // server clock - ours
  var search = document.getElementById("blf-search");
  var stateSel = document.getElementById("blf-state");
  var status = document.getElementById("blf-status");
  // call-back buttons only when dialling is allowed: the server's flag (web/perms.py dial_allowed) or
  // the actions side's own global flag
  function canDial() { return root.getAttribute("data-dial") === "1" || window.akPanelDialAllowed === true; }
  var FREE = { idle: 1 }, BUSY = { inuse: 1, busy: 1, ringing: 1, inuse_ringing: 1, hold: 1, inuse_hold: 1 };
  var queues = {}, parked = {}, parking = null, missed = null;

  function fmt(s) {
    s = Math.max(0, Math.floor(s));
    var h = Math.floor(s / 3600), m = Math.floor(s / 60) % 60, sec = s % 60;
    var mm = (h ? (m < 10 ? "0" : "") : "") + m, ss = (sec < 10 ? "0" : "") + sec;
    return (h ? h + ":" : "") + mm + ":" + ss;
  }
  function clock(ts) {
    var d = new Date((ts - offset) * 1000);
    return (d.getHours() < 10 ? "0" : "") + d.getHours() + ":" + (d.getMinutes() < 10 ? "0" : "") + d.getMinutes();
  }
  function t(key, params) {
    var s = L[key] || key;
    for (var k in (params || {})) { s = s.replace("{" + k + "}", params[k]); }
    return s;
  }
  function tick() {
    var now = Date.now() / 1000 + offset;
    var els = document.querySelectorAll("[data-since]");
    for (var i = 0; i < els.length; i++) {
      var x = els[i], since = parseFloat(x.getAttribute("data-since"));
      var out = x.classList.contains("tile") ? x.querySelector(".since") : x;
      if (!out || isNaN(since)) { continue; }
      out.textContent = (x.getAttribute("data-known") === "0" ? "≥ " : "") + fmt(now - since);
    }
  }
  function setStale(reason) {
    status.setAttribute("data-stale", reason || "");
    status.className = "blf-status" + (reason ? " stale" : "");
    status.textContent = reason ? L["blf.stale." + reason] : L["blf.live"];
    root.className = root.className.replace(/ ?stale-now/, "") + (reason ? " stale-now" : "");
  }
  function el(tag, cls, text) { var e = document.createElement(tag); e.className = cls; e.textContent = text || ""; return e; }
  function who(number, name) {
    // name and number as the server sent them; a number it did not send is "hidden"
    if (name && number && name !== number) { return name + " " + number; }
    return name || number || t("blf.hidden_number");
  }
  function mainCall(calls) {
    var best = null;
    (calls || []).forEach(function (c) {
      if (!best || (c.state === "up" && best.state !== "up")) { best = c; }
    });
    return best;
  }
  function fill(t0, e) {
    var c = mainCall(e.calls);
    t0.setAttribute("data-state", e.state);
    t0.setAttribute("data-dnd", e.dnd ? "1" : "0");
    t0.setAttribute("data-presence", e.presence || "");
    t0.setAttribute("data-calls", (e.calls || []).length);
    if (c && c.answered) {
      t0.setAttribute("data-since", c.answered);                   // talk time: from the answer
      t0.setAttribute("data-known", c.answered_known ? "1" : "0");
    } else {
      t0.setAttribute("data-since", e.since);
      t0.setAttribute("data-known", e.since_known ? "1" : "0");
    }
    t0.querySelector(".name").textContent = e.name || "";
    var st = (e.dnd && !(e.calls || []).length) ? L["blf.dnd"] : (L["state." + e.state] || e.state);
    // presence is the person's status, shown after the state; DND (the DND device) has its own badge
    t0.querySelector(".state").textContent = st + (e.presence ? " · " + (L["presence." + e.presence] || e.presence) : "");
    if (e.dnd) { t0.querySelector(".state").appendChild(el("span", "badge dnd", "DND")); }
    var line = t0.querySelector(".call");
    line.textContent = "";
    if (c) {
      var arrow = el("span", "dir " + c.direction, c.direction === "in" ? "←" : "→");
      arrow.title = L["blf." + c.direction] || c.direction;
      line.appendChild(arrow);
      var p = el("span", "party", who(c.number, c.name));
      line.appendChild(p);
      if (c.queue) { line.appendChild(el("span", "badge queue", t("blf.via_queue", { q: c.queue }))); }
      t0.setAttribute("data-number", c.number || "");
    } else {
      t0.removeAttribute("data-number");
    }
    if (e.presence_message) { t0.title = e.presence_message; } else { t0.removeAttribute("title"); }
  }
  function tile(e) {
    var t0 = document.createElement("div");
    t0.className = "tile"; t0.id = "ext-" + e.exten; t0.setAttribute("data-exten", e.exten);
    t0.appendChild(el("div", "num", e.exten)); t0.appendChild(el("div", "name")); t0.appendChild(el("div", "state"));
    t0.appendChild(el("div", "call")); t0.appendChild(el("div", "since"));
    fill(t0, e);
    return t0;
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
    var count = document.getElementById("blf-count");
    count.textContent = count.textContent.replace(/\d+/, msg.extensions.length);
    queues = {}; parked = {};
    (msg.queues || []).forEach(function (q) { queues[q.queue] = q; });
    (msg.parked || []).forEach(function (p) { parked[p.ref] = p; });
    parking = msg.parking;
  }

  // ---- queues, parked calls, missed calls ----
  function callBack(number) {
    if (!canDial() || !number) { return null; }
    var b = el("button", "call-back", "☎ " + L["blf.call_back"]);
    b.type = "button";
    b.setAttribute("data-number", number);
    b.addEventListener("click", function () {
      if (window.akPanelAction) { window.akPanelAction("dial", number); }
    });
    return b;
  }
  // ---- panel actions: buttons only for what the logged-in user may do (GET /blf/permissions, once;
  // never on a wall screen or for an anonymous viewer). The server checks every action again.
  var me = null;      // {extension, perms: {dial: true, ...}, member: RegExp of the queue interface}
  var RINGING = { ringing: 1, inuse_ringing: 1 };
  var ICON = { dial: "☎", transfer: "⇥", pickup: "⤓", hangup: "✕", pause: "⏸", unpause: "▶" };
  function may(p) { return !!(me && me.perms[p]); }
  function inCall(t0) { return !!t0 && (t0.getAttribute("data-calls") > 0 || !!BUSY[t0.getAttribute("data-state")]); }
  function actButton(kind, title, run) {
    var b = el("button", "act act-" + kind, ICON[kind] + " " + L["blf.act." + kind]);
    b.type = "button"; b.title = title; b.setAttribute("aria-label", title); b.setAttribute("data-act", kind);
    b.addEventListener("click", function (ev) { ev.stopPropagation(); run(); });
    return b;
  }
  function keyActions(t0) {
    var box = t0.querySelector(".acts"), x = t0.getAttribute("data-exten"), want = [];
    if (me) {
      var own = x === me.extension, st = t0.getAttribute("data-state");
      if (own) {
        if (may("hangup") && inCall(t0)) { want.push("hangup"); }
      } else {
        if (may("dial")) { want.push("dial"); }
        if (may("transfer") && inCall(document.getElementById("ext-" + me.extension))) { want.push("transfer"); }
        if (may("pickup") && RINGING[st]) { want.push("pickup"); }
      }
      t0.classList.toggle("own", own);
      t0.draggable = own && may("transfer") && inCall(t0);
    }
    if (!want.length) { if (box) { box.parentNode.removeChild(box); } return; }
    if (box && box.getAttribute("data-acts") === want.join(" ")) { return; }     // unchanged: keep the focus
    if (!box) { box = el("div", "acts"); t0.appendChild(box); }
    box.setAttribute("data-acts", want.join(" "));
    box.textContent = "";
    want.forEach(function (kind) {
      box.appendChild(actButton(kind, t("blf.act." + kind + "_title", { x: x }), function () {
        window.akPanelAction(kind, kind === "hangup" ? "" : x);
      }));
    });
  }
  function refreshActions() {
    var tiles = document.querySelectorAll("#blf-groups .tile");
    for (var i = 0; i < tiles.length; i++) { keyActions(tiles[i]); }
  }
  function memberActions(li, queue, member) {
    var m = me && me.member && me.member.exec(member.interface), x = m && m[1];
    if (!x || !(x === me.extension ? may("queue") : may("queue_others"))) { return; }
    var kind = member.paused ? "unpause" : "pause";
    li.appendChild(actButton(kind, t("blf.act." + kind + "_title", { x: x, q: queue }), function () {
      window.akPanelAction(kind, x === me.extension ? "" : x, { queue: queue });
    }));
  }
  function loadPermissions() {
    if (root.getAttribute("data-actions") !== "1") { return; }
    var x = new XMLHttpRequest();
    x.open("GET", "/blf/permissions"); x.setRequestHeader("Accept", "application/json");
    x.onload = function () {
      if (x.status !== 200) { return; }
      var p = JSON.parse(x.responseText), perms = {};
      root.setAttribute("data-can", p.actions_enabled ? (p.permissions || []).join(" ") : "");
      if (!p.actions_enabled) { return; }
      // without an own extension only another's queue member can be acted on
      (p.permissions || []).forEach(function (k) { if (p.extension || k === "queue_others") { perms[k] = true; } });
      var pat = (p.queue_interface || "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace("\\{exten\\}", "([0-9]+)");
      me = { extension: p.extension || "", perms: perms, member: pat.indexOf("([0-9]+)") >= 0 ? new RegExp("^" + pat + "$") : null };
      var box = document.getElementById("blf-dialbox");
      if (box && may("dial")) {
        box.hidden = false;
        box.addEventListener("submit", function (ev) {
          ev.preventDefault();
          var n = document.getElementById("blf-dial-number").value.replace(/\s+/g, "");
          if (n) { window.akPanelAction("dial", n); }
        });
      }
      refreshActions(); renderQueues();
    };
    x.send();
  }
  // drag the own key (in a call) onto another key: blind transfer there
  (function () {
    var groups = document.getElementById("blf-groups"), dragging = false;
    function target(ev) {
      var t0 = ev.target.closest && ev.target.closest(".tile");
      return dragging && t0 && me && t0.getAttribute("data-exten") !== me.extension ? t0 : null;
    }
    groups.addEventListener("dragstart", function (ev) {
      dragging = !!(ev.target.classList && ev.target.classList.contains("own"));
      if (dragging) { ev.dataTransfer.setData("text/plain", me.extension); ev.dataTransfer.effectAllowed = "move"; }
    });
    groups.addEventListener("dragend", function () { dragging = false; });
    groups.addEventListener("dragover", function (ev) { if (target(ev)) { ev.preventDefault(); } });
    groups.addEventListener("drop", function (ev) {
      var t0 = target(ev);
      if (!t0) { return; }
      ev.preventDefault(); dragging = false;
      window.akPanelAction("transfer", t0.getAttribute("data-exten"));
    });
  })();

  function renderQueues() {
    var box = document.getElementById("blf-queues");
    box.textContent = "";
    Object.keys(queues).sort().forEach(function (name) {
      var q = queues[name], card = el("div", "queue");
      card.id = "queue-" + name; card.setAttribute("data-queue", name);
      card.appendChild(el("h3", "", name));
      var counts = el("p", "counts");
      counts.appendChild(el("span", "answered", L["blf.answered"] + ": " + q.answered));
      counts.appendChild(document.createTextNode(" · "));
      counts.appendChild(el("span", "abandoned", L["blf.abandoned"] + ": " + q.abandoned));
      card.appendChild(counts);
      var w = el("ol", "waiting");
      w.setAttribute("aria-label", L["blf.waiting"]);
      if (!q.waiting.length) { card.appendChild(el("p", "muted none", L["blf.no_waiting"])); }
      q.waiting.forEach(function (c) {
        var li = el("li", "caller");
        li.appendChild(el("span", "pos", c.position + ". "));
        li.appendChild(el("span", "party", who(c.number, c.name)));
        var since = el("span", "wait"); since.setAttribute("data-since", c.since); li.appendChild(since);
        w.appendChild(li);
      });
      if (q.waiting.length) { card.appendChild(w); }
      var m = el("ul", "members");
      m.setAttribute("aria-label", L["blf.members"]);
      q.members.forEach(function (x) {
        var what = x.paused ? "paused" : x.in_queue_call ? "in_call" : x.status === "ringing" ? "ringing"
          : x.busy ? "in_call" : (x.status === "unavailable" || x.status === "invalid") ? "logged_out" : "available";
        var label = what === "ringing" ? L["state.ringing"] : L["blf." + what];
        var li = el("li", "member " + what, (x.name || x.interface) + " — " + label +
                    (x.paused && x.paused_reason ? " (" + x.paused_reason + ")" : ""));
        li.setAttribute("data-member", x.interface);
        memberActions(li, name, x);
        m.appendChild(li);
      });
      card.appendChild(m);
      box.appendChild(card);
    });
    document.getElementById("blf-queues-box").style.display = Object.keys(queues).length ? "" : "none";
  }
  function renderParked() {
    var box = document.getElementById("blf-parked");
    box.textContent = "";
    // null: the daemon runs without the call model ([blf] calls = no): no parking box at all
    document.getElementById("blf-parked-box").style.display = (parking === null || parking === undefined) ? "none" : "";
    if (parking === false) { box.appendChild(el("p", "muted unavailable", L["blf.parking_unavailable"])); return; }
    var refs = Object.keys(parked).sort();
    if (!refs.length) { box.appendChild(el("p", "muted none", L["blf.no_parked"])); return; }
    refs.forEach(function (r) {
      var p = parked[r], row = el("div", "parked");
      row.id = "parked-" + r.replace(/[^\w-]/g, "_"); row.setAttribute("data-ref", r);
      row.appendChild(el("span", "space", t("blf.lot", { space: p.space, lot: p.lot })));
      row.appendChild(el("span", "party", who(p.number, p.name)));
      var since = el("span", "wait"); since.setAttribute("data-since", p.since); row.appendChild(since);
      box.appendChild(row);
    });
  }
  function renderMissed() {
    var box = document.getElementById("blf-missed");
    box.textContent = "";
    if (!missed) { return; }
    document.getElementById("blf-missed-box").style.display = missed.configured === false ? "none" : "";
    if (!missed.available) { box.appendChild(el("p", "muted", L["blf.missed_unavailable"])); return; }
    var any = false;
    [["extensions", ""], ["queues", "queue "]].forEach(function (kind) {
      Object.keys(missed[kind[0]]).sort().forEach(function (ref) {
        var calls = missed[kind[0]][ref];
        if (!calls.length) { return; }
        any = true;
        var card = el("div", "missed"); card.setAttribute("data-ref", kind[1] + ref);
        var tileOf = kind[0] === "extensions" && document.getElementById("ext-" + ref);
        var title = kind[1] + ref + (tileOf ? " " + tileOf.querySelector(".name").textContent : "");
        card.appendChild(el("h3", "", title + " (" + calls.length + ")"));
        var ul = el("ul", "");
        calls.forEach(function (c) {
          var li = el("li", "", clock(c.time) + " " + who(c.number, c.name) + " ");
          var b = callBack(c.number);
          if (b) { li.appendChild(b); }
          ul.appendChild(li);
        });
        card.appendChild(ul); box.appendChild(card);
      });
    });
    if (!any) { box.appendChild(el("p", "muted none", L["blf.no_missed"])); }
  }
  function updateSide() {
    // the keys take the whole width when there is nothing to show beside them (state-only, no CDR)
    var shown = ["blf-queues-box", "blf-parked-box", "blf-missed-box"].some(function (id) {
      return document.getElementById(id).style.display !== "none";
    });
    document.querySelector(".blf-layout").classList.toggle("no-side", !shown);
  }
  function loadMissed() {
    var x = new XMLHttpRequest();
    x.open("GET", "/blf/missed.json"); x.setRequestHeader("Accept", "application/json");
    x.onload = function () { if (x.status === 200) { missed = JSON.parse(x.responseText); renderMissed(); updateSide(); } };
    x.send();
  }

  function apply(msg, full) {
    // a message's `now` is when the server encoded it; one delivered late would pull the clock back
    // and make the times jump, so keep the latest estimate (reset only on a large jump: clock changed)
    var est = msg.now - Date.now() / 1000;
    offset = (est > offset || offset - est > 60) ? est : offset;
    root.setAttribute("data-offset", offset.toFixed(3));
    if (full) { rebuild(msg); }
    else {
      var needRebuild = false;
      msg.changed.forEach(function (e) {
        var t0 = document.getElementById("ext-" + e.exten);
        if (t0) { fill(t0, e); } else { needRebuild = true; }
      });
      msg.removed.forEach(function (x) { var t0 = document.getElementById("ext-" + x); if (t0) { t0.parentNode.removeChild(t0); } });
      (msg.queues || []).forEach(function (q) { queues[q.queue] = q; });
      (msg.queues_removed || []).forEach(function (n) { delete queues[n]; });
      (msg.parked || []).forEach(function (p) { parked[p.ref] = p; });
      (msg.parked_removed || []).forEach(function (r) { delete parked[r]; });
      if ("parking" in msg) { parking = msg.parking; }
      if (needRebuild) { fetchFull(); }
    }
    refreshActions(); renderQueues(); renderParked(); updateSide();
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
    if (!search) { return; }
    var q = search.value.trim().toLowerCase(), want = stateSel.value;
    var sections = document.querySelectorAll(".blf-group");
    for (var i = 0; i < sections.length; i++) {
      var tiles = sections[i].querySelectorAll(".tile"), shown = 0;
      for (var j = 0; j < tiles.length; j++) {
        var t0 = tiles[j], st = t0.getAttribute("data-state");
        var text = (t0.getAttribute("data-exten") + " " + t0.querySelector(".name").textContent).toLowerCase();
        var ok = (!q || text.indexOf(q) >= 0) && (!want || (want === "free" ? FREE[st] : BUSY[st]));
        t0.classList.toggle("hidden", !ok); if (ok) { shown++; }
      }
      sections[i].classList.toggle("hidden", tiles.length > 0 && shown === 0);
    }
  }
  if (search) {
    search.addEventListener("input", filter);
    stateSel.addEventListener("change", filter);
  }
  apply(JSON.parse(document.getElementById("blf-initial").textContent), true);
  setInterval(tick, 1000);
  loadMissed();
  setInterval(loadMissed, 30000);
  // Call back (and any other panel action): POST /blf/action with the page's CSRF token; the server
  // checks the user's permissions, audits and answers; the answer is shown for a few seconds.
  if (!window.akPanelAction) {
    window.akPanelAction = function (action, target, extra) {
      var tok = document.querySelector('input[name="csrf"]');
      var note = document.getElementById("blf-action-note");
      if (!note) {
        note = el("div", "action-note", ""); note.id = "blf-action-note"; note.setAttribute("role", "status");
        document.body.appendChild(note);
      }
      function show(text, ok) {
        note.textContent = text; note.className = "action-note " + (ok ? "ok" : "error");
        clearTimeout(note._t); note._t = setTimeout(function () { note.textContent = ""; note.className = "action-note"; }, 6000);
      }
      return fetch("/blf/action", {method: "POST", credentials: "same-origin",
        headers: {"Content-Type": "application/json", "Accept": "application/json",
                  "X-CSRF-Token": tok ? tok.value : ""},
        body: JSON.stringify(Object.assign({action: action, target: target}, extra || {}))})
        .then(function (r) { return r.json().then(function (j) { return [r.ok, j]; }); })
        .then(function (res) {
          var label = L["blf.act." + action] || action;
          show(res[0] ? "✓ " + label + " " + target : (res[1].error || "error"), res[0]); return res[1];
        })
        .catch(function () { show("error", false); });
    };
  }
  loadPermissions();
  window.akPanelRefreshMissed = loadMissed;     // for the actions side (after a call back) and tests

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
