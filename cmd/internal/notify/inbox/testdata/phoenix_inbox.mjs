// Drives the official Phoenix JavaScript client (npm phoenix 1.8) against
// the inbox of a ringcast gateway, as two devices of one user, and exits 0
// only if everything went as expected.
//
//   RINGCAST_PHOENIX_JS=DIR node phoenix_inbox.mjs BASE_URL USER_TOKEN CREATOR_TOKEN TOPIC USER
//
// DIR holds node_modules/phoenix and node_modules/ws. BASE_URL is the
// gateway's http://host:port: the socket is BASE_URL/socket, the API
// BASE_URL/api. The user subscribes to TOPIC, which has one notification
// already; the creator publishes to it over the API.
//
// Device A connects with params: {token}, device B with authToken (the
// Sec-WebSocket-Protocol bearer). Both join the inbox; the creator
// publishes; A gets the notification and the count, marks it read, and B
// is told at once. B then goes away, two notifications are published,
// and B's reconnect (joining with its last positions) brings exactly those.

import { createRequire } from "node:module"
import path from "node:path"

const dir = process.env.RINGCAST_PHOENIX_JS
if (!dir) {
  console.error("FAIL: RINGCAST_PHOENIX_JS is not set")
  process.exit(2)
}
const require = createRequire(path.join(path.resolve(dir), "index.js"))
const { Socket } = require("phoenix")
const WebSocket = require("ws")

const [base, userToken, creatorToken, topic, user] = process.argv.slice(2)
const steps = []
function fail(msg) {
  console.error(`FAIL: ${msg} (steps done: ${steps.join(",")})`)
  process.exit(1)
}
function step(name) {
  steps.push(name)
  console.log(`step ${name}`)
}
setTimeout(() => fail("timed out"), 30000).unref()

async function publish(body) {
  const res = await fetch(`${base}/api/topics/${topic}/notifications`, {
    method: "POST",
    headers: { authorization: `Bearer ${creatorToken}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  })
  if (res.status !== 201) fail(`publish: ${res.status} ${await res.text()}`)
  return res.json()
}

// A device: a socket, its inbox channel, what it received, and its last
// position in each topic (sent again when the channel rejoins).
function device(name, socketOpts, channelTopic) {
  const socket = new Socket(`${base.replace(/^http/, "ws")}/socket`, {
    transport: WebSocket,
    reconnectAfterMs: () => 50,
    rejoinAfterMs: () => 50,
    ...socketOpts,
  })
  socket.onError((e) => {
    if (!d.leaving) fail(`${name}: socket error: ${e && e.message}`)
  })
  const d = { name, socket, positions: {}, notifications: [], unread: [], reads: [], joins: [], leaving: false }
  d.channel = socket.channel(channelTopic, () => ({ positions: d.positions }))
  d.channel.on("notification", (n) => {
    d.notifications.push(n)
    d.positions[n.topic] = { epoch: n.epoch, seq: n.seq }
  })
  d.channel.on("unread", (u) => d.unread.push(u))
  d.channel.on("read", (r) => d.reads.push(r))
  d.channel.join()
    .receive("ok", (reply) => d.joins.push(reply))
    .receive("error", (e) => fail(`${name}: join refused: ${JSON.stringify(e)}`))
  socket.connect()
  return d
}

async function until(what, cond) {
  const deadline = Date.now() + 10000
  while (!cond()) {
    if (Date.now() > deadline) fail(`waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

function await_(push, what) {
  return new Promise((resolve) => {
    push
      .receive("ok", resolve)
      .receive("error", (r) => fail(`${what}: error reply ${JSON.stringify(r)}`))
      .receive("timeout", () => fail(`${what}: timeout`))
  })
}

const last = (a) => a[a.length - 1]

async function main() {
  const a = device("A", { params: { token: userToken } }, "inbox")
  const b = device("B", { authToken: userToken }, "inbox:" + user)
  await until("both joins", () => a.joins.length === 1 && b.joins.length === 1)
  for (const d of [a, b]) {
    const r = d.joins[0]
    if (r.unread !== 1 || r.topics.length !== 1 || r.topics[0].name !== topic || r.topics[0].last_seq !== 1) {
      fail(`${d.name}: join reply ${JSON.stringify(r)}`)
    }
  }
  step("joined")

  const p = await publish({ title: "hello", tags: ["a", "b"] })
  for (const d of [a, b]) {
    await until(`${d.name}: the notification`, () => d.notifications.length === 1 && d.unread.length === 1)
    const n = d.notifications[0]
    if (n.topic !== topic || n.seq !== p.seq || n.seq !== 2 || n.body.title !== "hello" || n.body.tags.join() !== "a,b" || typeof n.epoch !== "string") {
      fail(`${d.name}: notification ${JSON.stringify(n)}`)
    }
    const u = d.unread[0]
    if (u.unread !== 2 || u.topic !== topic || u.topic_unread !== 2) fail(`${d.name}: unread ${JSON.stringify(u)}`)
  }
  step("notified")

  // A marks it read; B is told at once.
  const reply = await await_(a.channel.push("read", { topic, seq: 2 }), "read")
  if (reply.unread !== 0 || reply.topic_unread !== 0 || reply.read_seq !== 2) fail(`read reply ${JSON.stringify(reply)}`)
  await until("B: the unread update", () => b.unread.length === 2)
  if (last(b.unread).unread !== 0 || last(b.unread).topic_unread !== 0) fail(`B: unread ${JSON.stringify(b.unread)}`)
  if (b.reads.length !== 1 || b.reads[0].read_seq !== 2) fail(`B: reads ${JSON.stringify(b.reads)}`)
  step("read-elsewhere")

  // B goes away; two notifications are published meanwhile; B comes back
  // and rejoins with its positions.
  b.leaving = true
  await new Promise((resolve) => b.socket.disconnect(resolve))
  await publish({ title: "missed 1" })
  await publish({ title: "missed 2" })
  await until("A: the missed notifications", () => a.notifications.length === 3)
  b.leaving = false
  b.socket.connect()
  await until("B: the rejoin", () => b.joins.length === 2 && b.notifications.length === 3)
  const r = b.joins[1]
  if (r.unread !== 2 || r.topics[0].read_seq !== 2 || r.topics[0].last_seq !== 4) fail(`B: rejoin reply ${JSON.stringify(r)}`)
  const seqs = b.notifications.map((n) => n.seq).join(",")
  if (seqs !== "2,3,4") fail(`B: notifications ${seqs}`)
  if (b.notifications[2].body.title !== "missed 2") fail(`B: ${JSON.stringify(b.notifications[2])}`)
  // Nothing more comes (no duplicate of what B had).
  await new Promise((r) => setTimeout(r, 200))
  if (b.notifications.length !== 3) fail(`B: extra notifications ${JSON.stringify(b.notifications)}`)
  step("rejoined")

  for (const d of [a, b]) {
    d.leaving = true
    await await_(d.channel.leave(), `${d.name} leave`)
    await new Promise((resolve) => d.socket.disconnect(resolve))
  }
  console.log(`PHOENIX_INBOX_OK ${steps.join(",")}`)
  process.exit(0)
}

main().catch((e) => fail(e.stack || String(e)))
