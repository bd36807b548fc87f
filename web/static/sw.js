// liveshow service worker: shows Web Push notices and opens their page when clicked.
self.addEventListener("push", (event) => {
  let data = {};
  try { data = event.data ? event.data.json() : {}; } catch (e) { data = { text: event.data ? event.data.text() : "" }; }
  const title = "liveshow";
  event.waitUntil(self.registration.showNotification(title, {
    body: data.text || "Something happened on liveshow.",
    data: { url: data.url || "/notifications" },
    tag: data.kind || "liveshow",
  }));
});

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const url = (event.notification.data && event.notification.data.url) || "/notifications";
  event.waitUntil(clients.matchAll({ type: "window", includeUncontrolled: true }).then((wins) => {
    for (const w of wins) { if (w.url.endsWith(url) && "focus" in w) return w.focus(); }
    return clients.openWindow(url);
  }));
});
