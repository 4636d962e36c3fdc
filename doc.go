// Package ringcast is a distributed publish/subscribe system for Go.
//
// Every topic has one owner node, chosen on a consistent hash ring whose
// membership is shared by gossip. A publish goes straight to the topic's
// owner; the owner orders it and sends it once to each node that has
// subscribers; each node hands it to its local subscribers.
//
// The module is organised in packages that depend downward only:
//
//   - ring: membership (gossip) and the hash ring that names each topic's owner.
//   - transport: node-to-node links carrying length-prefixed typed frames.
//   - pubsub: the embeddable Node that ties them together; its messages
//     and their msgpack codec are in pubsub/internal/wire, and pubsub/topics
//     holds the topic vocabulary it shares with the gateway.
//   - pubsub/gateway: the client gateway, speaking the Phoenix Channels V2
//     protocol; it does not import pubsub, and pubsub/gateway/broker connects
//     a Node to it.
//
// The binaries in cmd/ build a complete notification system from these
// pieces; examples/ shows how to embed and run them.
package ringcast
