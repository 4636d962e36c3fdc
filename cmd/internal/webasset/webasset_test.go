package webasset

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/fstest"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestNewTypes(t *testing.T) {
	for name, want := range map[string]string{
		"app.js":     "text/javascript; charset=utf-8",
		"LICENSE.md": "text/plain; charset=utf-8",
		"app.css":    "text/css; charset=utf-8",
		"index.html": "text/html; charset=utf-8",
		"blob.zzz":   "application/octet-stream",
	} {
		if got := New(name, []byte("x")).Type; got != want {
			t.Errorf("New(%q).Type = %q, want %q", name, got, want)
		}
	}
	if a, b := New("a.js", []byte("1")), New("a.js", []byte("2")); a.ETag == b.ETag {
		t.Errorf("two contents share the ETag %s", a.ETag)
	}
}

func TestLoad(t *testing.T) {
	fsys := fstest.MapFS{
		"d/index.html": {Data: []byte("<p>hi</p>")},
		"d/app.js":     {Data: []byte("1")},
		"e/app.js":     {Data: []byte("1")},
	}
	got, err := Load(fsys, "d")
	if err != nil || len(got) != 2 || string(got["app.js"].Data) != "1" {
		t.Fatalf("Load(d) = %v, %v", got, err)
	}
	if _, err := Load(fsys, "e"); err == nil {
		t.Fatal("Load of a directory without index.html succeeded")
	}
	if _, err := Load(fsys, "nope"); err == nil {
		t.Fatal("Load of a missing directory succeeded")
	}
}

func TestServe(t *testing.T) {
	a := New("index.html", []byte("<p>hi</p>"))
	w := httptest.NewRecorder()
	a.Serve(w, httptest.NewRequest(http.MethodGet, "/", nil), "default-src 'none'")
	h := w.Result().Header
	if w.Code != http.StatusOK || w.Body.String() != "<p>hi</p>" || h.Get("Content-Security-Policy") != "default-src 'none'" ||
		h.Get("ETag") != a.ETag || h.Get("X-Frame-Options") != "DENY" || h.Get("X-Content-Type-Options") != "nosniff" ||
		h.Get("Cache-Control") != "no-cache" || h.Get("Content-Type") != a.Type {
		t.Fatalf("GET: %d %q %v", w.Code, w.Body.String(), h)
	}
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Set("If-None-Match", a.ETag)
	w = httptest.NewRecorder()
	a.Serve(w, r, "default-src 'none'")
	if w.Code != http.StatusNotModified {
		t.Fatalf("revalidation: %d, want 304", w.Code)
	}
}
