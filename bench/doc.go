// Package bench holds ringcast's end-to-end benchmarks: real nodes on
// 127.0.0.1, real peer links, real WebSocket connections. It has no API;
// everything is in its _test.go files, run with go test -bench.
//
// # Workloads
//
//   - W1, BenchmarkEmbeddedFanout: one node, one topic, 1 or 1,000
//     subscribers (SubscribeFunc handlers or Next readers), the publisher on
//     the same node.
//   - W2, BenchmarkClusterFanout and BenchmarkClusterLatency: three nodes,
//     the publisher on node 0, 150 subscribers on each of nodes 1 and 2, one
//     topic owned by node 0 or node 1; maximum throughput, and
//     publish-to-receipt latency at a fixed 2,000 messages per second
//     (owner node 1: every publish crosses two links); each with plain
//     links (links=plain) and with a shared secret, every frame sealed
//     with AES-256-GCM (links=sealed).
//   - W3, BenchmarkManyTopics: three nodes, 10,000 topics with one
//     subscriber each on node i%3, the publisher on node 0 going round-robin.
//   - W4, BenchmarkWebSocket: N connections (RINGCAST_BENCH_CONNS, default
//     1,000) on one gateway Handler backed by a one-node cluster; heap and
//     stack bytes and goroutines per idle connection, and the latency of a
//     broadcast to all of them. The clients run in child processes (the
//     test binary again), so the gateway's numbers are its own.
//   - TestFramesPerPublish: inter-node frames per publish against cluster
//     size (3, 5, 7), subscriber spread (1, half, all nodes) and replication
//     factor (1, 2), checked topic by topic against the design and logged
//     beside what a broadcast design sends (N-1).
//
// # Flow control
//
// Throughput benchmarks never let a publisher run ahead without bound: it
// publishes with AckNone (on the owner itself Publish is synchronous
// anyway) and stays at most 256 messages ahead of its slowest subscriber
// (W1, W2) or 4,096 deliveries ahead of all of them (W3), waiting for the
// subscribers otherwise. The clock stops only
// once every delivery has arrived; a benchmark that does not drain within
// its deadline fails and says how many deliveries are missing.
//
// # Clusters
//
// Nodes run in the benchmark's process on 127.0.0.1 with ports chosen by
// the system, and gossip with pubsub.FastGossip's intervals but a slower
// failure detector (1 s probes, 500 ms probe timeout): with FastGossip's
// 50 ms timeout, nodes of a benchmark that keeps both cores busy declare
// each other dead, and topics fail over in the middle of a measurement.
// Publishers retry while a link's queue is full (back-pressure).
//
// # Payloads and metrics
//
// Every payload is 128 bytes whose first 8 hold the publisher's
// send time in unix nanoseconds (Now); subscribers turn it into publish-to-receipt
// latency. Benchmarks report allocations and, as custom metrics,
// deliveries/s, p50-µs and p99-µs latency, frames/publish, heap-B/conn and
// goroutines/conn.
//
// # Running
//
//	go test -run '^$' -bench . -benchtime 2s -count 5 ./bench
//	go test -run TestFramesPerPublish -v ./bench
//	RINGCAST_BENCH_CONNS=19500 go test -run '^$' -bench WebSocket -benchtime 10x ./bench
//
// The gateway's process needs one descriptor per connection: past about
// 19,900 connections raise ulimit -n (50,000 need about 50,100). Client
// processes hold up to 15,000 connections each and dial from 127.0.0.2,
// 127.0.0.3, ... so that no source address runs out of ephemeral ports.
//
// bench/RESULTS.md records the numbers measured, the machine and the
// commands; bench/peers compares the same workloads with NATS and Redis.
//
// # Files
//
// embedded_test.go (W1: one node, local subscribers), cluster_test.go (W2:
// fan-out across nodes, latency, many topics), websocket_test.go and
// wsclient_test.go (W4: the gateway and its clients), topics_test.go (heap
// per topic), efficiency_test.go (frames per publish); measure_test.go and
// latency.go time and count; helpers_test.go starts clusters.
package bench
