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

  // htmx's history snapshot is HTML: write the filter form's live values into
  // its attributes, so Back restores a form that matches the results shown.
  function keepFormInSnapshot() {
    var form = document.querySelector("form.filters");
    if (!form) return;
    Array.prototype.forEach.call(form.elements, function (el) {
      if (el.type === "checkbox" || el.type === "radio") el.toggleAttribute("checked", el.checked);
      else if (el.tagName === "SELECT") {
        Array.prototype.forEach.call(el.options, function (o) { o.toggleAttribute("selected", o.selected); });
      } else if (el.tagName === "INPUT") el.setAttribute("value", el.value);
    });
  }

  function onReady() {
    localise(document);
    if (window.htmx) {
      htmx.onLoad(localise);
      // Only when the filter's results arrive: the summary loads on its own
      // afterwards, and by then the form may already hold the next change.
      document.addEventListener("htmx:afterSettle", function (event) {
        if (event.detail && event.detail.target && event.detail.target.id === "results") keepFormInSnapshot();
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onReady);
  else onReady();
})();
