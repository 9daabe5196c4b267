// Live refresh of a page showing a running campaign: reload while the tab is visible and
// no form field has the focus, every data-refresh seconds (the page works without it).
(function () {
  "use strict";
  var seconds = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (!seconds) { return; }
  window.setInterval(function () {
    var active = document.activeElement;
    var typing = active && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName);
    if (document.visibilityState === "visible" && !typing) { window.location.reload(); }
  }, seconds * 1000);
})();
