// Drives the official Phoenix JavaScript client (npm phoenix 1.8) against a
// ringcast gateway, and exits 0 only if everything went as expected.
//
//   RINGCAST_PHOENIX_JS=DIR node phoenix_client.mjs SOCKET_URL TOKEN
//
// DIR holds node_modules/phoenix and node_modules/ws. SOCKET_URL is the
// socket endpoint without the "/websocket" suffix the client appends.

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

const [url, token] = process.argv.slice(2)
const steps = []
let finished = false

function fail(msg) {
  console.error(`FAIL: ${msg} (steps done: ${steps.join(",")})`)
  process.exit(1)
}
function step(name) {
  steps.push(name)
  console.log(`step ${name}`)
}
setTimeout(() => fail("timed out"), 20000).unref()

const socket = new Socket(url, {
  transport: WebSocket,
  authToken: token,
  heartbeatIntervalMs: 200,
  timeout: 5000,
  // A reconnect would hide a bug: fail instead.
  reconnectAfterMs: () => 60000,
  rejoinAfterMs: () => 60000,
})
let opens = 0
socket.onOpen(() => {
  opens++
  if (opens > 1) fail("socket reconnected")
})
socket.onError((e) => fail(`socket error: ${e && e.message}`))
socket.onClose((e) => {
  if (!finished) fail(`socket closed: ${e.code} ${e.reason}`)
})
let heartbeats = 0
socket.onMessage((msg) => {
  if (msg.topic === "phoenix" && msg.event === "phx_reply" && msg.payload.status === "ok") heartbeats++
})
socket.connect()

function await_(push, what) {
  return new Promise((resolve, reject) => {
    push
      .receive("ok", resolve)
      .receive("error", (r) => reject(Object.assign(new Error(`${what}: error reply`), { response: r })))
      .receive("timeout", () => reject(new Error(`${what}: timeout`)))
  })
}

function nextEvent(channel, event) {
  return new Promise((resolve) => {
    const ref = channel.on(event, (payload) => {
      channel.off(event, ref)
      resolve(payload)
    })
  })
}

async function waitUntil(cond, what) {
  const deadline = Date.now() + 10000
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function main() {
  const channel = socket.channel("topics:js", {})
  await await_(channel.join(), "join")
  step("joined")

  // Publish: the reply comes before the publisher's own broadcast.
  const order = []
  const greeting = nextEvent(channel, "greeting").then((p) => {
    order.push("broadcast")
    return p
  })
  await await_(channel.push("publish", ["greeting", { message: "hi", n: 1 }]), "publish").then(() => order.push("reply"))
  const payload = await greeting
  if (payload.message !== "hi" || payload.n !== 1) fail(`broadcast payload ${JSON.stringify(payload)}`)
  if (order.join(",") !== "reply,broadcast") fail(`order ${order}`)
  step("published")

  // An unknown event gets an error reply and the socket stays up.
  try {
    await await_(channel.push("bogus", {}), "bogus")
    fail("bogus event accepted")
  } catch (e) {
    if (!e.response || e.response.reason !== "unknown event") fail(`bogus: ${e.message} ${JSON.stringify(e.response)}`)
  }
  step("error-reply")

  // Binary: the client sends a binary push, everyone receives a binary push.
  const bin = nextEvent(channel, "bin")
  await await_(channel.push("publish:bin", new Uint8Array([1, 2, 3, 250]).buffer), "binary publish")
  const data = new Uint8Array(await bin)
  if (data.join(",") !== "1,2,3,250") fail(`binary payload ${data}`)
  step("binary")

  // Sequence metadata on a second channel.
  const meta = socket.channel("topics:js-meta", { meta: true })
  await await_(meta.join(), "meta join")
  const metaReply = await await_(meta.push("publish", ["m", { k: "v" }]), "meta publish")
  if (metaReply.seq !== 1) fail(`meta publish reply ${JSON.stringify(metaReply)}`)
  step("meta")

  // Heartbeats every 200 ms are answered in time (a late reply would reconnect).
  await waitUntil(() => heartbeats >= 4, "4 heartbeat replies")
  step("heartbeats")

  await await_(meta.leave(), "meta leave")
  await await_(channel.leave(), "leave")
  step("left")

  finished = true
  socket.disconnect(() => {
    console.log(`PHOENIX_CLIENT_OK ${steps.join(",")}`)
    process.exit(0)
  })
}

main().catch((e) => fail(e.stack || String(e)))
