// liveshow pages: local times, the schedule form's time zone, confirmations, photo previews, copy buttons.
(function () {
  "use strict";

  // Times are rendered in UTC on the server; show them in the reader's own time zone.
  document.querySelectorAll("time[data-local-time]").forEach(function (el) {
    var d = new Date(el.getAttribute("datetime"));
    if (isNaN(d)) return;
    el.textContent = d.toLocaleString(undefined, {
      weekday: "short", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
    });
  });

  // datetime-local has no zone: send the browser's offset, and show a stored UTC time locally.
  function pad(n) { return String(n).padStart(2, "0"); }
  document.querySelectorAll("input[data-tz-offset]").forEach(function (el) {
    el.value = String(new Date().getTimezoneOffset());
  });
  document.querySelectorAll("input[type=datetime-local][data-utc]").forEach(function (el) {
    var utc = el.getAttribute("data-utc");
    if (!utc || el.value) return;
    var d = new Date(utc);
    if (isNaN(d)) return;
    el.value = d.getFullYear() + "-" + pad(d.getMonth() + 1) + "-" + pad(d.getDate()) + "T" +
      pad(d.getHours()) + ":" + pad(d.getMinutes());
  });

  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      if (!window.confirm(form.getAttribute("data-confirm"))) ev.preventDefault();
    });
  });

  var input = document.getElementById("photos");
  var preview = document.getElementById("photo-preview");
  if (input && preview) {
    input.addEventListener("change", function () {
      preview.textContent = "";
      Array.prototype.slice.call(input.files, 0, 8).forEach(function (file) {
        var img = document.createElement("img");
        img.alt = file.name;
        img.src = URL.createObjectURL(file);
        preview.appendChild(img);
      });
    });
  }

  var main = document.getElementById("gallery-main");
  document.querySelectorAll(".thumb-button[data-full]").forEach(function (btn) {
    btn.addEventListener("click", function () { if (main) main.src = btn.getAttribute("data-full"); });
  });

  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var target = document.querySelector(btn.getAttribute("data-copy"));
      if (!target) return;
      navigator.clipboard.writeText(target.value).then(function () {
        var label = btn.textContent;
        btn.textContent = "Copied";
        setTimeout(function () { btn.textContent = label; }, 1200);
      });
    });
  });
  document.querySelectorAll("[data-reveal]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var target = document.querySelector(btn.getAttribute("data-reveal"));
      if (!target) return;
      var hidden = target.type === "password";
      target.type = hidden ? "text" : "password";
      btn.textContent = hidden ? "Hide" : "Show";
    });
  });

  // The header badge follows the show's state as the room announces it (the page may predate going live).
  var badge = document.querySelector(".show-head .badge-inline");
  function followState(room) {
    var labels = {live: "● LIVE", reconnecting: "● LIVE", ended: "Ended"};
    function show(state) {
      if (!badge || !labels[state]) return;
      badge.textContent = labels[state];
      badge.className = "badge-inline badge-" + (state === "reconnecting" ? "live" : state);
      var starts = document.querySelector(".show-head time[data-local-time]");
      if (starts && starts.parentNode) starts.parentNode.hidden = true;
    }
    room.on("show.state", function (e) { show(e.state); });
    // A change between rendering the page and (re)joining the room is not replayed: ask once per join.
    function refresh() {
      var id = document.getElementById("show-root").dataset.showId;
      fetch("/api/shows/" + encodeURIComponent(id) + "/media", {headers: {Accept: "application/json"}})
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (info) { if (info) show(info.state); })
        .catch(function () { /* offline for a moment: the next event or join will tell */ });
    }
    room.on("snapshot", refresh);
    refresh();
  }
  if (badge && document.getElementById("show-root")) {
    var tries = 0;
    var wait = setInterval(function () {
      if (window.liveshowRoom) { clearInterval(wait); followState(window.liveshowRoom); }
      else if (++tries > 200) clearInterval(wait);
    }, 50);
  }
})();
