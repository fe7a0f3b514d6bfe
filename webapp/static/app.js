// voice2fa page behaviour. No inline scripts: the page runs under a strict CSP.
// htmx does the swapping; this file only counts down "Call me again".
(function () {
  "use strict";

  function startCooldown(button) {
    var seconds = parseInt(button.getAttribute("data-cooldown"), 10);
    if (!(seconds > 0) || button.dataset.counting) return;
    var label = button.textContent;
    button.dataset.counting = "1";
    button.disabled = true;
    function tick() {
      if (!button.isConnected) return;
      if (seconds <= 0) {
        button.disabled = false;
        button.textContent = label;
        delete button.dataset.counting;
        return;
      }
      button.textContent = label + " (" + seconds + " s)";
      seconds -= 1;
      setTimeout(tick, 1000);
    }
    tick();
  }

  function init(root) {
    var buttons = (root || document).querySelectorAll("button[data-cooldown]");
    for (var i = 0; i < buttons.length; i++) startCooldown(buttons[i]);
  }

  function say(text) {
    var status = document.getElementById("status");
    if (!status) return;
    var message = document.createElement("p");
    message.className = "message error";
    message.textContent = text;
    status.replaceChildren(message);
  }

  function onReady() {
    init(document);
    if (window.htmx) {
      htmx.onLoad(init);
      // A 5xx we did not plan for is not swapped: say so instead of doing nothing.
      document.body.addEventListener("htmx:responseError", function () {
        say("Something went wrong on our side. Please try again.");
      });
      document.body.addEventListener("htmx:sendError", function () {
        say("We couldn't reach the server. Check your connection and try again.");
      });
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", onReady);
  else onReady();
})();
