// The ringcast notification page: the HTTP API of package notify and the
// "inbox" Phoenix channel, with the official phoenix.js (global Phoenix).
"use strict";
(() => {
  const SESSION_KEY = "ringcast.notify.session";
  const FEED_MAX = 100;      // notifications kept per list
  const HISTORY_PAGE = 50;   // notifications read when a topic is opened

  const $ = (id) => document.getElementById(id);

  const state = {
    user: null,
    token: null,
    socket: null,
    channel: null,
    joined: false,
    unread: 0,
    topics: new Map(),  // subscribed topic name -> {name, unread, last_seq, read_seq, epoch}
    positions: {},      // topic -> {epoch, seq}: sent again on every rejoin
    directory: [],      // every topic: {name, description, creator, created_at, last_seq, subscribed}
    selected: null,     // the topic shown, or null for the latest notifications
    feeds: new Map(),   // topic -> notifications shown, newest first
    latest: [],         // notifications of every topic, newest first
  };

  // el builds an element; strings become text nodes, never HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else if (k.startsWith("data-")) e.setAttribute(k, v);
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(typeof c === "string" || typeof c === "number" ? document.createTextNode(String(c)) : c);
    }
    return e;
  }

  function showError(msg) {
    const p = $("error");
    if (!msg) { p.hidden = true; p.textContent = ""; return; }
    p.textContent = msg;
    p.hidden = false;
  }

  // api calls the HTTP API and returns the decoded body, or throws an
  // Error with the server's {"error"} message.
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = "Bearer " + state.token;
    const init = { method, headers, credentials: "omit", cache: "no-store" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const res = await fetch("/api" + path, init);
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = JSON.parse(text); } catch { data = { error: text.trim() }; }
    }
    if (!res.ok) {
      if (res.status === 401 && state.token) signedOut("your session has ended: sign in again");
      const err = new Error((data && data.error) || res.status + " " + res.statusText);
      err.status = res.status;
      throw err;
    }
    return data;
  }

  const enc = encodeURIComponent;

  // ---- session ----

  function saveSession() {
    sessionStorage.setItem(SESSION_KEY, JSON.stringify({ user: state.user, token: state.token }));
  }

  async function signIn(id, password) {
    const res = await api("POST", "/tokens", { id, password });
    state.user = id;
    state.token = res.token;
    saveSession();
    start();
  }

  function signedOut(reason) {
    if (state.channel) state.channel.leave();
    if (state.socket) state.socket.disconnect();
    sessionStorage.removeItem(SESSION_KEY);
    Object.assign(state, {
      user: null, token: null, socket: null, channel: null, joined: false, unread: 0,
      topics: new Map(), positions: {}, directory: [], selected: null, feeds: new Map(), latest: [],
    });
    $("app").hidden = true;
    $("session").hidden = true;
    $("auth").hidden = false;
    showError(reason || "");
  }

  async function signOut() {
    try { await api("DELETE", "/tokens/current"); } catch { /* a JWT or an expired token: nothing to revoke */ }
    signedOut("");
  }

  function start() {
    showError("");
    $("auth").hidden = true;
    $("app").hidden = false;
    $("session").hidden = false;
    $("who").textContent = state.user;
    connect();
    loadDirectory();
    render();
  }

  // ---- real time ----

  function connect() {
    const socket = new Phoenix.Socket("/socket", { authToken: state.token });
    socket.onOpen(() => setConn(true));
    socket.onClose(() => setConn(false));
    socket.onError(() => setConn(false));
    const ch = socket.channel("inbox", () => ({ positions: state.positions }));
    ch.on("notification", onNotification);
    ch.on("unread", onUnread);
    ch.on("read", ({ topic, read_seq }) => {
      const t = state.topics.get(topic);
      if (!t) return;
      t.read_seq = Math.max(t.read_seq, read_seq);
      t.unread = Math.max(0, t.last_seq - t.read_seq);
      render();
    });
    ch.on("subscribed", (st) => { addTopic(st); markDirectory(st.name, true); render(); });
    ch.on("unsubscribed", ({ topic }) => { dropTopic(topic); markDirectory(topic, false); render(); });
    ch.on("reset", ({ topic, epoch, seq }) => {
      state.positions[topic] = { epoch, seq };
      state.feeds.delete(topic);
      if (state.selected === topic) openTopic(topic);
    });
    ch.onError(() => { state.joined = false; setConn(false); });
    ch.join()
      .receive("ok", (box) => { state.joined = true; setConn(true); applyInbox(box); })
      .receive("error", ({ reason }) => {
        if (reason === "unauthorized") signedOut("your session has ended: sign in again");
        else showError("inbox: " + reason);
      })
      .receive("timeout", () => showError("inbox: no answer from the server; retrying"));
    socket.connect();
    state.socket = socket;
    state.channel = ch;
  }

  function setConn(live) {
    const c = $("conn");
    live = live && state.joined;
    c.textContent = live ? "live" : "offline";
    c.className = "conn " + (live ? "live" : "offline");
  }

  function addTopic(st) {
    const prev = state.topics.get(st.name);
    const t = { name: st.name, unread: st.unread, last_seq: st.last_seq, read_seq: st.read_seq, epoch: st.epoch };
    if (prev) {
      t.last_seq = Math.max(t.last_seq, prev.last_seq);
      t.read_seq = Math.max(t.read_seq, prev.read_seq);
      t.unread = Math.max(0, t.last_seq - t.read_seq);
    }
    state.topics.set(st.name, t);
    if (!state.positions[st.name] && st.epoch) state.positions[st.name] = { epoch: st.epoch, seq: st.last_seq };
  }

  function dropTopic(name) {
    state.topics.delete(name);
    delete state.positions[name];
    state.feeds.delete(name);
    state.unread = [...state.topics.values()].reduce((n, t) => n + t.unread, 0);
    if (state.selected === name && !ownTopic(name)) state.selected = null;
  }

  function applyInbox(box) {
    const names = new Set(box.topics.map((t) => t.name));
    for (const name of [...state.topics.keys()]) if (!names.has(name)) dropTopic(name);
    for (const t of box.topics) {
      const prev = state.topics.get(t.name);
      state.topics.set(t.name, { ...t, epoch: t.epoch || (prev && prev.epoch) });
      if (t.epoch && !state.positions[t.name]) state.positions[t.name] = { epoch: t.epoch, seq: t.last_seq };
    }
    state.unread = box.unread;
    render();
  }

  function onNotification({ topic, seq, epoch, body }) {
    state.positions[topic] = { epoch, seq };
    const t = state.topics.get(topic);
    if (t) { t.last_seq = Math.max(t.last_seq, seq); t.epoch = epoch; }
    const n = { topic, seq, epoch, body, time: new Date().toISOString() };
    const feed = state.feeds.get(topic);
    if (feed && !feed.some((x) => x.seq === seq)) { feed.unshift(n); feed.length = Math.min(feed.length, FEED_MAX); }
    if (!state.latest.some((x) => x.topic === topic && x.seq === seq)) {
      state.latest.unshift(n);
      state.latest.length = Math.min(state.latest.length, FEED_MAX);
    }
    const d = state.directory.find((x) => x.name === topic);
    if (d) d.last_seq = Math.max(d.last_seq, seq);
    render();
  }

  function onUnread({ unread, topic, topic_unread }) {
    state.unread = unread;
    if (topic === undefined || topic === null || topic === "") {
      // A change of several topics at once (everything read elsewhere):
      // read the counts again.
      refreshInbox();
    } else {
      const t = state.topics.get(topic);
      if (t) {
        t.unread = topic_unread;
        t.read_seq = Math.max(t.read_seq, t.last_seq - topic_unread);
      }
    }
    render();
  }

  async function refreshInbox() {
    try { applyInbox(await api("GET", "/inbox")); } catch (e) { showError(e.message); }
  }

  // ---- actions ----

  function markRead(name) {
    const t = state.topics.get(name);
    if (!t || t.unread === 0) return;
    const seq = t.last_seq;
    if (state.joined) {
      state.channel.push("read", { topic: name, seq })
        .receive("ok", (r) => {
          t.read_seq = Math.max(t.read_seq, r.read_seq);
          t.last_seq = Math.max(t.last_seq, r.last_seq);
          t.unread = r.topic_unread;
          state.unread = r.unread;
          render();
        })
        .receive("error", ({ reason }) => showError("mark read: " + reason));
      return;
    }
    api("POST", "/topics/" + enc(name) + "/read", { seq })
      .then((st) => { addTopic(st); state.topics.get(name).unread = st.unread; refreshInbox(); })
      .catch((e) => showError(e.message));
  }

  function markAllRead() {
    if (state.joined) {
      state.channel.push("read_all", {})
        .receive("ok", applyInbox)
        .receive("error", ({ reason }) => showError("mark all read: " + reason));
      return;
    }
    api("POST", "/read").then(applyInbox).catch((e) => showError(e.message));
  }

  async function subscribe(name) {
    try {
      addTopic(await api("PUT", "/topics/" + enc(name) + "/subscription"));
      markDirectory(name, true);
      recount();
      render();
    } catch (e) { showError(e.message); }
  }

  async function unsubscribe(name) {
    try {
      await api("DELETE", "/topics/" + enc(name) + "/subscription");
    } catch (e) {
      if (e.status !== 404) { showError(e.message); return; }
    }
    dropTopic(name);
    markDirectory(name, false);
    render();
  }

  function recount() {
    state.unread = [...state.topics.values()].reduce((n, t) => n + t.unread, 0);
  }

  async function loadDirectory() {
    try {
      const res = await api("GET", "/topics?limit=1000");
      state.directory = res.topics;
      render();
    } catch (e) { showError(e.message); }
  }

  function markDirectory(name, subscribed) {
    const d = state.directory.find((x) => x.name === name);
    if (d) d.subscribed = subscribed;
    else loadDirectory();
  }

  function ownTopic(name) {
    const d = state.directory.find((x) => x.name === name);
    return !!d && d.creator === state.user;
  }

  async function openTopic(name) {
    state.selected = name;
    render();
    const t = state.topics.get(name);
    const d = state.directory.find((x) => x.name === name);
    const head = Math.max(t ? t.last_seq : 0, d ? d.last_seq : 0);
    try {
      const res = await api("GET", "/topics/" + enc(name) + "/notifications?after=" + Math.max(0, head - HISTORY_PAGE) + "&limit=" + HISTORY_PAGE);
      const live = state.feeds.get(name) || [];
      const seen = new Set(res.notifications.map((n) => n.seq));
      const feed = live.filter((n) => !seen.has(n.seq))
        .concat(res.notifications.map((n) => ({ topic: name, ...n })).reverse());
      feed.sort((a, b) => b.seq - a.seq);
      state.feeds.set(name, feed.slice(0, FEED_MAX));
      render();
    } catch (e) { showError(e.message); }
  }

  // ---- rendering ----

  function badge(n, cls) {
    return el("span", { class: "badge" + (n > 0 ? " on" : "") + (cls ? " " + cls : ""), "data-count": String(n) }, String(n));
  }

  function bodyView(body) {
    if (body && typeof body === "object" && !Array.isArray(body)) {
      const text = ["text", "title", "message"].map((k) => body[k]).find((v) => typeof v === "string");
      if (text !== undefined) return el("div", { class: "body" }, text);
    }
    return el("div", { class: "body json" }, JSON.stringify(body));
  }

  function notificationView(n, showTopic) {
    const t = state.topics.get(n.topic);
    const unread = t ? n.seq > t.read_seq : false;
    const when = n.time ? new Date(n.time).toLocaleTimeString() : "";
    return el("li", { class: unread ? "unread" : "", "data-topic": n.topic, "data-seq": String(n.seq) },
      el("div", { class: "head" }, showTopic ? el("b", {}, n.topic) : null, el("span", {}, "#" + n.seq), el("span", {}, when)),
      bodyView(n.body));
  }

  function render() {
    const total = $("unread-total");
    total.textContent = String(state.unread);
    total.dataset.count = String(state.unread);
    total.classList.toggle("on", state.unread > 0);
    document.title = (state.unread > 0 ? "(" + state.unread + ") " : "") + "ringcast notifications";

    // Inbox: the subscribed topics with their unread counts.
    const inbox = $("inbox");
    const topics = [...state.topics.values()].sort((a, b) => a.name.localeCompare(b.name));
    inbox.replaceChildren(...topics.map((t) => el("li", { "data-topic": t.name, class: state.selected === t.name ? "selected" : "" },
      el("a", { class: "name", href: "#", onclick: (ev) => { ev.preventDefault(); openTopic(t.name); } }, t.name),
      badge(t.unread))));
    $("inbox-empty").hidden = topics.length > 0;
    $("read-all").disabled = state.unread === 0;

    // Directory: every topic, with subscribe buttons.
    const dir = $("directory");
    dir.replaceChildren(...state.directory.map((d) => {
      const mine = d.creator === state.user;
      const sub = state.topics.has(d.name) || d.subscribed;
      return el("li", { "data-topic": d.name },
        mine || sub
          ? el("a", { class: "name", href: "#", title: d.description, onclick: (ev) => { ev.preventDefault(); openTopic(d.name); } }, d.name)
          : el("span", { class: "name", title: d.description }, d.name),
        el("span", { class: "meta" }, mine ? "yours" : "by " + d.creator),
        sub
          ? el("button", { type: "button", class: "secondary unsubscribe", onclick: () => unsubscribe(d.name) }, "Unsubscribe")
          : el("button", { type: "button", class: "subscribe", onclick: () => subscribe(d.name) }, "Subscribe"));
    }));

    // The view: one topic, or the latest notifications of all.
    const sel = state.selected;
    const t = sel && state.topics.get(sel);
    const d = sel && state.directory.find((x) => x.name === sel);
    $("view-title").textContent = sel || "Latest";
    $("view-desc").textContent = d ? (d.description || "") + (d.creator ? " · by " + d.creator : "") : "";
    $("mark-read").hidden = !t;
    $("mark-read").disabled = !t || t.unread === 0;
    $("unsubscribe").hidden = !t;
    $("back").hidden = !sel;
    const mine = sel && ownTopic(sel);
    $("publish-form").hidden = !mine;
    $("publish-topic").textContent = mine ? sel : "";
    const list = sel ? (state.feeds.get(sel) || []) : state.latest;
    $("feed").replaceChildren(...list.map((n) => notificationView(n, !sel)));
    $("feed-empty").hidden = list.length > 0;
  }

  // ---- wiring ----

  function formValues(form) {
    return Object.fromEntries(new FormData(form).entries());
  }

  function onSubmit(id, fn) {
    const form = $(id);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      showError("");
      try { await fn(formValues(form), form); } catch (e) { showError(e.message); } finally { button.disabled = false; }
    });
  }

  onSubmit("signin-form", (v) => signIn(v.id.trim(), v.password));
  onSubmit("signup-form", async (v) => {
    const id = v.id.trim();
    await api("POST", "/users", { id, email: v.email.trim(), password: v.password });
    await signIn(id, v.password);
  });
  onSubmit("create-form", async (v, form) => {
    const name = v.name.trim();
    const topic = await api("POST", "/topics", { name, description: v.description.trim() });
    form.reset();
    state.directory = state.directory.filter((x) => x.name !== name).concat([topic]).sort((a, b) => a.name.localeCompare(b.name));
    openTopic(name);
  });
  onSubmit("publish-form", async (v, form) => {
    const topic = state.selected;
    let body = { text: v.text };
    if (v.raw) {
      try { body = JSON.parse(v.text); } catch (e) { throw new Error("the text is not JSON: " + e.message); }
    }
    const res = await api("POST", "/topics/" + enc(topic) + "/notifications", body);
    form.reset();
    $("publish-result").textContent = "sent #" + res.seq;
    const feed = state.feeds.get(topic) || [];
    if (!feed.some((x) => x.seq === res.seq)) {
      feed.unshift({ topic, seq: res.seq, epoch: res.epoch, body, time: new Date().toISOString() });
      state.feeds.set(topic, feed.slice(0, FEED_MAX));
    }
    const d = state.directory.find((x) => x.name === topic);
    if (d) d.last_seq = Math.max(d.last_seq, res.seq);
    render();
  });

  $("signout").addEventListener("click", signOut);
  $("read-all").addEventListener("click", markAllRead);
  $("mark-read").addEventListener("click", () => state.selected && markRead(state.selected));
  $("unsubscribe").addEventListener("click", () => state.selected && unsubscribe(state.selected));
  $("back").addEventListener("click", () => { state.selected = null; render(); });

  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
    if (saved && saved.user && saved.token) {
      state.user = saved.user;
      state.token = saved.token;
      start();
    }
  } catch { sessionStorage.removeItem(SESSION_KEY); }
})();
