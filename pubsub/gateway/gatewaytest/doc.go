// Package gatewaytest runs Node.js scripts that drive a gateway with the
// official Phoenix JavaScript client, for the tests of package gateway
// and of the services built on it.
//
// # Setup
//
// The client comes from a directory where `npm install phoenix@1.8 ws@8`
// ran, named by the environment variable RINGCAST_PHOENIX_JS, and a node
// binary on PATH. Without RINGCAST_PHOENIX_JS, FindPhoenixJS skips the
// test with a message saying so, unless the environment variable CI is
// set: CI must run these tests, so there it fails instead.
//
// # Use
//
//	js := gatewaytest.FindPhoenixJS(t) // before starting anything
//	// start the server
//	out := js.Run(t, 40*time.Second, "CLIENT_OK", "testdata/client.mjs", url)
//
// A script finds the client's modules through RINGCAST_PHOENIX_JS, which
// Command and Run set in its environment. The package uses the standard
// library only.
package gatewaytest
