package browser

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Environment variables the package reads.
const (
	// EnvChromium names the Chromium binary; without it Find looks for
	// chromium, chromium-browser, google-chrome and google-chrome-stable
	// on PATH.
	EnvChromium = "RINGCAST_CHROMIUM"
	// EnvRequire, set to 1, makes Start fail instead of skip without
	// Chromium: CI sets it.
	EnvRequire = "RINGCAST_REQUIRE_CHROMIUM"
	// EnvUpdateScreenshots, set to 1, makes SaveScreenshot write the
	// screenshots it is given over the committed ones.
	EnvUpdateScreenshots = "RINGCAST_UPDATE_SCREENSHOTS"
)

// Timeout bounds each Run and each wait.
const Timeout = 20 * time.Second

// Width and Height are the window's size, and so the screenshots'.
const (
	Width  = 1280
	Height = 860
)

// Find returns the path of a Chromium binary: $RINGCAST_CHROMIUM, or the
// first of chromium, chromium-browser, google-chrome and
// google-chrome-stable on PATH; "" if there is none.
func Find() string {
	if p := os.Getenv(EnvChromium); p != "" {
		if lp, err := exec.LookPath(p); err == nil {
			return lp
		}
		return ""
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// Browser is one headless Chromium process.
type Browser struct {
	t           testing.TB
	allocCtx    context.Context
	cancelAlloc context.CancelFunc
	ctx         context.Context // the browser's first tab, which keeps it running
	cancel      context.CancelFunc
}

// Start starts a headless Chromium (--headless, --no-sandbox, a temporary
// user data directory, which is removed at the end) and stops it, killing
// every process of it, when the test ends. Without Chromium it skips the
// test, or fails it when RINGCAST_REQUIRE_CHROMIUM=1.
func Start(t testing.TB) *Browser {
	t.Helper()
	path := Find()
	if path == "" {
		msg := "no Chromium: install the Debian package chromium (or set " + EnvChromium + " to a Chromium or Chrome binary) to run the browser tests"
		if os.Getenv(EnvRequire) == "1" {
			t.Fatal(msg + "; " + EnvRequire + "=1 requires it")
		}
		t.Skip(msg)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.NoSandbox, // tests may run as root, where the sandbox refuses to start
		chromedp.WindowSize(Width, Height),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("mute-audio", true),
		chromedp.Flag("lang", "en-GB"),
	)
	b := &Browser{t: t}
	b.allocCtx, b.cancelAlloc = chromedp.NewExecAllocator(context.Background(), opts...)
	b.ctx, b.cancel = chromedp.NewContext(b.allocCtx, chromedp.WithLogf(func(string, ...any) {}))
	t.Cleanup(b.stop)
	// The first call starts the browser, which lives as long as the
	// context of that call: it has no timeout of its own.
	if err := chromedp.Do(b.ctx); err != nil {
		t.Fatalf("starting %s: %v", path, err)
	}
	return b
}

// stop closes the browser and waits for its processes to end.
func (b *Browser) stop() {
	b.cancel()
	b.cancelAlloc() // kills Chromium's processes and waits for them
}

// Tab is one page in a browser context of its own: its cookies and
// storage are its own, as another user's browser's would be. A Tab records
// the page's console errors, uncaught exceptions and browser log entries
// of level error (a Content-Security-Policy violation, a failed request).
type Tab struct {
	t      testing.TB
	name   string
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.Mutex
	errors []string
}

// NewTab opens a tab in a new browser context. name labels its failures.
func (b *Browser) NewTab(name string) *Tab {
	b.t.Helper()
	tab := &Tab{t: b.t, name: name}
	tab.ctx, tab.cancel = chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext())
	b.t.Cleanup(tab.cancel)
	// Listen opens the tab (the first call on its context, so without a
	// timeout) and records its errors from then on.
	if err := chromedp.Listen(tab.ctx, tab.listen); err != nil {
		b.t.Fatalf("%s: opening a tab: %v", name, err)
	}
	return tab
}

// listen records the page's errors.
func (tab *Tab) listen(ev any) {
	var msg string
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError {
			return
		}
		var parts []string
		for _, a := range ev.Args {
			if a.Value != nil {
				parts = append(parts, string(a.Value))
			} else {
				parts = append(parts, a.Description)
			}
		}
		msg = "console.error: " + strings.Join(parts, " ")
	case *runtime.EventExceptionThrown:
		msg = "exception: " + ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		if ev.Entry.Level != log.EntryLevelError {
			return
		}
		msg = "log " + string(ev.Entry.Source) + ": " + ev.Entry.Text + " " + ev.Entry.URL
	default:
		return
	}
	tab.mu.Lock()
	tab.errors = append(tab.errors, msg)
	tab.mu.Unlock()
}

