// auction: the item card (viewers) and host controls (studio). Talks only through window.liveshowRoom:
// on(type, fn), send(msg) -> Promise<reply>, serverNow(). Amounts are integer cents on the wire.
(function () {
  "use strict";
  if (window.__liveshowAuction) return; // the script may be included by both partials
  window.__liveshowAuction = true;

  const money = (c) => "$" + (Math.floor(c / 100)).toLocaleString() + "." + String(c % 100).padStart(2, "0");
  const newKey = () => "w-" + (crypto.randomUUID ? crypto.randomUUID() : Date.now() + "-" + Math.random().toString(16).slice(2));
  // "12", "12.5", "12.50" dollars -> cents, string-wise (no float rounding); null when not an amount.
  function toCents(text) {
    const m = /^\s*\$?(\d{1,7})(?:\.(\d{1,2}))?\s*$/.exec(text || "");
    if (!m) return null;
    return parseInt(m[1], 10) * 100 + parseInt((m[2] || "0").padEnd(2, "0"), 10);
  }

  function whenRoom(fn) {
    if (window.liveshowRoom) return fn(window.liveshowRoom);
    let tries = 0;
    const t = setInterval(() => {
      if (window.liveshowRoom) { clearInterval(t); fn(window.liveshowRoom); }
      else if (++tries > 200) clearInterval(t);
    }, 50);
  }

  // Send with an idempotency key; a lost reply is retried with the SAME key (never a second order):
  // room.send itself resends a keyed command while the server answers "unavailable" or the socket
  // drops before the answer (showing "reconnecting…"); a busy writer is asked again here.
  async function sendOnce(room, msg, attempts) {
    msg.key = msg.key || newKey();
    for (let i = 0; ; i++) {
      try { return await room.send(msg); }
      catch (err) {
        if (!(err && err.code === "writer_unavailable") || i >= (attempts || 3)) throw err;
      }
    }
  }

  function setupCard(room, card) {
    const $ = (s) => card.querySelector(s);
    const me = card.dataset.userId ? parseInt(card.dataset.userId, 10) : null;
    const isSeller = me !== null && String(me) === card.dataset.sellerId;
    let lot = null;

    function render() {
      if (!lot || lot.state === "cancelled") { card.hidden = true; return; }
      card.hidden = false;
      $(".item-title").textContent = lot.title || "Item";
      $(".item-size").textContent = lot.size ? "Size " + lot.size : "";
      const photo = $(".item-photo");
      if (lot.photo_url) { photo.src = lot.photo_url; photo.hidden = false; } else photo.hidden = true;
      const open = lot.state === "open";
      const claimBtn = $(".claim-button"), bidBtn = $(".bid-button"), form = $(".max-bid");
      // The host sees the card as viewers do (price, leader, countdown) but has nothing to buy.
      $(".item-actions").hidden = isSeller;
      if (lot.kind === "claim") {
        $(".item-price").textContent = money(lot.price_cents);
        $(".item-status").textContent = lot.remaining > 0 ? lot.remaining + " left" : "Sold out";
        claimBtn.hidden = false; claimBtn.disabled = !open || lot.remaining <= 0 || isSeller || me === null;
        bidBtn.hidden = true; form.hidden = true;
        $(".item-countdown").hidden = true;
      } else {
        $(".item-price").textContent = money(lot.price_cents);
        const leader = lot.leader || (lot.leader_id ? "#" + lot.leader_id : null);
        $(".item-status").textContent = lot.bids ? "Current bid " + money(lot.price_cents) + " · " + leader
          : "Starting bid " + money(lot.start_cents);
        // Once the auction is over there is nothing left to bid on: the card only tells who won.
        claimBtn.hidden = true; bidBtn.hidden = !open; form.hidden = !open;
        form.querySelector("input").placeholder = "min " + money(lot.next_min_cents).slice(1);
        bidBtn.textContent = "Bid " + money(lot.next_min_cents);
        bidBtn.setAttribute("aria-label", "Bid " + money(lot.next_min_cents));
        bidBtn.title = "Bid " + money(lot.next_min_cents);
        bidBtn.dataset.amount = lot.next_min_cents;
        bidBtn.disabled = !open || isSeller || me === null;
        $(".item-countdown").hidden = !open;
        if (!open) $(".item-status").textContent = lot.winner_id ? "Sold to " + (lot.winner || "#" + lot.winner_id) + " for " + money(lot.price_cents)
          // its unit went to an offer, a replay purchase or a giveaway while it ran: nobody won it here
          : lot.outcome === "sold_elsewhere" ? "Sold elsewhere" : "Closed";
      }
    }

    function tick() {
      if (lot && lot.kind === "auction" && lot.state === "open") {
        const left = Math.max(0, lot.ends_at_ms - room.serverNow());
        $(".item-seconds").textContent = (left / 1000).toFixed(1);
        $(".item-countdown").classList.toggle("ending", left < 10000);
      }
    }
    setInterval(tick, 100);

    // A notice, and where to go next when there is somewhere (a win or a claim: the orders page).
    const notice = (text, href, label) => {
      const el = $(".item-notice");
      el.textContent = text;
      if (href) {
        const a = document.createElement("a");
        a.href = href; a.textContent = label;
        el.append(" ", a);
      }
    };
    const fail = (err) => notice((err && err.reason) || "Something went wrong; try again.");

    room.on("lot.opened", (e) => { lot = e.lot; notice(""); render(); });
    room.on("lot.updated", (e) => { lot = e.lot; render(); });
    room.on("lot.closed", (e) => {
      lot = Object.assign({}, e.lot, { winner_id: e.winner_id, winner: e.winner });
      if (e.outcome === "sold_out") notice("Sold out!");
      else if (e.outcome === "sold_elsewhere") notice("Sold elsewhere before the auction ended: no order was made.");
      render();
    });
    room.on("claim.accepted", (e) => {
      if (lot && lot.lot_no === e.lot_no) { lot.remaining = e.remaining; render(); }
    });
    room.on("bid.accepted", (e) => {
      if (lot && lot.lot_no === e.lot_no) {
        Object.assign(lot, { price_cents: e.price_cents, leader_id: e.leader_id, leader: e.leader,
          ends_at_ms: e.ends_at_ms, bids: e.bids, next_min_cents: e.next_min_cents });
        render();
      }
    });
    room.on("notice", (e) => {
      if (e.kind === "outbid") notice("You were outbid: now " + money(e.price_cents));
      else if (e.kind === "won") notice("You won it for " + money(e.price_cents) + "!", "/orders", "Pay in your orders");
      else if (e.reason) notice(e.reason);
    });

    // One claim at a time from this card: a second tap while the first is still being (re)sent would
    // carry a new key, and so claim a second piece.
    let claiming = false;
    $(".claim-button").addEventListener("click", () => {
      if (!lot || claiming) return;
      claiming = true;
      sendOnce(room, { type: "claim", lot_no: lot.lot_no, quantity: 1 })
        .then((r) => notice("Claimed for " + money(r.price_cents) + "!", "/orders", "Pay in your orders")).catch(fail)
        .finally(() => { claiming = false; });
    });
    $(".bid-button").addEventListener("click", (ev) => {
      if (!lot) return;
      const amount = parseInt(ev.currentTarget.dataset.amount, 10);
      sendOnce(room, { type: "bid", lot_no: lot.lot_no, max_cents: amount })
        .then((r) => notice(r.leading ? "You lead at " + money(r.price_cents) : "Outbid: now " + money(r.price_cents)))
        .catch(fail);
    });
    $(".max-bid").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const cents = toCents($(".max-bid input").value);
      if (cents === null || cents <= 0) { notice("Enter an amount in dollars, like 45 or 45.50."); return; }
      sendOnce(room, { type: "bid", lot_no: lot && lot.lot_no, max_cents: cents })
        .then((r) => notice(r.leading ? "Your maximum " + money(cents) + " leads at " + money(r.price_cents)
          : "Outbid already: now " + money(r.price_cents)))
        .catch(fail);
    });

    room.send({ type: "lot.state" }).then((r) => { lot = r.lot; render(); }).catch(() => {});
  }

  function setupHost(room, box) {
    const $ = (s) => box.querySelector(s);
    const form = $(".lot-form");
    const feed = $(".host-feed");
    const error = (err) => { $(".host-error").textContent = (err && err.reason) || ""; };
    const log = (text) => {
      const li = document.createElement("li");
      li.textContent = new Date().toLocaleTimeString() + " " + text;
      feed.prepend(li);
      while (feed.children.length > 200) feed.lastChild.remove();
    };
    const mode = () => form.querySelector("input[name=mode]:checked").value;
    form.addEventListener("change", () => {
      $(".claim-fields").hidden = mode() !== "claim";
      $(".auction-fields").hidden = mode() !== "auction";
    });
    function lotMessage(type) {
      const msg = { type: type, mode: mode() };
      if (type === "lot.open") msg.listing_id = parseInt(form.listing_id.value, 10);
      if (msg.mode === "claim") {
        const price = toCents(form.price.value);
        if (price) msg.price_cents = price;
        if (form.quantity.value.trim()) msg.quantity = parseInt(form.quantity.value, 10);
      } else {
        const start = toCents(form.start.value);
        if (start) msg.start_cents = start;
        msg.duration_s = parseInt(form.duration.value || "30", 10);
        msg.sudden_death = form.sudden_death.checked;
      }
      return msg;
    }
    // Host commands carry a key too: a "Put up" resent after a lost answer must not open a second lot.
    const keyed = (msg) => Object.assign({ key: newKey() }, msg);
    const act = (msg) => { error(null); return room.send(keyed(msg)).catch(error); };
    form.addEventListener("submit", (ev) => { ev.preventDefault(); act(lotMessage("lot.open")); });
    $(".host-next").addEventListener("click", async () => {
      error(null);
      try { await room.send(keyed({ type: "lot.close" })); } catch (_) { /* nothing open, or an auction still running */ }
      act(lotMessage("lot.next"));
    });
    $(".host-close").addEventListener("click", () => act({ type: "lot.close" }));
    $(".host-cancel").addEventListener("click", () => act({ type: "lot.cancel" }));

    // The picker follows the show: it shows what is up now, and once that sells, the next item still
    // for sale, so "Put up" after a sale never offers the item just sold.
    const picker = form.listing_id;
    const option = (listingId) => Array.from(picker.options).find((o) => o.value === String(listingId));
    room.on("lot.opened", (e) => {
      const up = option(e.lot.listing_id);
      if (up && !up.disabled) picker.value = up.value;
    });
    room.on("lot.closed", (e) => {
      if (e.outcome !== "sold" && e.outcome !== "sold_out" && e.outcome !== "sold_elsewhere") return;
      const sold = option(e.lot.listing_id);
      if (!sold || sold.disabled) return;
      sold.disabled = true;
      sold.textContent += " (sold)";
      const options = Array.from(picker.options);
      const next = options.slice(options.indexOf(sold) + 1).concat(options).find((o) => !o.disabled);
      if (next) picker.value = next.value;
    });
    room.on("lot.opened", (e) => log("Up: " + (e.lot.title || "item") + " (" + (e.lot.kind === "claim" ? "buy now" : "auction") + ")"));
    room.on("claim.accepted", (e) => log((e.buyer || "#" + e.buyer_id) + " claimed " + e.quantity + " · " + e.remaining + " left"));
    room.on("bid.accepted", (e) => log((e.bidder || "#" + e.bidder_id) + " bid · " + money(e.price_cents) + " to " + (e.leader || "#" + e.leader_id)));
    room.on("lot.closed", (e) => log("Closed: " + e.outcome + (e.winner ? " to " + e.winner + " for " + money(e.price_cents) : "")));
  }

  document.addEventListener("DOMContentLoaded", () => {
    const card = document.getElementById("item-card");
    const host = document.getElementById("host-controls");
    whenRoom((room) => {
      if (card) setupCard(room, card);
      if (host) setupHost(room, host);
    });
  });
})();
