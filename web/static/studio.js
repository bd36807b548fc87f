// liveshow studio: camera + mic preview, publish through our WHIP endpoint, end the show.
(() => {
  "use strict";
  const root = document.getElementById("studio-media");
  if (!root) return;
  const $ = (id) => document.getElementById(id);
  const showId = root.dataset.showId;
  const preview = $("studio-preview"), errorBox = $("studio-error");
  const cameraSel = $("studio-camera"), micSel = $("studio-mic");
  const goLive = $("studio-go-live"), endBtn = $("studio-end");
  const connEl = $("studio-connection"), rateEl = $("studio-bitrate"), viewersEl = $("studio-viewers");
  const badge = $("studio-state-badge");
  const csrf = document.querySelector('meta[name="csrf-token"]')?.content || "";
  let stream = null, pc = null, session = null, statsTimer = null, lastBytes = 0, lastAt = 0;
  $("studio-whip-url").value = new URL(root.dataset.whipUrl, location.href).href;

  function showError(text) { errorBox.textContent = text; errorBox.hidden = !text; }
  function setBadge(text, live) { badge.textContent = text; badge.classList.toggle("live", !!live); }

  async function openDevices() {
    const constraints = {
      video: cameraSel.value ? { deviceId: { exact: cameraSel.value } } : { width: 1280, height: 720 },
      audio: micSel.value ? { deviceId: { exact: micSel.value } } : true,
    };
    try {
      const next = await navigator.mediaDevices.getUserMedia(constraints);
      if (stream) stream.getTracks().forEach((t) => t.stop());
      stream = next;
      preview.srcObject = stream;
      showError("");
      if (pc) {  // switching devices while live: swap tracks without renegotiating
        for (const sender of pc.getSenders()) {
          const track = stream.getTracks().find((t) => t.kind === sender.track?.kind);
          if (track) await sender.replaceTrack(track);
        }
      }
      await listDevices();
    } catch (err) {
      const refused = err && (err.name === "NotAllowedError" || err.name === "SecurityError");
      showError(refused
        ? "Camera and microphone access was refused. Allow it in the browser's site settings, then reload."
        : `No camera or microphone could be opened (${err && err.name}).`);
      goLive.disabled = true;
    }
  }

  async function listDevices() {
    const devices = await navigator.mediaDevices.enumerateDevices();
    for (const [sel, kind] of [[cameraSel, "videoinput"], [micSel, "audioinput"]]) {
      const current = sel.value || stream?.getTracks().find((t) => kind.startsWith(t.kind))?.getSettings().deviceId;
      sel.replaceChildren(...devices.filter((d) => d.kind === kind).map((d, i) => {
        const opt = new Option(d.label || `${kind === "videoinput" ? "Camera" : "Microphone"} ${i + 1}`, d.deviceId);
        opt.selected = d.deviceId === current;
        return opt;
      }));
    }
  }

  function waitIce(peer) {
    if (peer.iceGatheringState === "complete") return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => { if (peer.iceGatheringState === "complete") resolve(); };
      peer.addEventListener("icegatheringstatechange", done);
      setTimeout(resolve, 2000);  // publish with what we have: the server gathers its own candidates
    });
  }

  async function publish() {
    if (!stream) await openDevices();
    if (!stream) return;
    goLive.disabled = true;
    connEl.textContent = "connecting";
    // The servers the server announces (TURN credentials are fresh for each peer).
    const iceServers = window.liveshowIce ? await window.liveshowIce.forEndpoint(root.dataset.whipUrl) : [];
    pc = new RTCPeerConnection({ iceServers });
    const caps = window.RTCRtpSender?.getCapabilities ? RTCRtpSender.getCapabilities("video").codecs : [];
    // VP8 with three temporal layers where the browser can encode them: the relay then sends a viewer on
    // a narrow link only the layers it carries (fewer frames per second, never a frozen picture).
    // Browsers do not all list scalability modes in their capabilities: ask for L1T3 and see if it stuck.
    // An operator who wants the LL-HLS rendition (H.264 only) sets studio_video = "h264": one layer.
    const wantLayers = root.dataset.video !== "h264";
    let layered = false;
    for (const track of stream.getTracks()) {
      const init = { direction: "sendonly", streams: [stream] };
      let tr = null;
      if (track.kind === "video" && wantLayers) {
        try {
          tr = pc.addTransceiver(track, { ...init, sendEncodings: [{ scalabilityMode: "L1T3" }] });
          layered = (tr.sender.getParameters().encodings || [])[0]?.scalabilityMode === "L1T3";
        } catch (e) {
          tr = null;  // the browser refused the mode: one layer
        }
      }
      if (!tr) tr = pc.addTransceiver(track, init);
      if (track.kind === "video" && tr.setCodecPreferences && caps.length) {
        // The relay forwards what we send. Layered VP8 first when the browser has it; otherwise H.264
        // first (Chromium encodes it in hardware), then VP8.
        const h264 = (c) => /h264/i.test(c.mimeType) && /packetization-mode=1/.test(c.sdpFmtpLine || "") &&
          /profile-level-id=42/.test(c.sdpFmtpLine || "");
        const vp8 = (c) => /vp8/i.test(c.mimeType);
        const rank = (c) => (layered && vp8(c) ? 0 : h264(c) ? 1 : vp8(c) ? 2 : /rtx/i.test(c.mimeType) ? 3 : 4);
        tr.setCodecPreferences(caps.filter((c) => rank(c) < 4).sort((a, b) => rank(a) - rank(b)));
      }
    }
    pc.addEventListener("connectionstatechange", () => {
      connEl.textContent = pc ? pc.connectionState : "not connected";
      if (pc?.connectionState === "connected") setBadge("Live", true);
      if (pc && (pc.connectionState === "failed")) { setBadge("Reconnecting", false); retry(); }
    });
    await pc.setLocalDescription(await pc.createOffer());
    await waitIce(pc);
    const resp = await fetch(root.dataset.whipUrl, {
      method: "POST",
      headers: { "Content-Type": "application/sdp", Authorization: `Bearer ${root.dataset.streamKey}` },
      body: pc.localDescription.sdp,
    });
    if (resp.status !== 201) {
      const body = await resp.json().catch(() => ({}));
      showError(`Could not go live: ${body.reason || resp.status}`);
      pc.close(); pc = null; goLive.disabled = false; connEl.textContent = "not connected";
      return;
    }
    session = new URL(resp.headers.get("Location"), location.href).href;
    await pc.setRemoteDescription({ type: "answer", sdp: await resp.text() });
    statsTimer = setInterval(updateStats, 1000);
  }

  let retries = 0;
  function retry() {
    stopPublishing(false);
    const delay = Math.min(1000 * 2 ** retries++, 15000);
    setTimeout(() => { if (root.dataset.showState !== "ended") publish().catch((e) => showError(String(e))); }, delay);
  }

  function stopPublishing(sendDelete) {
    if (statsTimer) clearInterval(statsTimer);
    statsTimer = null;
    if (sendDelete && session) fetch(session, { method: "DELETE", keepalive: true }).catch(() => {});
    session = null;
    if (pc) pc.close();
    pc = null;
  }

  async function updateStats() {
    if (!pc) return;
    const report = await pc.getStats();
    let bytes = 0;
    report.forEach((s) => { if (s.type === "outbound-rtp") bytes += s.bytesSent; });
    const now = performance.now();
    if (lastAt) rateEl.textContent = `${Math.round(((bytes - lastBytes) * 8) / (now - lastAt))} kbps`;
    lastBytes = bytes; lastAt = now;
    if (pc.connectionState === "connected") retries = 0;
  }

  async function pollViewers() {
    try {
      const resp = await fetch(`/api/shows/${showId}/media`, { headers: { Accept: "application/json" } });
      if (resp.ok) {
        const info = await resp.json();
        if (!fromPresence) viewersEl.textContent = String(info.viewers);
        if (info.state === "ended") ended();
      }
    } catch (_) { /* offline for a moment: try again next tick */ }
  }

  function ended() {
    root.dataset.showState = "ended";
    stopPublishing(false);
    setBadge("Show ended", false);
    goLive.disabled = true; endBtn.disabled = true;
    connEl.textContent = "closed";
  }

  async function endShow() {
    endBtn.disabled = true;
    const resp = await fetch(`/api/shows/${showId}/end`, {
      method: "POST", headers: { "X-CSRF-Token": csrf, Accept: "application/json" },
    });
    if (!resp.ok) {
      const body = await resp.json().catch(() => ({}));
      showError(`Could not end the show: ${body.reason || resp.status}`);
      endBtn.disabled = false;
      return;
    }
    ended();
  }

  goLive.addEventListener("click", () => publish().catch((e) => { showError(String(e)); goLive.disabled = false; }));
  endBtn.addEventListener("click", () => endShow().catch((e) => showError(String(e))));
  cameraSel.addEventListener("change", openDevices);
  micSel.addEventListener("change", openDevices);
  window.addEventListener("pagehide", () => stopPublishing(true));
  // The viewer count comes from the room's presence (every open viewer page, video playing or not) once
  // the room is up; the WHEP count polled below is only a fallback. room.js loads after this script
  // (the room partial comes later in the page), so wait for window.liveshowRoom.
  let fromPresence = false;
  const showPresence = (count) => {
    if (typeof count !== "number") return;
    fromPresence = true;
    viewersEl.textContent = String(Math.max(0, count - 1)); // minus this studio's own socket
  };
  const whenRoom = (fn, tries = 0) => {
    if (window.liveshowRoom) fn(window.liveshowRoom);
    else if (tries < 200) setTimeout(() => whenRoom(fn, tries + 1), 50);
  };
  whenRoom((room) => {
    room.on("snapshot", (frame) => showPresence(frame.presence && frame.presence.count));
    room.on("presence", (frame) => showPresence(frame.count));
    room.on("show.state", (frame) => { if (frame.state === "ended") ended(); });
  });
  if (root.dataset.showState !== "ended") openDevices();
  pollViewers();
  setInterval(pollViewers, 3000);
})();
