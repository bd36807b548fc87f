// liveshow ICE servers: the STUN/TURN servers (with fresh TURN credentials) that the server announces in
// its WHIP/WHEP Link headers (RFC 9725 section 4.6). The pages ask with OPTIONS before each peer they
// make, because a peer's servers must be known when it gathers, before the offer is posted.
(() => {
  "use strict";

  // Split a Link header into links, respecting <...> and quoted strings (commas may appear in both).
  function splitLinks(header) {
    const links = [];
    let current = "", angle = false, quoted = false;
    for (let i = 0; i < header.length; i += 1) {
      const ch = header[i];
      if (quoted && ch === "\\") { current += ch + (header[i + 1] || ""); i += 1; continue; }
      if (ch === '"' && !angle) quoted = !quoted;
      else if (ch === "<" && !quoted) angle = true;
      else if (ch === ">" && !quoted) angle = false;
      else if (ch === "," && !angle && !quoted) { links.push(current); current = ""; continue; }
      current += ch;
    }
    if (current.trim()) links.push(current);
    return links;
  }

  function parseLink(text) {
    const match = /^\s*<([^>]*)>(.*)$/s.exec(text);
    if (!match) return null;
    const params = {};
    const re = /;\s*([A-Za-z0-9!#$%&'*+.^_`|~-]+)\s*(?:=\s*(?:"((?:[^"\\]|\\.)*)"|([^;,\s]*)))?/gs;
    let m;
    while ((m = re.exec(match[2])) !== null) {
      const name = m[1].toLowerCase();
      if (!(name in params)) params[name] = m[2] !== undefined ? m[2].replace(/\\(.)/gs, "$1") : (m[3] || "");
    }
    return { url: match[1], params };
  }

  // RTCIceServer entries from a Link header: rel="ice-server" links only, with their credentials.
  function fromLinkHeader(header) {
    const servers = [];
    for (const text of splitLinks(header || "")) {
      const link = parseLink(text);
      if (!link || !(link.params.rel || "").split(/\s+/).includes("ice-server")) continue;
      const server = { urls: link.url };
      if (link.params.username !== undefined) server.username = link.params.username;
      if (link.params.credential !== undefined) server.credential = link.params.credential;
      servers.push(server);
    }
    return servers;
  }

  // The servers for a new peer of `endpoint` (a WHIP or WHEP URL); none if it cannot be asked, so a
  // page still connects directly when it can.
  async function forEndpoint(endpoint) {
    try {
      const resp = await fetch(endpoint, { method: "OPTIONS" });
      return fromLinkHeader(resp.headers.get("Link"));
    } catch (_) {
      return [];
    }
  }

  window.liveshowIce = { fromLinkHeader, forEndpoint };
})();