// Errors returns what the page reported as errors so far.
func (tab *Tab) Errors() []string {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return append([]string(nil), tab.errors...)
}

// CheckNoErrors fails the test if the page reported errors, except those
// containing one of allowed.
func (tab *Tab) CheckNoErrors(allowed ...string) {
	tab.t.Helper()
outer:
	for _, e := range tab.Errors() {
		for _, a := range allowed {
			if strings.Contains(e, a) {
				continue outer
			}
		}
		tab.t.Errorf("%s: the page reported an error: %s", tab.name, e)
	}
}

// Run runs actions in the tab within Timeout, and fails the test if one
// fails.
func (tab *Tab) Run(what string, actions ...chromedp.Action[chromedp.Void]) {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		tab.t.Fatalf("%s: %s: %v (page errors: %q)", tab.name, what, err, tab.Errors())
	}
}

// Eval evaluates the JavaScript expression js and returns its value,
// decoded into a T.
func Eval[T any](tab *Tab, js string) T {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js))
	if err != nil {
		tab.t.Fatalf("%s: evaluating %s: %v (page errors: %q)", tab.name, js, err, tab.Errors())
	}
	return v
}

// WaitFor polls the JavaScript expression js until it is true, for at
// most Timeout; what says what is awaited.
func (tab *Tab) WaitFor(what, js string) {
	tab.t.Helper()
	deadline := time.Now().Add(Timeout)
	for {
		ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool]("!!("+js+")"))
		cancel()
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			ctx, cancel := context.WithTimeout(tab.ctx, 2*time.Second)
			html, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.body ? document.body.innerText : ''"))
			cancel()
			tab.t.Fatalf("%s: timed out after %v waiting for %s (%s; err %v; page errors %q)\npage text:\n%s",
				tab.name, Timeout, what, js, err, tab.Errors(), html)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Text returns the text of the first element matching the CSS selector,
// or "" if there is none.
func (tab *Tab) Text(selector string) string {
	tab.t.Helper()
	return Eval[string](tab, fmt.Sprintf("(() => { const e = document.querySelector(%s); return e ? e.textContent.trim() : ''; })()", quote(selector)))
}

// WaitText waits until the first element matching selector has the text
// want.
func (tab *Tab) WaitText(selector, want string) {
	tab.t.Helper()
	tab.WaitFor(fmt.Sprintf("%s to read %q", selector, want),
		fmt.Sprintf("(() => { const e = document.querySelector(%s); return !!e && e.textContent.trim() === %s; })()", quote(selector), quote(want)))
}

// Fill sets the value of the input matching selector, as typing would.
func (tab *Tab) Fill(selector, value string) {
	tab.t.Helper()
	tab.Run("filling "+selector, chromedp.WaitVisible(chromedp.CSS(selector)), chromedp.SetValue(chromedp.CSS(selector), value))
}

// Click clicks the first element matching selector, once it is visible.
func (tab *Tab) Click(selector string) {
	tab.t.Helper()
	tab.Run("clicking "+selector, chromedp.WaitVisible(chromedp.CSS(selector)), chromedp.Click(chromedp.CSS(selector)))
}

// Navigate loads url and waits for its body.
func (tab *Tab) Navigate(url string) {
	tab.t.Helper()
	tab.Run("loading "+url, chromedp.Navigate(url), chromedp.WaitReady(chromedp.CSS("body")))
}

// Screenshot returns a PNG of the whole page.
func (tab *Tab) Screenshot() []byte {
	tab.t.Helper()
	ctx, cancel := context.WithTimeout(tab.ctx, Timeout)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		tab.t.Fatalf("%s: taking a screenshot: %v", tab.name, err)
	}
	if _, err := png.Decode(bytes.NewReader(buf)); err != nil {
		tab.t.Fatalf("%s: the screenshot is not a PNG: %v", tab.name, err)
	}
	return buf
}

// SaveScreenshot writes shot to path when RINGCAST_UPDATE_SCREENSHOTS=1.
// Otherwise it compares nothing (pages show times and addresses that
// change) but checks that the committed file at path is a PNG of a
// plausible size.
func SaveScreenshot(t testing.TB, path string, shot []byte) {
	t.Helper()
	if os.Getenv(EnvUpdateScreenshots) == "1" {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, shot, 0o644); err != nil {
			t.Fatalf("writing the screenshot: %v", err)
		}
		t.Logf("wrote %s (%d bytes)", path, len(shot))
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("the committed screenshot: %v (write it with %s=1)", err, EnvUpdateScreenshots)
	}
	img, err := png.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the committed screenshot %s is not a PNG: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 640 || b.Dy() < 400 {
		t.Fatalf("the committed screenshot %s is %dx%d: too small to show the page", path, b.Dx(), b.Dy())
	}
}

// quote returns s as a JavaScript string literal.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x2028 || r == 0x2029:
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
