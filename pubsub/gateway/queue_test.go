package gateway

import (
	"reflect"
	"testing"
)

// A queue join on a gateway whose broker has no queue groups is refused
// with a reason, and the connection goes on.
func TestQueueJoinUnsupported(t *testing.T) {
	g := newGateway(t, NewMemoryBroker(), nil)
	c := g.dial()
	c.send(`["1","2","jobs:x","phx_join",{"queue":"workers"}]`)
	c.expect(errReply("1", "2", "jobs:x", reasonNoQueue))
	c.send(`["1","3","jobs:x","phx_join",{"queue":"workers","since":1}]`)
	c.expect(errReply("1", "3", "jobs:x", reasonQueueSince))
	c.join("1", "jobs:x")
}

// FuzzParseJoin checks the join payload parser on arbitrary JSON: it
// never panics, and a payload it accepts with a queue group names a valid
// group and no resume position.
func FuzzParseJoin(f *testing.F) {
	for _, s := range []string{
		`{}`, `null`, `{"meta":true}`, `{"since":3,"epoch":"7"}`,
		`{"queue":"workers"}`, `{"queue":""}`, `{"queue":null}`, `{"queue":1}`,
		`{"queue":"w","since":1}`, `{"queue":"a\u0000"}`, `{"queue":["x"]}`, `{"queue":"w","meta":true}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		p, reason := parseJoin(&frame{payload: data})
		if reason != "" {
			if !reflect.DeepEqual(p, joinParams{}) {
				t.Fatalf("refused %q (%s) but returned %+v", data, reason, p)
			}
			return
		}
		if p.queue != "" && (!validQueueGroup(p.queue) || p.since != nil) {
			t.Fatalf("accepted %q as queue %q since %v", data, p.queue, p.since)
		}
	})
}
