// Package ringtest helps the tests of packages that run ring members.
package ringtest

import (
	"fmt"
	"os"
	"time"

	"go.uber.org/goleak"
)

// LeakWait is how long VerifyTestMain waits for goroutines to end.
// memberlist's probe goroutines outlive Shutdown by up to the probe
// interval times the awareness multiplier (2 s with FastTimings), longer
// than goleak's own retries.
const LeakWait = 5 * time.Second

// TestingM is what VerifyTestMain runs: *testing.M.
type TestingM interface{ Run() int }

// VerifyTestMain runs m's tests and, if they pass, fails the run unless
// every goroutine they started has ended within LeakWait (goleak), then
// exits. Call it from TestMain.
func VerifyTestMain(m TestingM) {
	code := m.Run()
	if code == 0 {
		deadline := time.Now().Add(LeakWait)
		err := goleak.Find()
		for err != nil && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			err = goleak.Find()
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "goleak: errors on successful test run: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}
