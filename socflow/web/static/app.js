// socflow analyst UI: a live queue (EventSource), a little polling on a moving case; no framework,
// no build step (CSP: script-src 'self').
(function () {
  "use strict";

  function every(seconds, fn) {
    var ms = Math.max(1, Number(seconds) || 3) * 1000;
    var timer = window.setInterval(function () {
      fn(function stop() { window.clearInterval(timer); });
    }, ms);
  }

  // The live queue: the server pushes the table body over Server-Sent Events when a case or an alert
  // changes; no periodic fetches. EventSource reconnects on its own when the stream ends.
  function liveQueue() {
    var table = document.getElementById("queue");
    var body = document.getElementById("queue-rows");
    if (!table || !body || !window.EventSource) { return; }
    var state = document.getElementById("live-state");
    var source = new EventSource(table.getAttribute("data-events-url"));
    var last = null;
    function mark(text, on) {
      if (!state) { return; }
      state.textContent = text;
      state.className = on ? "live" : "live off";
    }
    source.addEventListener("open", function () { mark("live", true); });
    source.addEventListener("error", function () { mark("reconnecting…", false); });
    source.addEventListener("rows", function (event) {
      mark("live", true);
      if (event.data === last) { return; }
      last = event.data;
      body.innerHTML = event.data; // server-rendered with every value escaped
    });
    window.addEventListener("pagehide", function () { source.close(); });
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
    liveQueue();
    pollCase();
  });
})();
