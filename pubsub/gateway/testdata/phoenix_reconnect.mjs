// Drives the official Phoenix JavaScript client through a lost connection:
// it joins, publishes, loses its socket, reconnects on its own, rejoins its
// channel with a new join_ref, and publishes and receives again. Exits 0
// only if all of that happened.
//
//   RINGCAST_PHOENIX_JS=DIR node phoenix_reconnect.mjs SOCKET_URL

import { createRequire } from "node:module"
import path from "node:path"

const require = createRequire(path.join(path.resolve(process.env.RINGCAST_PHOENIX_JS || "."), "index.js"))
const { Socket } = require("phoenix")
const WebSocket = require("ws")

const [url] = process.argv.slice(2)
function fail(msg) {
  console.error(`FAIL: ${msg}`)
  process.exit(1)
}
setTimeout(() => fail("timed out"), 20000).unref()

const socket = new Socket(url, {
  transport: WebSocket,
  heartbeatIntervalMs: 1000,
  reconnectAfterMs: () => 100,
  rejoinAfterMs: () => 100,
})
let opens = 0
socket.onOpen(() => opens++)
socket.connect()

const channel = socket.channel("topics:rejoin", {})
const received = []
channel.on("e", (payload) => received.push(payload.n))

const joins = []
channel.join()
  .receive("ok", () => joins.push(channel.joinRef()))
  .receive("error", (e) => fail(`join refused: ${JSON.stringify(e)}`))

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

function publish(n) {
  return new Promise((resolve) => {
    channel.push("publish", ["e", { n }])
      .receive("ok", resolve)
      .receive("error", (e) => fail(`publish ${n} refused: ${JSON.stringify(e)}`))
      .receive("timeout", () => fail(`publish ${n} timed out`))
  })
}

await until("first join", () => joins.length === 1)
await publish(1)
await until("broadcast 1", () => received.includes(1))

// Lose the connection under the client's feet (not socket.disconnect(),
// which would be a clean close and stop the client from reconnecting).
socket.conn.close(4000, "connection lost")
await until("reconnect and rejoin", () => opens === 2 && joins.length === 2 && channel.state === "joined")
if (joins[0] === joins[1]) fail(`rejoin reused join_ref ${joins[0]}`)

await publish(2)
await until("broadcast 2 after the rejoin", () => received.includes(2))
if (received.join(",") !== "1,2") fail(`received ${received}`)

socket.disconnect(() => {
  console.log(`PHOENIX_RECONNECT_OK opens=${opens} joins=${joins.join(",")}`)
  process.exit(0)
})
