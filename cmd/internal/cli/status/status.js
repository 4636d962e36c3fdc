// The ringcast status page: polls GET /api/status every second and draws
// the members, the ring and the counters, without reloading.
"use strict";
(() => {
  const POLL_MS = 1000;
  const SVG = "http://www.w3.org/2000/svg";
  const PALETTE = ["#3558d6", "#d9822b", "#1b8a4b", "#a23bc4", "#c62828", "#00838f", "#6d4c41", "#5c6bc0",
    "#9e9d24", "#ad1457", "#2e7d32", "#ef6c00"];

  const $ = (id) => document.getElementById(id);
  let prev = null;     // the previous answer, for rates
  let failures = 0;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) if (c !== null && c !== undefined) e.append(typeof c === "object" ? c : document.createTextNode(String(c)));
    return e;
  }

  function svg(tag, attrs, text) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
    if (text !== undefined) e.textContent = text;
    return e;
  }

  // colour gives each member a colour of its own for the life of the page,
  // in the order the members were first seen (by name within one answer).
  const colours = new Map();
  function colour(name) {
    if (!colours.has(name)) colours.set(name, PALETTE[colours.size % PALETTE.length]);
    return colours.get(name);
  }

  function rate(cur, old, secs) {
    if (old === undefined || secs <= 0 || cur < old) return null;
    return (cur - old) / secs;
  }

  function fmtRate(r) {
    if (r === null) return "–";
    if (r >= 100) return Math.round(r).toLocaleString();
    return r.toFixed(r >= 10 ? 1 : 2).replace(/\.?0+$/, "") || "0";
  }

  function fmtBytes(r) {
    if (r === null) return "–";
    const units = ["B", "KiB", "MiB", "GiB"];
    let i = 0;
    while (r >= 1024 && i < units.length - 1) { r /= 1024; i++; }
    return (r >= 10 || i === 0 ? Math.round(r) : r.toFixed(1)) + " " + units[i];
  }

  function ago(t, now) {
    const s = Math.max(0, Math.round((now - new Date(t)) / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return Math.floor(s / 60) + " min";
    return Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
  }

  function setText(id, v) { $(id).textContent = v; }

  async function poll() {
    try {
      const res = await fetch("/api/status", { cache: "no-store", credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!res.ok) throw new Error("GET /api/status: " + res.status + " " + (await res.text()).trim());
      const s = await res.json();
      failures = 0;
      render(s);
      $("error").hidden = true;
      setLive(true, "live");
    } catch (e) {
      failures++;
      setLive(false, "unreachable");
      const p = $("error");
      p.textContent = "This node does not answer (" + e.message + "); retrying every second. What is shown is from its last answer.";
      p.hidden = false;
      prev = null;
    } finally {
      setTimeout(poll, POLL_MS);
    }
  }

  function setLive(up, text) {
    const p = $("live");
    p.className = "pill " + (up ? "up" : "down");
    p.textContent = text;
  }

  function render(s) {
    const secs = prev ? (new Date(s.time) - new Date(prev.time)) / 1000 : 0;
    const old = prev || {};
    const now = new Date(s.time);
    document.title = "ringcast status · " + s.node;
    setText("node-name", s.node);
    setText("version", s.command + " " + s.version + " · up " + ago(s.started, now));

    for (const m of s.members) colour(m.name);
    const alive = s.members.filter((m) => m.state === "alive");
    const gone = s.members.filter((m) => m.state !== "alive");
    setText("alive-count", alive.length);
    $("alive-count").dataset.count = String(alive.length);
    setText("gone-count", gone.length ? "· " + gone.length + " gone" : "");

    const st = s.stats, ost = old.stats || {};
    setText("owned", st.owned_topics);
    setText("replica", st.replica_topics);
    setText("local", st.local_topics);
    setText("subscriptions", st.subscriptions);
    setText("rate-published", fmtRate(rate(st.published, ost.published, secs)));
    setText("rate-delivered", fmtRate(rate(st.delivered, ost.delivered, secs)));
    setText("rate-sequenced", fmtRate(rate(st.sequenced, ost.sequenced, secs)));
    setText("rate-store", fmtRate(rate(st.store_committed, ost.store_committed, secs)));
    if (s.gateway) {
      const g = s.gateway, og = old.gateway || {};
      $("gateway-tile").hidden = false;
      setText("connections", g.connections);
      setText("rate-joins", fmtRate(rate(g.joins, og.joins, secs)));
      setText("rate-frames", fmtRate(rate(g.frames_out, og.frames_out, secs)));
      setText("slow", g.slow_consumers);
    }
    renderHealth(s, alive);
    renderRing(s, alive);
    renderMembers(s, old, secs, now);
    renderConfig(s);
    renderCounters(s);
    prev = s;
  }

  function renderHealth(s, alive) {
    const problems = [];
    const peers = alive.filter((m) => !m.self && m.peer);
    const down = peers.filter((m) => s.links[m.name] && !s.links[m.name].connected);
    if (!alive.some((m) => m.roles.includes("topics"))) problems.push("no member owns topics");
    if (down.length) problems.push(down.length + " link" + (down.length > 1 ? "s" : "") + " down");
    if (s.stats.gaps) problems.push(s.stats.gaps + " gaps");
    if (s.stats.store_errors) problems.push(s.stats.store_errors + " store errors");
    if (s.stats.slow_consumers) problems.push(s.stats.slow_consumers + " slow consumers");
    const p = $("health");
    p.replaceChildren(problems.length
      ? el("span", { class: "link-down" }, problems.join(" · "))
      : el("span", { class: "link-up" }, "all good"));
  }

  function renderRing(s, alive) {
    const box = $("ring");
    const cx = 210, cy = 165, r = 90, w = 28;
    const parts = [];
    const owners = alive.filter((m) => m.share > 0);
    const total = owners.reduce((a, m) => a + m.share, 0);
    box.replaceChildren();
    box.append(svg("circle", { cx, cy, r, fill: "none", stroke: "#e3e6ea", "stroke-width": w }));
    let a0 = -Math.PI / 2;
    for (const m of owners) {
      const frac = total > 0 ? m.share / total : 0;
      const a1 = a0 + frac * 2 * Math.PI;
      const col = colour(m.name);
      if (frac >= 0.9999) {
        box.append(svg("circle", { cx, cy, r, fill: "none", stroke: col, "stroke-width": w, "data-member": m.name }));
      } else {
        const large = a1 - a0 > Math.PI ? 1 : 0;
        const x0 = cx + r * Math.cos(a0), y0 = cy + r * Math.sin(a0);
        const x1 = cx + r * Math.cos(a1), y1 = cy + r * Math.sin(a1);
        box.append(svg("path", {
          d: `M ${x0.toFixed(2)} ${y0.toFixed(2)} A ${r} ${r} 0 ${large} 1 ${x1.toFixed(2)} ${y1.toFixed(2)}`,
          fill: "none", stroke: col, "stroke-width": w, "data-member": m.name,
        }));
      }
      // The member's label at the middle of its arc.
      const mid = (a0 + a1) / 2;
      const lx = cx + (r + w / 2 + 10) * Math.cos(mid), ly = cy + (r + w / 2 + 10) * Math.sin(mid);
      parts.push({ m, x: lx, y: ly, anchor: Math.cos(mid) < -0.2 ? "end" : Math.cos(mid) > 0.2 ? "start" : "middle" });
      if (m.self) {
        const sx = cx + (r - w / 2 - 8) * Math.cos(mid), sy = cy + (r - w / 2 - 8) * Math.sin(mid);
        box.append(svg("circle", { cx: sx.toFixed(2), cy: sy.toFixed(2), r: 4, fill: "#1d2330" }));
      }
      a0 = a1;
    }
    for (const p of parts) {
      box.append(svg("text", { x: p.x.toFixed(1), y: (p.y + 4).toFixed(1), "text-anchor": p.anchor },
        shortName(p.m.name) + " " + (100 * p.m.share).toFixed(0) + "%"));
    }
    // Members without a share (gateways): dots in the corners.
    const others = alive.filter((m) => !(m.share > 0));
    others.forEach((m, i) => {
      const y = 16 + i * 20;
      box.append(svg("circle", { cx: 10, cy: y, r: 5, fill: colour(m.name), "data-member": m.name }));
      box.append(svg("text", { x: 20, y: y + 4 }, shortName(m.name) + " (" + m.roles.join(",") + ")"));
    });
    box.append(svg("text", { x: cx, y: cy + 4, "text-anchor": "middle", class: "center" }, String(alive.length)));
    box.append(svg("text", { x: cx, y: cy + 22, "text-anchor": "middle", class: "center-sub" },
      alive.length === 1 ? "member" : "members"));
    box.append(svg("text", { x: cx, y: cy + 38, "text-anchor": "middle", class: "center-sub" },
      owners.length + (owners.length === 1 ? " owns" : " own") + " topics"));
  }

  function shortName(n) { return n.length > 18 ? n.slice(0, 17) + "…" : n; }

  function renderMembers(s, old, secs, now) {
    const body = $("members").tBodies[0];
    const oldLinks = old.links || {};
    body.replaceChildren(...s.members.map((m) => {
      const l = s.links[m.name], ol = oldLinks[m.name];
      let link = "–", cls = "";
      if (m.self) link = "this node";
      else if (m.state !== "alive") link = "–";
      else if (l) { link = l.connected ? "connected" : "down"; cls = l.connected ? "link-up" : "link-down"; if (l.dials > 1) link += " · " + (l.dials - 1) + " reconnects"; if (l.dropped) link += " · " + l.dropped + " dropped"; }
      else if (m.peer) { link = "idle"; }
      const frames = l && ol ? rate(l.frames_sent + l.frames_received, ol.frames_sent + ol.frames_received, secs) : null;
      const bytes = l && ol ? rate(l.bytes_sent + l.bytes_received, ol.bytes_sent + ol.bytes_received, secs) : null;
      const sw = el("span", { class: "swatch" });
      sw.style.backgroundColor = m.state === "alive" ? colour(m.name) : "#c9ced6";
      const state = m.state === "alive" ? "alive" : "gone " + ago(m.since, now) + " ago";
      return el("tr", { "data-member": m.name, "data-state": m.state, class: (m.state !== "alive" ? "gone" : "") + (m.self ? " self" : "") },
        el("td", {}, sw, m.name),
        el("td", {}, m.roles.join(", ")),
        el("td", { class: "state state-" + (m.state === "alive" ? "alive" : "gone") }, state),
        el("td", { class: "num" }, m.state === "alive" ? (100 * m.share).toFixed(1) + " %" : "–"),
        el("td", {}, m.gossip),
        el("td", {}, m.peer || "–"),
        el("td", { class: cls }, link),
        el("td", { class: "num" }, fmtRate(frames)),
        el("td", { class: "num" }, bytes === null ? "–" : fmtBytes(bytes)));
    }));
  }

  function onOff(b) { return b ? "on" : "off"; }

  function renderConfig(s) {
    const c = s.config;
    const rows = [
      ["node", s.node], ["roles", c.roles.join(", ") || "–"], ["cluster", c.cluster],
      ...Object.entries(c.listen).map(([k, v]) => ["--" + k, v]),
      ["gossip", c.gossip], ["peer", c.peer], ["join", c.join.length ? c.join.join(", ") : "– (started the cluster)"],
      ["replication", c.replication], ["failure detection", c.failure_detection],
      ["history", c.history_size + " messages, " + c.history_ttl], ["max payload", fmtBytes(c.max_payload)],
      ["store", c.store || "–"], ["durable", c.durable || "–"],
      ["protected mode", onOff(c.protected_mode)], ["client TLS", onOff(c.tls)], ["peer TLS", onOff(c.peer_tls)],
      ["secret", c.secret ? "set" : "not set"], ["notifications", onOff(c.notify)], ["email", onOff(c.email)],
    ];
    $("config").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", { "data-key": k }, String(v))]));
  }

  function renderCounters(s) {
    const st = s.stats;
    const rows = [
      ["published", st.published], ["sequenced", st.sequenced], ["forwarded", st.forwarded], ["delivered", st.delivered],
      ["replicated", st.replicated], ["committed", st.store_committed], ["handoffs", st.handoffs], ["failovers", st.failovers],
      ["gaps", st.gaps], ["lost", st.lost], ["dropped", st.dropped], ["slow consumers", st.slow_consumers],
      ["send errors", st.send_errors], ["bad frames", st.bad_frames], ["store errors", st.store_errors],
    ];
    if (s.gateway) {
      const g = s.gateway;
      rows.push(["connections", g.connections], ["joins", g.joins], ["client publishes", g.publishes],
        ["frames out", g.frames_out], ["refused", g.refused], ["rate limited", g.rate_limited_joins + g.rate_limited_publishes]);
    }
    if (s.guard) {
      const g = s.guard;
      rows.push(["guard refusals", g.protected_mode + g.host + g.cross_site + g.content_type + g.preflight + g.rate_limited + g.too_large]);
    }
    if (s.notify && s.notify.email) {
      const e = s.notify.email;
      if (e.sent !== undefined) rows.push(["emails sent", e.sent]);
      if (e.failed !== undefined) rows.push(["emails failed", e.failed]);
    }
    $("counters").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, Number(v).toLocaleString())]));
  }

  poll();
})();
