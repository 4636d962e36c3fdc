package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func get(t *testing.T, h http.Handler, method, path string, header ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestServesThePageAndItsFiles(t *testing.T) {
	mux := http.NewServeMux()
	Register(mux)
	for path, ctype := range map[string]string{
		"/":                          "text/html; charset=utf-8",
		"/notify/app.js":             "text/javascript; charset=utf-8",
		"/notify/app.css":            "text/css; charset=utf-8",
		"/notify/phoenix.js":         "text/javascript; charset=utf-8",
		"/notify/phoenix-LICENSE.md": "text/plain; charset=utf-8",
	} {
		w := get(t, mux, http.MethodGet, path)
		if w.Code != http.StatusOK {
			t.Fatalf("GET %s = %d", path, w.Code)
		}
		h := w.Header()
		if got := h.Get("Content-Type"); got != ctype {
			t.Errorf("GET %s: Content-Type %q; want %q", path, got, ctype)
		}
		if got := h.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("GET %s: Content-Security-Policy %q", path, got)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("X-Frame-Options") != "DENY" || h.Get("ETag") == "" {
			t.Errorf("GET %s: headers %v", path, h)
		}
		// A browser revalidates and gets 304 while the file is unchanged.
		if w2 := get(t, mux, http.MethodGet, path, "If-None-Match", h.Get("ETag")); w2.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag = %d; want 304", path, w2.Code)
		}
	}
	if w := get(t, mux, http.MethodHead, "/"); w.Code != http.StatusOK {
		t.Errorf("HEAD / = %d", w.Code)
	}
}

func TestRefusesOtherPathsAndMethods(t *testing.T) {
	h := Handler()
	for _, path := range []string{"/notify/", "/notify/index.html", "/notify/../web.go", "/notify/nope.js", "/other"} {
		if w := get(t, h, http.MethodGet, path); w.Code != http.StatusNotFound {
			t.Errorf("GET %s = %d; want 404", path, w.Code)
		}
	}
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		w := get(t, h, m, "/")
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s / = %d, Allow %q; want 405 with GET, HEAD", m, w.Code, w.Header().Get("Allow"))
		}
	}
}

// The page runs under its CSP: no inline script or style, no handler
// attribute, nothing from another origin.
func TestPageNeedsNothingTheCSPRefuses(t *testing.T) {
	html, err := os.ReadFile("assets/index.html")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []*regexp.Regexp{
		regexp.MustCompile(`<script(?:\s[^>]*)?>\s*[^<\s]`), // an inline script
		regexp.MustCompile(`<style`),
		regexp.MustCompile(`\sstyle=`),
		regexp.MustCompile(`\son[a-z]+=`),
		regexp.MustCompile(`(?:src|href)="(?:https?:)?//`),
	} {
		if loc := bad.FindIndex(html); loc != nil {
			t.Errorf("index.html has %q, which the CSP refuses", html[loc[0]:min(loc[1]+20, len(html))])
		}
	}
	for _, src := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllSubmatch(html, -1) {
		ref := string(src[1])
		if ref == "data:," || ref == "/status" {
			continue
		}
		if w := get(t, Handler(), http.MethodGet, ref); w.Code != http.StatusOK {
			t.Errorf("index.html refers to %s, which answers %d", ref, w.Code)
		}
	}
	js, err := os.ReadFile("assets/app.js")
	if err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{"innerHTML", "eval(", "new Function", "setAttribute(\"style\"", "http://", "https://"} {
		if bytes.Contains(js, []byte(bad)) {
			t.Errorf("app.js uses %q", bad)
		}
	}
}

// phoenix.js is the official client, unchanged, with its licence.
func TestPhoenixIsVendoredWithItsLicence(t *testing.T) {
	w := get(t, Handler(), http.MethodGet, "/notify/phoenix.js")
	body, _ := io.ReadAll(w.Body)
	if !bytes.HasPrefix(body, []byte("var Phoenix = (() => {")) || !bytes.Contains(body, []byte("class Socket")) && !bytes.Contains(body, []byte("Socket = class")) {
		t.Fatalf("phoenix.js does not look like the UMD build of phoenix (%d bytes)", len(body))
	}
	lic := get(t, Handler(), http.MethodGet, "/notify/phoenix-LICENSE.md").Body.String()
	if !strings.Contains(lic, "MIT License") || !strings.Contains(lic, "Chris McCord") {
		t.Fatalf("phoenix-LICENSE.md is not phoenix's MIT licence:\n%s", lic)
	}
}
