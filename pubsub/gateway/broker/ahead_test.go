package broker_test

import (
	"fmt"
	"strconv"
	"testing"

	"github.com/ringcast/ringcast/pubsub"
	"github.com/ringcast/ringcast/pubsub/gateway"
	"github.com/ringcast/ringcast/pubsub/gateway/broker"
)

// A client joining with a since the topic has not reached (a position from
// an earlier life of the cluster, or a client bug) is told to reset, at the
// topic's head, and gets the live messages after it: it is never left
// joined and deaf. The topic is owned by another node than the gateway's.
func TestGatewayJoinSinceBeyondTheHead(t *testing.T) {
	owner := startNode(t, "topics", "", pubsub.RoleTopics)
	g := startNode(t, "gateway", owner.GossipAddr(), pubsub.RoleGateway)
	waitMembers(t, owner, g)
	_, url := serveGateway(t, g)
	b := broker.New(owner)
	ctx := ctxT(t)
	publish := func(i int) {
		t.Helper()
		data := gateway.EncodeEnvelope("event", []byte(fmt.Sprintf(`{"n":%d}`, i)), false)
		if _, err := b.Publish(ctx, "topics:ahead", data); err != nil {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 5; i++ {
		publish(i)
	}
	info, err := owner.TopicInfo(ctx, "topics:ahead")
	if err != nil {
		t.Fatal(err)
	}
	e := strconv.FormatUint(info.Epoch, 10)
	reset := `["1","1","topics:ahead","phx_reply",{"status":"ok","response":{"recovered":false,"reset":true,"epoch":"` + e + `","seq":5}}]`

	withEpoch := dial(t, url)
	withEpoch.send(`["1","1","topics:ahead","phx_join",{"since":99,"epoch":"` + e + `"}]`)
	withEpoch.expect(reset)
	bare := dial(t, url)
	bare.send(`["1","1","topics:ahead","phx_join",{"since":99}]`)
	bare.expect(reset)
	for i := 6; i <= 8; i++ {
		publish(i)
		want := fmt.Sprintf(`["1",null,"topics:ahead","event",{"n":%d},{"seq":%d,"epoch":"%s"}]`, i, i, e)
		withEpoch.expect(want)
		bare.expect(want)
	}
}
