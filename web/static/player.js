// liveshow player: WHEP playback, muted autoplay with an unmute button, show states, reconnect with backoff;
// LL-HLS over plain HTTP when WebRTC is refused (503) or keeps failing (see the HLS fallback below).
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
  const DISCONNECTED_MS = 1500;
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
    if (state === "ended") { close(true); stopHls(); return; }
    if (state === "live" && hlsOn) { playHls(); return; }
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
    // Only while the show is live: a publisher reconnecting (not_live) is no reason to leave WebRTC.
    if (attempt >= WEBRTC_TRIES && state === "live" && fallBackToHls("failed")) return;
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
    if ((hlsOn || FORCE_HLS) && fallBackToHls("forced")) return;
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
      if (peer.connectionState === "connected") {
        // Playing: the show's own label at once (a "full, retrying" countdown stops here).
        attempt = 0; clearTimeout(fullTimer); render(); showMode("live, sub-second");
      }
      if (peer.connectionState === "failed" || peer.connectionState === "closed") {
        if (state !== "ended") { render(LABELS.reconnecting); backoff(); }
      }
      // A server process that died answers nothing: the browser says "disconnected" within seconds
      // but "failed" only after ICE consent runs out (30 s). Still disconnected a moment later: start
      // over, and the proxy hands the new offer to a process that is alive (any serves any show).
      if (peer.connectionState === "disconnected") {
        setTimeout(() => {
          if (pc === peer && peer.connectionState === "disconnected" && state !== "ended") {
            render(LABELS.reconnecting);
            backoff();
          }
        }, DISCONNECTED_MS);
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
        if (resp.status === 503 && fallBackToHls("full")) { if (pc === peer) { peer.close(); pc = null; } return; }
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
  // ---------------------------------------------------------------- HLS fallback
  // The server also serves each live H.264 show as LL-HLS (fMP4 parts of ~200 ms) that HTTP caches carry
  // to any audience. hls.js (vendored under /static/vendor/hls.js, see its README) plays it through MSE
  // with low-latency mode (blocking playlist reloads, parts); a browser without MSE (iPhone Safari) plays
  // it natively. hls.js comes first where both exist: Chromium now answers "maybe" for native HLS too,
  // without LL-HLS parts. "?hls" in the page URL forces this mode (tests, and viewers on networks that
  // block WebRTC).
  const FORCE_HLS = new URLSearchParams(location.search).has("hls");
  const WEBRTC_TRIES = 3;  // consecutive WebRTC failures before HLS
  const HLS_JS = "/static/vendor/hls.js/hls.min.js";  // hls.js 1.6.15
  const modeEl = document.getElementById("player-mode");
  let hlsOn = false, hls = null, hlsRetry = null, modeTimer = null;

  function showMode(text) {
    if (!modeEl) return;
    modeEl.textContent = text;
    modeEl.hidden = !text;
    root.dataset.mode = hlsOn ? "hls" : "webrtc";
  }

  function loadHlsJs() {
    if (window.Hls) return Promise.resolve(true);
    return new Promise((resolve) => {
      const script = document.createElement("script");
      script.src = HLS_JS;
      script.onload = () => resolve(Boolean(window.Hls));
      script.onerror = () => resolve(false);
      document.head.appendChild(script);
    });
  }

  // Returns true when the player is (now) in HLS mode, so the caller stops its WebRTC attempt.
  function fallBackToHls(reason) {
    if (!root.dataset.hlsUrl) return false;
    if (!hlsOn) { hlsOn = true; root.dataset.hlsReason = reason; clearTimeout(timer); close(true); }
    if (state === "live" || state === "reconnecting") playHls();
    return true;
  }

  async function playHls() {
    if (hls || video.dataset.hls === "native" || state === "ended") return;
    clearTimeout(hlsRetry);
    video.srcObject = null;
    // Behind a proxy, any process answers 307 to the one holding the show: follow it once here, so
    // the player's many playlist reloads and parts go there directly (a new holder: a fatal error,
    // and this runs again).
    const url = await fetch(root.dataset.hlsUrl).then((r) => (r.ok ? r.url : root.dataset.hlsUrl),
      () => root.dataset.hlsUrl);
    if (window.MediaSource && await loadHlsJs() && window.Hls.isSupported()) {
      if (hls || state === "ended") return;
      // Aim 1 s behind the live edge (the playlist's PART-HOLD-BACK); after a stall play up to 1.5x to get
      // back there, and more than 6 s behind jump to the edge: bids and claims happen now (hls.js would
      // otherwise stay wherever a stall left it).
      const player = new window.Hls({
        lowLatencyMode: true, backBufferLength: 30, maxLiveSyncPlaybackRate: 1.5,
        liveSyncDuration: 1, liveMaxLatencyDuration: 6,
      });
      hls = player;
      player.on(window.Hls.Events.ERROR, (_, data) => {
        if (!data.fatal || hls !== player) return;
        // Not live here yet, or the show moved: start over in a moment (the room says when it ends).
        player.destroy(); hls = null;
        if (state !== "ended") { render(LABELS.reconnecting); hlsRetry = setTimeout(playHls, 2000); }
      });
      player.loadSource(url);
      player.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.dataset.hls = "native";
      video.src = url;
    } else {
      render("This browser cannot play the show");
      return;
    }
    video.play().catch(() => {});
    clearInterval(modeTimer);
    modeTimer = setInterval(updateHlsMode, 1000);
  }

  function updateHlsMode() {
    let delay = hls ? hls.latency : NaN;
    if (!hls && video.seekable.length) delay = video.seekable.end(video.seekable.length - 1) - video.currentTime;
    if (Number.isFinite(delay) && delay > 0) showMode(`live, ~${Math.max(1, Math.round(delay))} s delay`);
  }

  function stopHls() {
    clearTimeout(hlsRetry);
    clearInterval(modeTimer);
    if (hls) { hls.destroy(); hls = null; }
    if (video.dataset.hls === "native") { video.removeAttribute("src"); video.load(); delete video.dataset.hls; }
    showMode("");
  }

  window.liveshowPlayer = {
    get state() { return state; }, get pc() { return pc; },
    get mode() { return hlsOn ? "hls" : "webrtc"; }, get hls() { return hls; },
  };
})();
