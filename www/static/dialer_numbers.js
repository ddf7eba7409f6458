// /dialer/c/<id>/numbers: "Replace the list" asks first (the same form's "Add" does not).
"use strict";
document.addEventListener("submit", function (ev) {
  var f = ev.target;
  if (f.id !== "import-form" || !ev.submitter || ev.submitter.value !== "replace") { return; }
  if (!window.confirm(f.getAttribute("data-confirm-replace"))) { ev.preventDefault(); ev.stopImmediatePropagation(); }
}, true);
