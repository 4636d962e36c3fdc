// Drives phoenix.js's Presence class across two gateways of one cluster.
// An observer and bob join on gateway A, alice on gateway B, each with a
// presence key. Every client's Presence.onSync must come to show the three
// of them, one meta each. Then bob loses his connection and reconnects:
// he must be back with one meta (no phantom duplicate), everywhere. Then
// the script prints READY_TO_KILL; the test kills gateway B's process with
// SIGKILL and the observer must see alice leave. Markers on stdout:
//
//   SYNCED, RECONNECTED, READY_TO_KILL, ALICE_LEFT <state>
//
//   RINGCAST_PHOENIX_JS=DIR node phoenix_presence.mjs SOCKET_A SOCKET_B

import { createRequire } from "node:module"
import path from "node:path"

const require = createRequire(path.join(path.resolve(process.env.RINGCAST_PHOENIX_JS || "."), "index.js"))
const { Socket, Presence } = require("phoenix")
const WebSocket = require("ws")

const [urlA, urlB] = process.argv.slice(2)
function fail(msg) {
  console.error(`FAIL: ${msg}`)
  process.exit(1)
}
setTimeout(() => fail("timed out"), 40000).unref()

const TOPIC = "room:lobby"

function client(url, key) {
  const socket = new Socket(url, {
    transport: WebSocket,
    heartbeatIntervalMs: 1000,
    reconnectAfterMs: () => 100,
    rejoinAfterMs: () => 100,
  })
  socket.onError(() => {})
  socket.connect()
  const channel = socket.channel(TOPIC, { presence: { key, meta: { name: key } } })
  const presence = new Presence(channel)
  const c = { key, socket, channel, presence, syncs: 0, joins: [] }
  presence.onSync(() => c.syncs++)
  channel.join()
    .receive("ok", () => c.joins.push(channel.joinRef()))
    .receive("error", (e) => fail(`${key}: join refused: ${JSON.stringify(e)}`))
  return c
}

// state renders what a client's Presence holds: "key:metas" sorted, and
// checks the metas as phoenix.js's list gives them.
function state(c) {
  return c.presence.list((key, { metas }) => {
    for (const m of metas) {
      if (typeof m.phx_ref !== "string" || m.name !== key) fail(`${c.key} sees a bad meta of ${key}: ${JSON.stringify(m)}`)
    }
    return `${key}:${metas.length}`
  }).sort().join(",")
}

function refs(c, key) {
  const p = c.presence.state[key]
  return p ? p.metas.map((m) => m.phx_ref) : []
}

function until(what, cond) {
  return new Promise((resolve) => {
    const t = setInterval(() => {
      if (cond()) {
        clearInterval(t)
        resolve()
      }
    }, 10)
  }).catch(() => fail(what))
}

const observer = client(urlA, "observer")
const bob = client(urlA, "bob")
const alice = client(urlB, "alice")
const all = [observer, bob, alice]
const everyone = "alice:1,bob:1,observer:1"

await until("every client to sync everyone", () => all.every((c) => c.syncs > 0 && state(c) === everyone))
console.log("SYNCED")

const oldRef = refs(observer, "bob")[0]
// Lose bob's connection under the client's feet: it reconnects and rejoins
// by itself, with a new join_ref and a new meta.
bob.socket.conn.close(4000, "connection lost")
await until("bob to rejoin", () => bob.joins.length === 2 && bob.channel.state === "joined")
await until("bob's new meta, and only it, everywhere", () => all.every((c) => {
  const r = refs(c, "bob")
  return state(c) === everyone && r.length === 1 && r[0] !== oldRef
}))
console.log("RECONNECTED")

// Gateway B's process is killed: alice's connection is cut without a
// word, and her client tries in vain to reconnect.
console.log("READY_TO_KILL")
const killedAt = Date.now()
await until("alice to leave", () => state(observer) === "bob:1,observer:1" && state(bob) === "bob:1,observer:1")
console.log(`ALICE_LEFT ${state(observer)} after_ms=${Date.now() - killedAt}`)
observer.socket.disconnect()
bob.socket.disconnect(() => process.exit(0))
