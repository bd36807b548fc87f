// Social: like and follow buttons, the notice bell with live toasts, Web Push opt-in, notice preferences.
// Loaded by several partials on one page: the guard keeps it to one instance.
(function () {
  "use strict";
  if (window.liveshowSocial) return;
  const csrf = () => (document.querySelector('meta[name="csrf-token"]') || {}).content || "";

  async function api(method, url, body) {
    const resp = await fetch(url, {
      method,
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf(), Accept: "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw Object.assign(new Error(data.reason || resp.statusText), { status: resp.status, data });
    return data;
  }

  // ------------------------------------------------------------ toasts
  let toastBox = null;
  const recentToasts = new Map();
  function toast(text, url) {
    const now = Date.now();
    if (recentToasts.has(text) && now - recentToasts.get(text) < 30000) return; // room + poll: show once
    recentToasts.set(text, now);
    if (!toastBox) {
      toastBox = document.createElement("div");
      toastBox.className = "social-toasts";
      toastBox.setAttribute("role", "status");
      toastBox.setAttribute("aria-live", "polite");
      document.body.appendChild(toastBox);
    }
    const el = document.createElement(url ? "a" : "div");
    el.className = "social-toast";
    el.textContent = text;
    if (url) el.href = url;
    toastBox.appendChild(el);
    setTimeout(() => el.remove(), 8000);
  }

  // ------------------------------------------------------------ likes and follows
  document.addEventListener("click", async (ev) => {
    const like = ev.target.closest("[data-like-listing]");
    const fol = ev.target.closest("[data-follow-seller]");
    const btn = like || fol;
    if (!btn || btn.disabled) return;
    ev.preventDefault();
    if (btn.dataset.signin) { location.href = "/signin?next=" + encodeURIComponent(location.pathname); return; }
    const on = btn.getAttribute("aria-pressed") !== "true";
    btn.disabled = true;
    try {
      if (like) {
        const r = await api("POST", `/api/listings/${like.dataset.likeListing}/like`, { liked: on });
        document.querySelectorAll(`[data-like-listing="${like.dataset.likeListing}"]`).forEach((b) => {
          b.setAttribute("aria-pressed", String(r.liked));
          b.classList.toggle("on", r.liked);
          const c = b.querySelector("[data-like-count]");
          if (c) c.textContent = r.count;
        });
      } else {
        const name = fol.dataset.followSeller;
        const r = await api("POST", `/api/sellers/${encodeURIComponent(name)}/follow`, { following: on });
        document.querySelectorAll(`[data-follow-seller="${name}"]`).forEach((b) => {
          b.setAttribute("aria-pressed", String(r.following));
          b.classList.toggle("on", r.following);
          b.querySelector(".label").textContent = r.following ? "Following" : "Follow";
        });
        document.querySelectorAll(`[data-follower-count="${name}"]`).forEach((c) => (c.textContent = r.followers));
      }
    } catch (err) {
      toast(err.message);
    } finally {
      btn.disabled = false;
    }
  });

  // ------------------------------------------------------------ the bell
  const bell = document.getElementById("notice-bell");
  let lastId = null;
  function setUnread(n) {
    if (!bell) return;
    bell.dataset.unread = n;
    const badge = bell.querySelector("[data-unread-badge]");
    badge.textContent = n;
    badge.hidden = !n;
  }
  async function poll() {
    try {
      const r = await api("GET", `/api/notices?after=${lastId || 0}`);
      const fresh = r.notices.filter((n) => lastId !== null && n.id > lastId);
      fresh.reverse().forEach((n) => !n.read && toast(n.text, n.url));
      if (r.notices.length) lastId = Math.max(lastId || 0, ...r.notices.map((n) => n.id));
      else if (lastId === null) lastId = 0;
      setUnread(r.unread);
    } catch (err) { /* signed out or offline: try again later */ }
  }
  if (bell) {
    poll();
    setInterval(poll, 4000);
  }
  // Inside a show, the room socket brings private notices at once.
  function hookRoom() {
    if (!window.liveshowRoom) return false;
    window.liveshowRoom.on("notice", (frame) => {
      if (!frame.text) return; // other features' private notices carry their own UI
      toast(frame.text, frame.url);
      poll();
    });
    return true;
  }
  if (!hookRoom()) document.addEventListener("DOMContentLoaded", hookRoom);

  // ------------------------------------------------------------ notifications page
  const readAll = document.getElementById("notices-read-all");
  if (readAll) readAll.addEventListener("click", async () => {
    const r = await api("POST", "/api/notices/read", {});
    setUnread(r.unread);
    document.querySelectorAll(".notice.unread").forEach((li) => li.classList.remove("unread"));
  });
  const prefs = document.getElementById("notice-prefs");
  if (prefs) prefs.addEventListener("change", async (ev) => {
    const box = ev.target;
    try {
      await api("PUT", "/api/notices/preferences", { preferences: { [box.name]: box.checked } });
      const saved = prefs.querySelector("[data-prefs-saved]");
      saved.hidden = false;
      setTimeout(() => (saved.hidden = true), 1500);
    } catch (err) { box.checked = !box.checked; toast(err.message); }
  });
  const pushBtn = document.getElementById("push-enable");
  if (pushBtn) pushBtn.addEventListener("click", async () => {
    const status = document.querySelector("[data-push-status]");
    if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
      status.textContent = "This browser does not support push notifications.";
      return;
    }
    try {
      const reg = await navigator.serviceWorker.register("/sw.js");
      const key = pushBtn.dataset.vapidKey.replace(/-/g, "+").replace(/_/g, "/");
      const raw = Uint8Array.from(atob(key + "=".repeat((4 - (key.length % 4)) % 4)), (c) => c.charCodeAt(0));
      const sub = await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: raw });
      await api("POST", "/api/push/subscriptions", sub.toJSON());
      status.textContent = "Push notifications are on for this browser.";
    } catch (err) {
      status.textContent = "Could not turn on push: " + err.message;
    }
  });

  // ------------------------------------------------------------ shop the look (in a show)
  const look = document.getElementById("shop-the-look");
  const lookOrLike = look || document.getElementById("item-like");
  function esc(s) { const d = document.createElement("div"); d.textContent = s; return d.innerHTML; }
  const itemLike = document.getElementById("item-like");
  async function showItemLike(listingId) {
    if (!itemLike || !listingId) return;
    const btn = itemLike.querySelector("[data-like-listing]");
    btn.dataset.likeListing = listingId;
    try {
      const r = await api("GET", `/api/listings/${listingId}/likes`);
      btn.setAttribute("aria-pressed", String(r.liked));
      btn.classList.toggle("on", r.liked);
      btn.querySelector("[data-like-count]").textContent = r.count;
      const me = (document.getElementById("show-root") || { dataset: {} }).dataset;
      btn.disabled = !!me.sellerId && me.sellerId === me.userId;
      itemLike.hidden = false;
    } catch (err) { itemLike.hidden = true; }
  }
  async function showLook(listingId) {
    showItemLike(listingId);
    if (!look || !listingId) return;
    try {
      const r = await api("GET", `/api/listings/${listingId}/similar?scope=seller&limit=4`);
      const box = look.querySelector("[data-look-items]");
      box.innerHTML = r.listings.map((x) => `<a class="card" href="${esc(x.url)}" target="_blank">` +
        `<div class="title">${esc(x.title)}</div><div class="price">$${(x.price_cents / 100).toFixed(2)}</div></a>`).join("");
      look.hidden = !r.listings.length;
    } catch (err) { look.hidden = true; }
  }
  function hookLook() {
    if (!lookOrLike || !window.liveshowRoom) return false;
    // The auction sends the item card as {"lot": {"listing_id": ...}}.
    window.liveshowRoom.on("lot.opened", (frame) => showLook((frame.lot || frame).listing_id));
    return true;
  }
  if (!hookLook()) document.addEventListener("DOMContentLoaded", hookLook);

  // ------------------------------------------------------------ offers
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-accept-offer]");
    if (!btn) return;
    btn.disabled = true;
    try {
      const r = await api("POST", `/api/offers/${btn.dataset.acceptOffer}/accept`, {});
      btn.replaceWith(Object.assign(document.createElement("a"), { href: "/orders", textContent: "Accepted: see your order #" + r.order_id }));
    } catch (err) { toast(err.message); btn.disabled = false; }
  });
  document.addEventListener("submit", async (ev) => {
    const form = ev.target.closest("[data-offer-listing]");
    if (!form) return;
    ev.preventDefault();
    const status = form.querySelector("[data-offer-status]");
    const cents = Math.round(parseFloat(form.price.value) * 100);
    try {
      const r = await api("POST", `/api/listings/${form.dataset.offerListing}/offers`,
        { price_cents: cents, minutes: parseInt(form.hours.value, 10) * 60 });
      status.textContent = `Sent to ${r.offers.length}.`;
    } catch (err) { status.textContent = err.message; }
  });

  // ------------------------------------------------------------ first-sale path: share the show
  document.addEventListener("click", async (ev) => {
    const btn = ev.target.closest("[data-share-show]");
    if (!btn) return;
    const url = `${location.origin}/shows/${btn.dataset.shareShow}`;
    try {
      if (navigator.share) await navigator.share({ title: "Watch my live show", url });
      else await navigator.clipboard.writeText(url);
    } catch (err) { /* the share sheet was closed: the link still counts as shown */ }
    try {
      await api("POST", `/api/shows/${btn.dataset.shareShow}/shared`, {});
      toast("Link copied: " + url);
      setTimeout(() => location.reload(), 1200);
    } catch (err) { toast(err.message); }
  });

  // ------------------------------------------------------------ giveaways (room socket)
  const give = document.getElementById("giveaway");
  const giveHost = document.getElementById("giveaway-host");
  let openGiveaway = null;
  function hookGiveaway() {
    if (!give || !window.liveshowRoom) return false;
    const room = window.liveshowRoom;
    const text = give.querySelector("[data-giveaway-text]");
    const enter = give.querySelector("[data-giveaway-enter]");
    const proof = give.querySelector("[data-giveaway-proof]");
    room.on("giveaway.started", (f) => {
      openGiveaway = f.giveaway_id;
      give.hidden = false;
      text.textContent = `Giveaway: ${f.title}. Tap to enter!`;
      enter.hidden = !!(giveHost);
      enter.disabled = false;
      proof.hidden = false;
      proof.textContent = `Seed commitment (sha256): ${f.seed_sha256}`;
      if (giveHost) giveHost.querySelector("[data-giveaway-draw]").disabled = false;
    });
    room.on("giveaway.entries", (f) => {
      if (f.giveaway_id === openGiveaway && giveHost) {
        giveHost.querySelector("[data-giveaway-host-status]").textContent = `${f.count} entered`;
      }
    });
    room.on("giveaway.drawn", (f) => {
      openGiveaway = null;
      give.hidden = false;
      enter.hidden = true;
      const me = (document.getElementById("show-root") || {}).dataset || {};
      text.textContent = String(f.winner_id) === me.userId ? "You won the giveaway!" : `Winner: @${f.winner}`;
      proof.textContent = `Seed ${f.seed}; entrants ${f.entrants.join(",")}; ${f.algorithm}`;
      if (giveHost) giveHost.querySelector("[data-giveaway-draw]").disabled = true;
    });
    enter.addEventListener("click", async () => {
      enter.disabled = true;
      try {
        await room.send({ type: "giveaway.enter" });
        enter.textContent = "You're in!";
      } catch (err) {
        enter.disabled = err.code === "already_entered";
        toast(err.reason || "Could not enter");
      }
    });
    return true;
  }
  if (!hookGiveaway()) document.addEventListener("DOMContentLoaded", hookGiveaway);
  if (giveHost) {
    const status = giveHost.querySelector("[data-giveaway-host-status]");
    giveHost.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try {
        const r = await api("POST", `/api/shows/${giveHost.dataset.showId}/giveaways`,
          { listing_id: parseInt(giveHost.listing_id.value, 10) });
        openGiveaway = r.id;
        giveHost.querySelector("[data-giveaway-draw]").disabled = false;
        status.textContent = "Giveaway open";
      } catch (err) { status.textContent = err.message; }
    });
    giveHost.querySelector("[data-giveaway-draw]").addEventListener("click", async () => {
      if (!openGiveaway) return;
      try {
        const r = await api("POST", `/api/giveaways/${openGiveaway}/draw`, {});
        status.textContent = `Winner: @${r.winner}`;
      } catch (err) { status.textContent = err.message; }
    });
  }

  window.liveshowSocial = { showLook,  api, toast, poll };
})();
