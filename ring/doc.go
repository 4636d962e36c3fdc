// Package ring is ringcast's membership layer: it tracks which nodes are in
// the cluster and decides, for every topic, which node owns it.
//
// # Membership
//
// A [Ring] runs a hashicorp/memberlist instance. Nodes find each other with
// [Ring.Join] (any one reachable member is enough), spread membership by
// gossip, detect failed nodes with SWIM probes and announce a graceful
// departure with [Ring.Leave]. Every node advertises a small msgpack metadata
// record: its protocol version ([Config.ProtocolVersion]), its roles and the
// address of its node-to-node link. Members whose metadata does not decode,
// or whose version differs from this node's, are logged and left out of
// every [View].
//
// [Ring.JoinSeeds] joins [Config.Seeds] and keeps trying, with a growing
// wait, until one answers; seeds may be DNS names standing for several
// addresses. From New on, the Ring heals: every
// [Timings.ReconnectInterval] it tries to reach the members it lost to
// failure (not those that left) and, once joined, the seeds that are not
// alive members, so a restarted seed or the two sides of a healed partition
// merge back into one cluster. Memberlist alone does not: once each side
// has declared the other dead, neither knows a live member of the other.
//
// [Config.ClusterName] is used as memberlist's label, so nodes of different
// clusters that can reach each other never merge. The [Timings] embedded in
// Config tune failure detection; [FastTimings] suits tests and small
// clusters on one host.
//
// # Security
//
// [Config.SecretKey] turns on memberlist's gossip encryption (AES-GCM,
// which also authenticates every packet and stream): only members with the
// key can join, read the member list or change it. Without a key the Ring
// runs in protected mode: gossip whose source is not a loopback address
// (127.0.0.0/8, ::1) is dropped before memberlist sees it, logged ("ring:
// protected mode: ...") and counted, and memberlist accepts only members
// that advertise a loopback address (its CIDRsAllowed), so a single-host
// cluster works and nobody else can join it, take a share of the ring or
// declare its members dead. A Ring bound to another address without a key
// logs a warning at start. [Config.InsecureAllowRemotePeers] turns
// protected mode off, for a network whose every host is trusted.
//
// # Roles
//
// A member with [RoleTopics] owns topics and is placed on the hash ring. A
// member with [RoleGateway] serves WebSocket clients. A node may have both.
// A gateway-only member is part of the membership (it is listed by
// [View.Members]) but never owns a topic. A cluster without any topic owner
// answers [View.Owner] with [ErrNoOwners]. [Ring.SetRoles] changes a node's
// roles while it runs; dropping RoleTopics before [Ring.Leave] drains the
// node: its topics move to other owners while it is still reachable.
//
// # The ring
//
// Ownership uses consistent hashing with bounded loads (buraksezer/consistent
// with an xxhash hasher). The topic name is hashed into one of
// [Config.PartitionCount] partitions; each partition is assigned to a topic
// owner. Every member is placed [Config.VirtualNodes] times on the ring, and
// no owner receives more than [Config.Load] times its fair share of
// partitions. The assignment depends only on the set of owners and the ring
// parameters, never on the order in which members were discovered, so every
// node that sees the same members computes the same owner for every topic.
// All nodes of a cluster must therefore use the same PartitionCount,
// VirtualNodes and Load.
//
// [View.Owners] returns the owner followed by its replica candidates: the
// next distinct owners in ring order, the same order consistent's
// GetClosestN uses.
//
// # Partition count
//
// The default of 1021 partitions is a prime, which spreads hash values evenly
// over the partitions, and it is far above any expected number of topic
// owners. The spread of partitions over owners is only as fine as one
// partition: with 5 owners each owns about 204 partitions, so one partition
// more or less is half a percent of load. Small partition counts give
// visibly uneven shares. A ring never places more owners than there are
// partitions; owners beyond that count (in name order) are left off the ring
// and a warning is logged.
//
// # The change feed
//
// Memberlist reports joins, updates and departures on its own goroutines.
// The Ring records each one in a member table under a short lock and wakes
// one rebuild goroutine; no memberlist goroutine ever waits on ringcast.
// The rebuild goroutine builds a new immutable [View], publishes it
// atomically ([Ring.View] never blocks and never returns nil) and offers it
// to every watcher registered with [Ring.Watch]. A watcher channel holds at
// most one view: a newer view replaces an unread older one, so a slow reader
// never delays membership and always ends up with the latest view. Each view
// carries a [View.Version] that grows with every change this node observes.
//
// Joins, graceful departures and failures are logged at Info level. A
// member that calls [Ring.Leave] first gossips metadata marked as leaving,
// then memberlist's leave message, so the others can tell a leave from a
// failure. Memberlist's own log lines are routed to the configured
// [log/slog.Logger] at their matching levels, one record per line, with the
// message "memberlist" and the line's kind and text as attributes; the Ring
// does not sample them (see [Config.Logger]).
//
// # Files
//
//   - config.go: [Config], its defaults and limits, and their validation.
//   - timings.go: [Timings], the failure-detection presets.
//   - ring.go: the [Ring] itself: New, Join, Leave, SetRoles, Close, Watch.
//   - join.go: [Ring.JoinSeeds], retried with backoff; seed name lookups.
//   - heal.go: healing: reconnecting failed members and absent seeds.
//   - events.go: memberlist's delegates, the member table and the rebuild
//     goroutine that turns it into views.
//   - member.go: [Member] and its metadata encoding, decoded with bounds
//     checks on every length.
//   - view.go: the immutable [View] and the ownership lookups.
//   - log.go: memberlist's log lines routed to the slog.Logger.
package ring
