// Replay page: the show's chat and sales follow the video's position (play, seek back, seek forward).
(function () {
  "use strict";
  const root = document.getElementById("replay-root");
  if (!root) return;
  const video = document.getElementById("replay-video");
  const chatList = document.getElementById("replay-chat");
  const salesList = document.getElementById("replay-sales");
  const chapterList = document.getElementById("replay-chapters");
  const card = document.getElementById("replay-card");
  const CHAT = new Set(["chat.message"]);
  const SALES = new Set(["claim.accepted", "bid.accepted", "lot.closed", "order.created"]);
  const MAX_SHOWN = 200;

  let chat = [];      // events sorted by offset_ms
  let sales = [];
  let chapters = [];
  let shownChat = -1; // how many chat events are on screen (those at or before the position)
  let shownSales = -1;

  function clock(ms) {
    const s = Math.floor(ms / 1000);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function money(cents) {
    if (typeof cents !== "number") return "";
    return "$" + (cents / 100).toFixed(2).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  }

  // How many events have offset_ms <= ms (events are sorted): binary search.
  function countUpTo(list, ms) {
    let lo = 0, hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].offset_ms <= ms) lo = mid + 1; else hi = mid;
    }
    return lo;
  }

  function chatItem(ev) {
    const m = ev.data.message || ev.data;
    const li = document.createElement("li");
    li.dataset.offsetMs = ev.offset_ms;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = clock(ev.offset_ms);
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = m.display_name || m.username || "someone";
    const text = document.createElement("span");
    text.className = "text";
    text.textContent = m.text || "";
    li.append(when, who, text);
    return li;
  }

  function saleText(ev) {
    const d = ev.data;
    const lot = d.lot || d;
    const who = d.display_name || d.username || d.buyer_name || d.bidder_name || "";
    const price = money(d.price_cents ?? d.amount_cents ?? lot.price_cents);
    const item = lot.lot_no != null ? "item " + lot.lot_no : "an item";
    switch (ev.type) {
      case "claim.accepted": return (who || "A buyer") + " claimed " + item + (price ? " for " + price : "");
      case "bid.accepted": return (who || "A bidder") + " bid " + (price || "") + " on " + item;
      case "lot.closed": return item.charAt(0).toUpperCase() + item.slice(1) + (d.outcome === "sold" ? " sold" : " closed") + (price ? " at " + price : "");
      case "order.created": return "Order for " + item + (price ? " at " + price : "");
      default: return ev.type;
    }
  }

  function saleItem(ev) {
    const li = document.createElement("li");
    li.dataset.offsetMs = ev.offset_ms;
    li.dataset.type = ev.type;
    const when = document.createElement("span");
    when.className = "when";
    when.textContent = clock(ev.offset_ms);
    li.append(when, document.createTextNode(saleText(ev)));
    return li;
  }

  // Show exactly the events up to the position: append going forward, rebuild when going back.
  function renderList(list, events, shown, count, make) {
    if (count === shown) return shown;
    if (count < shown || shown < 0 || count - shown > MAX_SHOWN) {
      list.replaceChildren(...events.slice(Math.max(0, count - MAX_SHOWN), count).map(make));
    } else {
      for (let i = shown; i < count; i++) list.append(make(events[i]));
      while (list.children.length > MAX_SHOWN) list.firstElementChild.remove();
    }
    list.dataset.shown = String(count);
    list.scrollTop = list.scrollHeight;
    return count;
  }

  function renderChapters() {
    if (!chapters.length) {
      chapterList.replaceChildren(Object.assign(document.createElement("li"), { className: "muted", textContent: "No chapters." }));
      return;
    }
    chapterList.replaceChildren(...chapters.map((ch, i) => {
      const li = document.createElement("li");
      const button = document.createElement("button");
      button.type = "button";
      button.className = "small";
      button.dataset.index = String(i);
      button.dataset.offsetMs = ch.offset_ms;
      const t = document.createElement("span");
      t.className = "time";
      t.textContent = clock(ch.offset_ms);
      button.append(t, document.createTextNode(ch.title));
      button.addEventListener("click", () => seek(ch.offset_ms / 1000));
      li.append(button);
      return li;
    }));
  }

  function currentItem(ms) {
    let current = null;
    for (const ch of chapters) {
      if (ch.offset_ms > ms) break;
      if (ch.kind === "item") current = ch;
      if (ch.kind === "state" && ch.state === "ended") current = null;
    }
    return current;
  }

  function sync() {
    const ms = Math.round(video.currentTime * 1000);
    shownChat = renderList(chatList, chat, shownChat, countUpTo(chat, ms), chatItem);
    shownSales = renderList(salesList, sales, shownSales, countUpTo(sales, ms), saleItem);
    const item = currentItem(ms);
    card.hidden = !item;
    if (item) card.textContent = "On screen: " + item.title;
    for (const b of chapterList.querySelectorAll("button")) {
      b.classList.toggle("current", chapters[+b.dataset.index] === item);
    }
    root.dataset.positionMs = String(ms);
  }

  function seek(seconds) {
    const duration = isFinite(video.duration) ? video.duration : Number(root.dataset.durationMs) / 1000;
    video.currentTime = Math.max(0, Math.min(seconds, duration));
    sync();
  }

  // A chat send retried after a lost answer may have published its stored message twice (two
  // events, one message id): the replay shows it once, where it first appeared.
  function onceById(events) {
    const seen = new Set();
    return events.filter((e) => {
      const id = (e.data.message || e.data).id;
      if (id === undefined || id === null) return true;
      if (seen.has(id)) return false;
      seen.add(id);
      return true;
    });
  }

  async function load() {
    const resp = await fetch(root.dataset.timelineUrl, { headers: { Accept: "application/json" } });
    if (!resp.ok) throw new Error("timeline: HTTP " + resp.status);
    const timeline = await resp.json();
    chat = onceById(timeline.events.filter((e) => CHAT.has(e.type)));
    sales = timeline.events.filter((e) => SALES.has(e.type));
    chapters = timeline.chapters;
    renderChapters();
    const start = Number(root.dataset.start || 0);
    if (start > 0) {
      if (video.readyState >= 1) seek(start); else video.addEventListener("loadedmetadata", () => seek(start), { once: true });
    }
    root.dataset.ready = "1";
    sync();
  }

  for (const type of ["timeupdate", "seeking", "seeked", "play", "loadedmetadata"]) video.addEventListener(type, sync);
  // timeupdate fires about 4 times a second; follow closer while playing.
  let ticking = false;
  function tick() {
    if (video.paused || video.ended) { ticking = false; return; }
    sync();
    setTimeout(tick, 100);
  }
  video.addEventListener("playing", () => { if (!ticking) { ticking = true; tick(); } });

  window.liveshowReplay = { seek, sync, get chat() { return chat; }, get chapters() { return chapters; } };
  load().catch((err) => {
    chapterList.replaceChildren(Object.assign(document.createElement("li"), { className: "error-message", textContent: "Could not load the show's timeline." }));
    console.error(err);
  });
})();
