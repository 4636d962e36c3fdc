package web

import (
	"embed"
	"net/http"
	"strings"

	"github.com/ringcast/ringcast/cmd/internal/webasset"
)

// Paths of the page.
const (
	// Root is where the page is served.
	Root = "/"
	// Prefix is the path under which its scripts, styles and licence are
	// served.
	Prefix = "/notify/"
)

// ContentSecurityPolicy is the policy every answer of Handler carries: the
// page runs only its own scripts and styles, connects only to its own
// origin (the API and the WebSocket), and may not be framed.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//go:embed assets
var assets embed.FS

// files are the embedded files by their name (served below Prefix);
// index is the page itself.
var files, index = loadAssets()

func loadAssets() (map[string]*webasset.Asset, *webasset.Asset) {
	out, err := webasset.Load(assets, "assets")
	if err != nil {
		panic("notify/web: embedded assets: " + err.Error())
	}
	idx := out["index.html"]
	delete(out, "index.html")
	return out, idx
}

// Register adds the page to mux: GET / and GET /notify/….
func Register(mux *http.ServeMux) {
	h := Handler()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET "+Prefix, h)
}

// Handler returns the handler of the page: GET or HEAD of Root answers the
// page, of Prefix+NAME the embedded file NAME (app.js, app.css, phoenix.js
// and its licence); any other path 404 and any other method 405. Answers
// carry ContentSecurityPolicy, an ETag, and Cache-Control no-cache, so a
// browser revalidates (304) rather than keep an old page after an upgrade.
// It is safe for concurrent use.
func Handler() http.Handler {
	return http.HandlerFunc(serve)
}

func serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	var a *webasset.Asset
	switch p := r.URL.Path; {
	case p == Root:
		a = index
	case strings.HasPrefix(p, Prefix):
		a = files[strings.TrimPrefix(p, Prefix)]
	}
	if a == nil {
		http.NotFound(w, r)
		return
	}
	a.Serve(w, r, ContentSecurityPolicy)
}
