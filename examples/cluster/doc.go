// Package cluster is a runnable example and its test, not a library: run.sh
// starts a local ringcast cluster of two gateways and two topic servers
// sharing one SQLite store, and README.md shows a websocat session against
// it.
//
// # Tests
//
// The package's tests build ringcast-ws and ringcast-topic and run them as
// processes on 127.0.0.1 with ports chosen by the system: they replay the
// README's session byte for byte across two gateways, publish over HTTP,
// stop a topic's owner mid-session, kill one with SIGKILL while publishing
// with ack=replicated (TestFailover logs the kill-to-recovery time), resume
// a client with {"since": seq, "epoch": "e"}, check the command lines
// (--help, bad flags, busy ports, environment variables), kill a whole
// cluster whose topics are durable (on a PostgreSQL server the test starts,
// and on the default SQLite file) and check that a client resumes exactly
// where it was, refuse a store that is not ringcast's, run the notification
// system (accounts, a creator's topic, the inbox on two devices with exact
// unread counts, a read reaching the other device, an email for the
// subscriber who was away, through an SMTP server the test runs; SIGKILL
// and a restart with counts, tokens and positions intact and no email sent
// twice; the SMTP server down and coming back), and, with
// RINGCAST_PHOENIX_JS set, run the official Phoenix JavaScript client across
// two gateways, and, with the prometheus binary installed, scrape a
// cluster with a real Prometheus configured by prometheus.yml. Run as root with iproute2, TestNetsplitHeals runs a topic
// server and a gateway in each of two network namespaces joined by a veth
// pair, cuts the link, restores it, and logs the heal time; elsewhere it
// skips. With Chromium (the Debian package chromium; required when
// RINGCAST_REQUIRE_CHROMIUM=1), TestNotificationPage and TestStatusPage
// drive the notification page and the status page in a headless browser,
// and RINGCAST_UPDATE_SCREENSHOTS=1 writes their screenshots
// (../notify/screenshot.png, status.png).
//
// # Files
//
// run.sh starts the cluster; cluster_test.go runs it and checks delivery
// across gateways; failover_test.go kills and restarts nodes;
// resume_test.go reconnects clients with since; durable_test.go restarts
// clusters on a store (PostgreSQL from package pubsub/store/pgtest);
// notify_test.go runs the notification system and its SMTP server;
// runscript_test.go runs run.sh; browser_test.go drives the web pages
// (with package examples/internal/browser); prometheus_test.go runs
// Prometheus with prometheus.yml (and evaluates the Grafana dashboard's
// queries); grafana_test.go checks that the dashboard (examples/grafana)
// uses only metrics the binaries serve; netsplit_test.go splits and heals a
// cluster, with the namespaces, the veth pair and the proxies that reach
// into them in netns_test.go; process_test.go holds the helpers that start
// and stop the binaries by PID.
package cluster
