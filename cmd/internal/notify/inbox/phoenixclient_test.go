package inbox_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/ringcast/ringcast/pubsub/gateway/gatewaytest"
)

// TestOfficialPhoenixClientInbox runs the official Phoenix JavaScript
// client as two devices of one user, one connected with params: {token},
// the other with authToken: both get a notification and its count live,
// a read on one reaches the other at once, and a reconnect with the last
// positions brings exactly the notifications missed meanwhile.
func TestOfficialPhoenixClientInbox(t *testing.T) {
	js := gatewaytest.FindPhoenixJS(t)
	sys := newSystem(t)
	nd := sys.start(nil)
	alice := sys.user("alice")
	bob := sys.user("bob")
	sys.topic("alice", "news")
	sys.subscribe("bob", "news")
	sys.publish("alice", "news", `{"title":"before"}`)

	js.Run(t, 60*time.Second, "PHOENIX_INBOX_OK joined,notified,read-elsewhere,rejoined",
		filepath.Join("testdata", "phoenix_inbox.mjs"), nd.srv.URL, bob, alice, "news", "bob")
	in, err := sys.svc.Inbox(ctxT(t), "bob")
	if err != nil || in.Unread != 2 || in.Topics[0].ReadSeq != 2 {
		t.Fatalf("database inbox %+v %v", in, err)
	}
	waitFor(t, "the sessions to end", func() bool { return nd.ch.Stats().Sessions == 0 })
}
