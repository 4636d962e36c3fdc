package broker_test

import (
	"testing"

	"github.com/ringcast/ringcast/ring/ringtest"
)

// The presence tests kill a member: memberlist's probes of it end up to
// 2 s after the nodes closed (ringtest.VerifyTestMain waits for them).
func TestMain(m *testing.M) { ringtest.VerifyTestMain(m) }
