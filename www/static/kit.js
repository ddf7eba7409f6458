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
