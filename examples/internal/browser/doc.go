// Package browser drives a headless Chromium (github.com/chromedp/chromedp)
// for the tests of ringcast's web pages: the notification page and the
// status page.
//
// # Use
//
//	b := browser.Start(t)         // skips without Chromium, unless RINGCAST_REQUIRE_CHROMIUM=1
//	alice := b.NewTab("alice")    // a browser context of its own
//	alice.Navigate("http://" + addr + "/")
//	alice.Fill("#signin-form [name=id]", "alice")
//	alice.Click("#signin-form button")
//	alice.WaitText("#unread-total", "0")
//	alice.CheckNoErrors()         // no console error, exception or CSP violation
//	browser.SaveScreenshot(t, "screenshot.png", alice.Screenshot())
//
// # Chromium
//
// Start runs the binary Find returns ($RINGCAST_CHROMIUM, else chromium,
// chromium-browser, google-chrome on PATH) with --headless and
// --no-sandbox (tests may run as root), in a temporary user data
// directory. When the test ends it closes the browser, kills every process
// that still uses that directory, and removes it; Chromium is also killed
// if the test process dies (PR_SET_PDEATHSIG). No goroutine of chromedp
// outlives the test.
//
// # Screenshots
//
// SaveScreenshot writes a screenshot over the committed one only with
// RINGCAST_UPDATE_SCREENSHOTS=1; otherwise it checks that the committed
// file is a PNG, and compares nothing, since the pages show times and
// addresses that change from run to run.
//
// It serves the end-to-end tests under examples; binaries do not link it.
package browser
