package ring

import (
	"testing"

	"github.com/ringcast/ringcast/ring/ringtest"
)

func TestMain(m *testing.M) { ringtest.VerifyTestMain(m) }
