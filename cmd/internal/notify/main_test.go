package notify

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/ringcast/ringcast/pubsub/store/pgtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(pgtest.Main(m)) }
