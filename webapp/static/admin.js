// Operators' pages: show times in the operator's local time (UTC stays in the tooltip).
// No inline scripts: the pages run under a strict CSP.
(function () {
  "use strict";
  var format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });

  function localise(root) {
    var times = (root || document).querySelectorAll("time[datetime]");
    for (var i = 0; i < times.length; i++) {
      var when = new Date(times[i].getAttribute("datetime"));
      if (!isNaN(when)) times[i].textContent = format.format(when);
    }
  }

  function onReady() {
    localise(document);
    if (window.htmx) htmx.onLoad(localise);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onReady);
  else onReady();
})();
