/* liveshow show room: one WebSocket per page, exposed as window.liveshowRoom.
 *
 * API (other features use only this):
 *   liveshowRoom.on(type, fn)      fn(frame) for every event of that type ("*" for all)
 *   liveshowRoom.send(msg)         Promise of the reply frame (rejects with the error frame). A command
 *                                  with a "key" changes state and is answered once per key, so it is
 *                                  sent again with the SAME key, a bounded number of times, when the
 *                                  answer is "unavailable" (after its retry_after_ms) or never came (the
 *                                  socket closed or the wait timed out: on reconnect).
 *   liveshowRoom.newKey()          a fresh client key for such a command
 *   liveshowRoom.serverNow()       server clock estimate in ms (NTP-style sync over the socket)
 *
 * Wire: the server sends {"type":"batch","events":[...]} once per flush tick, plus single frames for
 * replies ("reply_to") and snapshots. Every event has a seq; events at or below the last seq seen are
 * dropped, so a resumed connection never shows anything twice. Reconnects use jittered backoff and
 * resume with ?last_seq=N (the server answers with what was missed, or a fresh snapshot).
 */
(function () {
  "use strict";

  var root = document.getElementById("show-root");
  if (!root || !root.dataset.showId) return;
  var showId = root.dataset.showId;
  var handlers = {};
  var pending = {};
  var nextId = 1;
  var lastSeq = null;
  var socket = null;
  var attempt = 0;
  var stopped = false;
  var offsetMs = 0; // server clock minus local clock
  var bestRtt = Infinity;
  var synced = false;
  var openWaiters = [];
  var RESENDS = 5; // then the last error is the answer
  var resending = 0; // keyed commands waiting to be sent again: the status says "reconnecting…"

  function localNow() { return performance.timeOrigin + performance.now(); }

  function emit(type, frame) {
    [type, "*"].forEach(function (key) {
      (handlers[key] || []).slice().forEach(function (fn) {
        try { fn(frame); } catch (err) { console.error("liveshowRoom handler for " + type, err); }
      });
    });
  }

  function handleFrame(frame) {
    if (frame.reply_to !== undefined && frame.reply_to !== null && pending[frame.reply_to]) {
      var waiter = pending[frame.reply_to];
      delete pending[frame.reply_to];
      clearTimeout(waiter.timer);
      if (frame.type === "error") waiter.reject(frame); else waiter.resolve(frame);
      return;
    }
    if (frame.type === "snapshot") {
      lastSeq = frame.seq;
      attempt = 0;
      emit("snapshot", frame);
      return;
    }
    if (typeof frame.seq === "number") {
      if (lastSeq !== null && frame.seq <= lastSeq) return; // seen already (resume overlap)
      lastSeq = frame.seq;
      attempt = 0;
    }
    emit(frame.type, frame);
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss:" : "ws:";
    var url = scheme + "//" + location.host + "/ws/shows/" + encodeURIComponent(showId) +
      "?last_seq=" + (lastSeq === null ? "" : String(lastSeq));
    socket = new WebSocket(url);
    emit("status", {type: "status", state: "connecting"});
    socket.onopen = function () {
      emit("status", {type: "status", state: "open"});
      openWaiters.splice(0).forEach(function (fn) { fn(); });
      syncClock(5);
    };
    socket.onmessage = function (msg) {
      var data;
      try { data = JSON.parse(msg.data); } catch (err) { return; }
      if (data.type === "batch" && Array.isArray(data.events)) data.events.forEach(handleFrame);
      else handleFrame(data);
    };
    socket.onclose = function (ev) {
      socket = null;
      Object.keys(pending).forEach(function (id) {
        clearTimeout(pending[id].timer);
        pending[id].reject({type: "error", code: "disconnected", reason: "Connection lost."});
        delete pending[id];
      });
      // 4404: no such show; 1008: refused by policy. Retrying would not help.
      if (stopped || ev.code === 4404 || ev.code === 1008) {
        emit("status", {type: "status", state: "closed", code: ev.code});
        return;
      }
      var delay = Math.min(15000, 500 * Math.pow(2, attempt)) * (0.5 + Math.random());
      attempt += 1;
      emit("status", {type: "status", state: "reconnecting", in_ms: Math.round(delay)});
      setTimeout(connect, delay);
    };
  }

  function whenOpen() {
    if (socket && socket.readyState === WebSocket.OPEN) return Promise.resolve();
    return new Promise(function (resolve) { openWaiters.push(resolve); });
  }

  function newKey() {
    var random = window.crypto && crypto.randomUUID ? crypto.randomUUID()
      : Date.now().toString(36) + "-" + Math.random().toString(36).slice(2);
    return "c-" + random;
  }

  function socketStatus() {
    return socket && socket.readyState === WebSocket.OPEN ? "open" : "reconnecting";
  }

  function resendWait(delta) {
    resending += delta;
    if (resending > 0) emit("status", {type: "status", state: "reconnecting", resending: resending});
    else emit("status", {type: "status", state: socketStatus()});
  }

  // Worth sending again with the same key: the server could not take it now, or its answer was lost.
  function answerLost(err) {
    return !!err && (err.code === "unavailable" || err.code === "disconnected" || err.code === "timeout");
  }

  function send(msg) {
    if (!msg || typeof msg.key !== "string") return sendOnce(msg);
    return new Promise(function (resolve, reject) {
      var resent = 0;
      function settle(fn, value) {
        if (resent > 0) resendWait(-1);
        fn(value);
      }
      function attempt() {
        sendOnce(msg).then(function (reply) { settle(resolve, reply); }, function (err) {
          if (!answerLost(err) || resent >= RESENDS) { settle(reject, err); return; }
          if (resent === 0) resendWait(+1);
          resent += 1;
          // "disconnected": sendOnce waits for the reconnect itself; "unavailable" says how long to wait.
          var wait = err.code === "unavailable" ? Math.min(15000, Math.max(100, Number(err.retry_after_ms) || 1000)) : 0;
          // Marked as a resend: the server then looks for the first attempt before anything else.
          msg = Object.assign({}, msg, {resend: true});
          setTimeout(attempt, wait);
        });
      }
      attempt();
    });
  }

  function sendOnce(msg) {
    return whenOpen().then(function () {
      return new Promise(function (resolve, reject) {
        var id = "c" + (nextId++);
        var timer = setTimeout(function () {
          delete pending[id];
          reject({type: "error", code: "timeout", reason: "No answer from the server."});
        }, 10000);
        pending[id] = {resolve: resolve, reject: reject, timer: timer};
        socket.send(JSON.stringify(Object.assign({}, msg, {id: id})));
      });
    });
  }

  // NTP-style: offset = server_ms - midpoint of the round trip; keep the sample with the smallest RTT.
  function syncClock(samples) {
    if (samples <= 0) return;
    var t0 = localNow();
    send({type: "time"}).then(function (reply) {
      var t1 = localNow();
      var rtt = t1 - t0;
      if (rtt <= bestRtt * 1.5 || !synced) {
        if (rtt < bestRtt) bestRtt = rtt;
        offsetMs = reply.server_ms - (t0 + t1) / 2;
        synced = true;
      }
      setTimeout(function () { syncClock(samples - 1); }, 150);
    }, function () { /* retried on the next open */ });
  }
  setInterval(function () { bestRtt = bestRtt * 1.2 + 5; syncClock(3); }, 60000);

  window.liveshowRoom = {
    showId: Number(showId),
    on: function (type, fn) { (handlers[type] = handlers[type] || []).push(fn); },
    off: function (type, fn) {
      handlers[type] = (handlers[type] || []).filter(function (f) { return f !== fn; });
    },
    send: send,
    newKey: newKey,
    serverNow: function () { return localNow() + offsetMs; },
    lastSeq: function () { return lastSeq; },
    clockSynced: function () { return synced; },
    close: function () { stopped = true; if (socket) socket.close(1000); },
    // For tests and debugging: drop the socket as a network failure would.
    _dropConnection: function () { if (socket) socket.close(4000, "test drop"); },
  };

  // ------------------------------------------------------------------ the room's own UI
  var chat = document.getElementById("room-chat");
  if (!chat) { connect(); return; }
  var form = document.getElementById("room-form");
  var input = document.getElementById("room-input");
  var errorBox = document.getElementById("room-error");
  var statusBox = document.getElementById("room-status");
  var viewerCount = document.getElementById("room-viewer-count");
  var pinnedBox = document.getElementById("room-pinned");
  var modPanel = document.getElementById("room-mod");
  var viewersButton = document.getElementById("room-viewers-button");
  var viewerList = document.getElementById("room-viewer-list");
  var shown = new Map(); // message id -> <li>
  // Ids of messages already shown, also those scrolled out: a send retried after a lost answer may
  // publish its stored message a second time, and it must still appear once.
  var seenIds = new Set();
  var MAX_SEEN = 5000;
  var me = {user_id: root.dataset.userId ? Number(root.dataset.userId) : null, role: "anonymous"};
  var MAX_SHOWN = 200;
  var EMOJI = {heart: "❤️", fire: "🔥", clap: "👏", laugh: "😂", wow: "😮"};

  function isStaff() { return me.role === "seller" || me.role === "moderator"; }

  function showError(text) {
    errorBox.textContent = text;
    errorBox.hidden = !text;
    if (text) setTimeout(function () { if (errorBox.textContent === text) showError(""); }, 6000);
  }

  // Everything user-written goes through textContent: never parsed as HTML.
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function renderMessage(m) {
    if (shown.has(m.id) || seenIds.has(m.id)) return;
    seenIds.add(m.id);
    if (seenIds.size > MAX_SEEN) seenIds.delete(seenIds.values().next().value);
    var li = el("li", "room-msg room-role-" + m.role);
    li.dataset.messageId = m.id;
    li.dataset.userId = m.user_id;
    li.appendChild(el("span", "room-author", m.display_name || m.username));
    if (m.role === "seller" || m.role === "moderator") {
      li.appendChild(el("span", "room-badge", m.role === "seller" ? "Seller" : "Mod"));
    }
    li.appendChild(el("span", "room-text", m.text));
    if (isStaff() && m.user_id !== me.user_id) li.appendChild(modMenu(m));
    else if (isStaff()) li.appendChild(modMenu(m, true));
    // Messages arrive in seq order; the id order is the same, so appending keeps the order.
    chat.appendChild(li);
    shown.set(m.id, li);
    while (chat.children.length > MAX_SHOWN) {
      var first = chat.firstElementChild;
      shown.delete(Number(first.dataset.messageId));
      chat.removeChild(first);
    }
    chat.scrollTop = chat.scrollHeight;
  }

  function act(msg) {
    send(Object.assign({key: newKey()}, msg)).catch(function (err) { showError(err.reason || "That did not work."); });
  }

  function modMenu(m, own) {
    var menu = el("details", "room-msg-menu");
    menu.appendChild(el("summary", "", "⋯"));
    var box = el("div", "room-msg-actions");
    function item(label, msg) {
      var b = el("button", "small secondary", label);
      b.type = "button";
      b.addEventListener("click", function () { menu.open = false; act(msg); });
      box.appendChild(b);
    }
    item("Delete", {type: "chat.delete", message_id: m.id});
    item("Pin", {type: "chat.pin", message_id: m.id});
    if (!own) {
      item("Mute 10 min", {type: "mod.mute", user_id: m.user_id, minutes: 10});
      item("Ban", {type: "mod.ban", user_id: m.user_id});
      if (me.role === "seller") item("Make moderator", {type: "mod.appoint", user_id: m.user_id});
    }
    menu.appendChild(box);
    return menu;
  }

  function renderPinned(m) {
    pinnedBox.hidden = !m;
    pinnedBox.querySelector(".room-pinned-author").textContent = m ? (m.display_name || m.username) + ":" : "";
    pinnedBox.querySelector(".room-pinned-text").textContent = m ? m.text : "";
  }

  function burst(counts) {
    var stage = document.querySelector(".stage") || document.getElementById("room");
    var layer = stage.querySelector(".room-bursts");
    if (!layer) { layer = el("div", "room-bursts"); layer.setAttribute("aria-hidden", "true"); stage.appendChild(layer); }
    Object.keys(counts).forEach(function (kind) {
      var n = Math.min(12, counts[kind]);
      for (var i = 0; i < n; i++) {
        var b = el("span", "room-burst", EMOJI[kind] || "❤️");
        b.dataset.kind = kind;
        b.style.left = (60 + Math.random() * 35) + "%";
        b.style.animationDelay = (i * 70) + "ms";
        b.addEventListener("animationend", function (ev) { ev.target.remove(); });
        layer.appendChild(b);
      }
    });
  }

  function setRole(you) {
    me.user_id = you.user_id;
    me.role = you.role;
    modPanel.hidden = !isStaff();
    viewersButton.hidden = !isStaff();
    var signedIn = me.user_id !== null && me.user_id !== undefined;
    input.disabled = !signedIn;
    input.placeholder = signedIn ? "Say something nice…" : "Sign in to chat";
  }

  liveshowRoom.on("status", function (s) {
    if (s.state === "open" && resending > 0) return; // still waiting to send a command again
    statusBox.dataset.state = s.state;
    statusBox.textContent = s.state === "open" ? "live chat" : s.state === "reconnecting" ? "reconnecting…" :
      s.state === "closed" ? "disconnected" : "connecting…";
  });
  liveshowRoom.on("snapshot", function (snap) {
    setRole(snap.you);
    chat.textContent = "";
    shown.clear();
    seenIds.clear();
    (snap.messages || []).forEach(renderMessage);
    renderPinned(snap.pinned);
    viewerCount.textContent = snap.presence ? snap.presence.count : 0;
    document.getElementById("room-slow").value = String(snap.slow_mode || 0);
    if (snap.blocked_words) document.getElementById("room-words").value = snap.blocked_words.join(", ");
  });
  liveshowRoom.on("chat.message", renderMessage);
  liveshowRoom.on("chat.deleted", function (e) {
    var li = shown.get(e.message_id);
    if (li) { li.remove(); shown.delete(e.message_id); }
  });
  liveshowRoom.on("chat.pinned", function (e) { renderPinned(e.message); });
  liveshowRoom.on("presence", function (e) { viewerCount.textContent = e.count; });
  liveshowRoom.on("reaction.burst", function (e) { burst(e.counts || {}); });
  liveshowRoom.on("moderation.moderator", function (e) {
    if (e.user_id === me.user_id) setRole({user_id: me.user_id, role: e.appointed ? "moderator" : "viewer"});
  });
  liveshowRoom.on("moderation.banned", function (e) {
    if (e.user_id === me.user_id && e.banned) showError("You have been banned from this seller's shows.");
  });
  liveshowRoom.on("moderation.muted", function (e) {
    if (e.user_id === me.user_id && e.until_ms > liveshowRoom.serverNow()) {
      showError("You are muted until " + new Date(e.until_ms).toLocaleTimeString() + ".");
    }
  });
  liveshowRoom.on("chat.slow_mode", function (e) { document.getElementById("room-slow").value = String(e.seconds); });
  liveshowRoom.on("moderation.blocked_words", function (e) {
    document.getElementById("room-words").value = e.words.join(", ");
  });
  liveshowRoom.on("error", function (e) { showError(e.reason || "Something went wrong."); });

  // The chat message on its way: its text stays in the input until the server acknowledges it, and
  // pressing Send again for the same text reuses its key, so it can never be stored twice.
  var outgoing = null; // {text, key, busy}
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    var text = input.value.trim();
    if (!text) return;
    if (!outgoing || outgoing.text !== text) outgoing = {text: text, key: newKey(), busy: false};
    if (outgoing.busy) return; // already being sent (and resent until answered)
    var sending = outgoing;
    sending.busy = true;
    send({type: "chat.send", text: text, key: sending.key}).then(function () {
      if (outgoing === sending) outgoing = null;
      if (input.value.trim() === text) input.value = "";
      showError("");
    }, function (err) {
      sending.busy = false;
      showError(err.reason || "Your message was not sent.");
    });
  });
  document.querySelectorAll(".room-react").forEach(function (button) {
    button.addEventListener("click", function () {
      send({type: "reaction", kind: button.dataset.kind}).catch(function (err) { showError(err.reason); });
    });
  });
  document.getElementById("room-slow").addEventListener("change", function (ev) {
    act({type: "mod.slow_mode", seconds: Number(ev.target.value)});
  });
  document.getElementById("room-words-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var wanted = document.getElementById("room-words").value.split(",").map(function (w) {
      return w.trim().toLowerCase();
    }).filter(Boolean);
    send({type: "mod.blocked_words"}).then(function (current) {
      var remove = current.words.filter(function (w) { return wanted.indexOf(w) < 0; });
      var add = wanted.filter(function (w) { return current.words.indexOf(w) < 0; });
      return send({type: "mod.blocked_words", add: add, remove: remove, key: newKey()});
    }).catch(function (err) { showError(err.reason); });
  });
  viewersButton.addEventListener("click", function () {
    send({type: "presence.list"}).then(function (r) {
      modPanel.open = true;
      viewerList.textContent = "";
      r.viewers.forEach(function (v) { viewerList.appendChild(el("li", "", v.display_name + " (@" + v.username + ")")); });
      if (r.anonymous) viewerList.appendChild(el("li", "muted", r.anonymous + " not signed in"));
    }, function (err) { showError(err.reason); });
  });

  connect();
})();
