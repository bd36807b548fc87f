// liveshow player: WHEP playback, muted autoplay with an unmute button, show states, reconnect with backoff.
(() => {
  "use strict";
  const root = document.getElementById("player");
  if (!root) return;
  const video = document.getElementById("player-video");
  const stateEl = document.getElementById("player-state");
  const unmute = document.getElementById("player-unmute");
  const replay = document.getElementById("player-replay");
  const showId = root.dataset.showId;
  const LABELS = { scheduled: "Starting soon", live: "Live", reconnecting: "Reconnecting…", ended: "Show ended" };
  let state = root.dataset.showState || "scheduled";
  let pc = null, session = null, attempt = 0, timer = null, connecting = false, fullTimer = null;

  function render(text) {
    stateEl.textContent = text || LABELS[state] || state;
    root.dataset.state = state;
    if (replay) replay.hidden = state !== "ended";  // the recording is the way to see it now
  }

  function setState(next) {
    if (state === "ended") return;
    state = next;
    root.dataset.playing = "";
    render();
    if (state === "ended") { close(true); return; }
    if (state === "live" && !pc) schedule(0);
    if (state === "live" && pc?.connectionState === "connected") root.dataset.playing = "1";
  }

  function close(sendDelete) {
    if (sendDelete && session) fetch(session, { method: "DELETE", keepalive: true }).catch(() => {});
    session = null;
    if (pc) pc.close();
    pc = null;
  }

  function schedule(delay) {
    clearTimeout(timer);
    timer = setTimeout(connect, delay);
  }

  function backoff() {
    const delay = Math.min(500 * 2 ** attempt, 10000) * (0.75 + Math.random() / 2);
    attempt += 1;
    schedule(delay);
  }

  function retryAfter(resp, body) {
    const seconds = Math.max(1, parseInt(resp.headers.get("Retry-After"), 10) || 5);
    const until = Date.now() + seconds * 1000;
    clearTimeout(fullTimer);
    const tick = () => {
      if (pc) { render(); return; }  // trying again: the show's own label from here on
      if (state !== "live") return;
      const left = Math.max(1, Math.ceil((until - Date.now()) / 1000));
      render(body.error === "full" ? `Show is full, retrying in ${left} s` : LABELS.reconnecting);
      fullTimer = setTimeout(tick, 1000);
    };
    tick();
    schedule(seconds * 1000 * (1 + Math.random() / 4));
  }

  async function connect() {
    if (connecting || state === "ended") return;
    connecting = true;
    close(true);
    // The servers the server announces (TURN credentials are fresh for each peer).
    const iceServers = window.liveshowIce ? await window.liveshowIce.forEndpoint(root.dataset.whepUrl) : [];
    if (state === "ended") { connecting = false; return; }
    const peer = new RTCPeerConnection({ iceServers });
    pc = peer;
    peer.addTransceiver("video", { direction: "recvonly" });
    peer.addTransceiver("audio", { direction: "recvonly" });
    const media = new MediaStream();
    peer.addEventListener("track", (ev) => {
      media.addTrack(ev.track);
      if (video.srcObject !== media) video.srcObject = media;
      video.play().catch(() => {});
    });
    peer.addEventListener("connectionstatechange", () => {
      if (pc !== peer) return;
      if (peer.connectionState === "connected") attempt = 0;
      if (peer.connectionState === "failed" || peer.connectionState === "closed") {
        if (state !== "ended") { render(LABELS.reconnecting); backoff(); }
      }
    });
    try {
      await peer.setLocalDescription(await peer.createOffer());
      const resp = await fetch(root.dataset.whepUrl, {
        method: "POST", headers: { "Content-Type": "application/sdp" }, body: peer.localDescription.sdp,
      });
      if (resp.status === 201) {
        session = new URL(resp.headers.get("Location"), resp.url || location.href).href;  // after a 307
        await peer.setRemoteDescription({ type: "answer", sdp: await resp.text() });
      } else {
        const body = await resp.json().catch(() => ({}));
        if (body.error === "show_ended") { setState("ended"); return; }
        if (pc === peer) { peer.close(); pc = null; }
        // The server has no room for one more viewer now (or a dependency is down): it says when to
        // come back; a little jitter keeps a crowd refused together from returning together.
        if (resp.status === 503) { retryAfter(resp, body); return; }
        // Not started yet: no retries (a show can be days away); going live reaches us as show.state
        // on the room socket or through the poll, and setState connects then.
        if (body.error === "not_live" && state === "scheduled") return;
        if (body.error === "not_live") { state = "reconnecting"; render(); }
        backoff();
      }
    } catch (_) {
      if (pc === peer) { peer.close(); pc = null; }
      backoff();
    } finally {
      connecting = false;
    }
  }

  video.addEventListener("playing", () => { root.dataset.playing = "1"; unmute.hidden = !video.muted; });
  video.addEventListener("waiting", () => { if (state !== "live") root.dataset.playing = ""; });
  unmute.addEventListener("click", () => { video.muted = false; video.play().catch(() => {}); unmute.hidden = true; });

  async function poll() {
    try {
      const resp = await fetch(`/api/shows/${showId}/media`, { headers: { Accept: "application/json" } });
      if (resp.ok) {
        const info = await resp.json();
        if (info.state !== state) setState(info.state);
      }
    } catch (_) { /* try again on the next tick */ }
  }

  window.liveshowRoom?.on?.("show.state", (frame) => setState(frame.state));
  window.addEventListener("pagehide", () => close(true));
  render();
  if (state === "live") schedule(0);  // a scheduled show connects when it goes live (setState)
  setInterval(() => { if (state !== "ended") poll(); }, 3000);
  window.liveshowPlayer = { get state() { return state; }, get pc() { return pc; } };
})();
