package bench

import (
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(wsClientEnv) != "" {
		os.Exit(wsClientMain()) // a W4 client process, see wsclient_test.go
	}
	goleak.VerifyTestMain(m)
}
