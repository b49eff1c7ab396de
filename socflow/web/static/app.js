// socflow analyst UI: a few lines of polling, no framework, no build step (CSP: script-src 'self').
(function () {
  "use strict";

  function every(seconds, fn) {
    var ms = Math.max(1, Number(seconds) || 3) * 1000;
    var timer = window.setInterval(function () {
      fn(function stop() { window.clearInterval(timer); });
    }, ms);
  }

  // The queue: re-read the table body so new cases appear without a reload.
  function pollQueue() {
    var table = document.getElementById("queue");
    var body = document.getElementById("queue-rows");
    if (!table || !body) { return; }
    var url = table.getAttribute("data-poll-url");
    var last = null;
    every(table.getAttribute("data-poll-seconds"), function (stop) {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (resp) {
          if (!resp.ok || resp.redirected) { stop(); return null; }
          return resp.text();
        })
        .then(function (html) {
          if (html === null || html === last) { return; }
          last = html;
          body.innerHTML = html; // server-rendered with every value escaped
        })
        .catch(function () { /* a missed poll is retried on the next tick */ });
    });
  }

  // A case with a run in progress: reload when a run or the case moves.
  function pollCase() {
    var page = document.getElementById("case-page");
    if (!page || page.getAttribute("data-active") !== "true") { return; }
    var note = document.getElementById("run-progress");
    if (note) { note.hidden = false; }
    var url = page.getAttribute("data-state-url");
    var first = null;
    every(page.getAttribute("data-poll-seconds"), function (stop) {
      fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
        .then(function (resp) { return resp.ok ? resp.text() : null; })
        .then(function (text) {
          if (text === null) { stop(); return; }
          if (first === null) { first = text; return; }
          if (text !== first) { stop(); window.location.reload(); }
        })
        .catch(function () { /* retried on the next tick */ });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    pollQueue();
    pollCase();
  });
})();
