// The official Phoenix JavaScript client against two ringcast gateways:
// one Socket on each, both join the same topic, a push of "publish" on one
// reaches both, heartbeats are answered, and both leave.
//
//   RINGCAST_PHOENIX_JS=DIR node phoenix.mjs ws://GW1/socket ws://GW2/socket TOPIC
//
// DIR holds node_modules/phoenix (1.8) and node_modules/ws (8). Exits 0 on
// success, 1 with a message on stderr otherwise.
import { createRequire } from "node:module";
import path from "node:path";

const fail = (msg) => {
  console.error("FAIL: " + msg);
  process.exit(1);
};

const dir = process.env.RINGCAST_PHOENIX_JS;
if (!dir) fail("RINGCAST_PHOENIX_JS is not set");
const require = createRequire(path.join(path.resolve(dir), "index.js"));
const { Socket } = require("phoenix");
const WebSocket = require("ws");

const [url1, url2, topic] = process.argv.slice(2);
if (!url1 || !url2 || !topic) fail("usage: phoenix.mjs SOCKET_URL_1 SOCKET_URL_2 TOPIC");
setTimeout(() => fail("timed out"), 20000).unref();

// connect opens a Socket and counts its opens, closes and heartbeat replies.
function connect(name, url) {
  const s = {
    name,
    opens: 0,
    closes: 0,
    heartbeats: 0,
    socket: new Socket(url, {
      transport: WebSocket,
      heartbeatIntervalMs: 100,
      reconnectAfterMs: () => 100,
    }),
  };
  s.socket.onOpen(() => s.opens++);
  s.socket.onClose(() => s.closes++);
  s.socket.onError((e) => console.error(`${name}: socket error ${e && e.message ? e.message : e}`));
  s.socket.onMessage((m) => {
    if (m.topic === "phoenix" && m.event === "phx_reply" && m.payload.status === "ok") s.heartbeats++;
  });
  s.socket.connect();
  return s;
}

// reply waits for the server's answer to a join, push or leave.
function reply(what, push) {
  return new Promise((resolve, reject) => {
    push
      .receive("ok", resolve)
      .receive("error", (r) => reject(new Error(`${what}: error ${JSON.stringify(r)}`)))
      .receive("timeout", () => reject(new Error(`${what}: timeout`)));
  });
}

async function until(what, cond) {
  const deadline = Date.now() + 10000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error("timed out waiting for " + what);
    await new Promise((r) => setTimeout(r, 10));
  }
}

async function main() {
  const a = connect("A", url1);
  const b = connect("B", url2);
  const chA = a.socket.channel(topic, {});
  const chB = b.socket.channel(topic, {});
  const got = { A: [], B: [] };
  chA.on("event", (p) => got.A.push(JSON.stringify(p)));
  chB.on("event", (p) => got.B.push(JSON.stringify(p)));
  let closed = 0;
  chA.onClose(() => closed++);
  chB.onClose(() => closed++);

  await reply("join A", chA.join());
  await reply("join B", chB.join());

  const first = { message: "red pill or blue pill?" };
  await reply("publish on B", chB.push("publish", ["event", first]));
  await until("the broadcast on both sockets", () => got.A.length >= 1 && got.B.length >= 1);
  const second = { message: "blue pill", n: 2 };
  await reply("publish on A", chA.push("publish", ["event", second]));
  await until("the second broadcast on both sockets", () => got.A.length >= 2 && got.B.length >= 2);
  const want = [JSON.stringify(first), JSON.stringify(second)];
  for (const [name, msgs] of Object.entries(got)) {
    if (JSON.stringify(msgs) !== JSON.stringify(want)) {
      throw new Error(`${name} received ${JSON.stringify(msgs)}, want ${JSON.stringify(want)}`);
    }
  }

  await until("three heartbeat replies on each socket", () => a.heartbeats >= 3 && b.heartbeats >= 3);
  for (const s of [a, b]) {
    if (s.opens !== 1 || s.closes !== 0) throw new Error(`${s.name} reconnected: ${s.opens} opens, ${s.closes} closes`);
  }

  await reply("leave A", chA.leave());
  await reply("leave B", chB.leave());
  await until("both channels closed", () => closed === 2);
  if (chA.state !== "closed" || chB.state !== "closed") throw new Error(`channel states ${chA.state}, ${chB.state}`);

  a.socket.disconnect();
  b.socket.disconnect();
  console.log(`ok: 2 broadcasts on both sockets, ${a.heartbeats}+${b.heartbeats} heartbeats, both left`);
  process.exit(0);
}

main().catch((e) => fail(e.message));
