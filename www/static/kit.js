// asterisk-kit: small behaviours shared by the pages (the CSP allows no inline script).
"use strict";
document.addEventListener("submit", function (ev) {
  var msg = ev.target.getAttribute && ev.target.getAttribute("data-confirm");
  if (msg && !window.confirm(msg)) { ev.preventDefault(); }
}, true);
(function () {
  var el = document.querySelector("[data-refresh]");
  if (el) {
    var s = parseInt(el.getAttribute("data-refresh"), 10) || 5;
    setTimeout(function () { window.location.reload(); }, s * 1000);
  }
})();
// What was typed in a form survives an ended session: each post saves the form's visible fields in
// this tab's sessionStorage (never passwords, files or the CSRF token); when the session had ended, the
// server sends the user to log in and back to the page with "#ak-restore", and the fields are refilled.
(function () {
  var KEY = "ak-draft:" + window.location.pathname;
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (ev.defaultPrevented || !f.elements || (f.getAttribute("method") || "").toLowerCase() !== "post" ||
        f.id === "login-form") { return; }
    var fields = [];
    Array.prototype.forEach.call(f.elements, function (el) {
      if (!el.name || el.name === "csrf" || /^(password|file|hidden|submit|button)$/.test(el.type)) { return; }
      fields.push([el.name, el.type === "checkbox" || el.type === "radio" ? el.checked : el.value]);
    });
    try {
      window.sessionStorage.setItem(KEY, JSON.stringify({action: f.getAttribute("action"), fields: fields}));
    } catch (e) { /* storage full or disabled: nothing to keep */ }
  });
  if (window.location.hash !== "#ak-restore") { return; }
  window.history.replaceState(null, "", window.location.pathname + window.location.search);
  var draft;
  try { draft = JSON.parse(window.sessionStorage.getItem(KEY) || "null"); } catch (e) { draft = null; }
  window.sessionStorage.removeItem(KEY);
  if (!draft) { return; }
  Array.prototype.forEach.call(document.querySelectorAll("form"), function (f) {
    if (f.getAttribute("action") !== draft.action) { return; }
    draft.fields.forEach(function (nv) {
      var el = f.elements[nv[0]];
      if (!el || el.length !== undefined && !el.tagName) { return; }
      if (el.type === "checkbox" || el.type === "radio") { el.checked = nv[1]; } else { el.value = nv[1]; }
    });
    f.setAttribute("data-restored", "1");
  });
})();
