package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
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

// asset is one embedded file, ready to serve.
type asset struct {
	name  string
	ctype string
	etag  string
	data  []byte
}

// files are the embedded files by their path below Prefix; index is the
// page itself.
var files, index = loadAssets()

func loadAssets() (map[string]*asset, *asset) {
	out := make(map[string]*asset)
	entries, err := fs.ReadDir(assets, "assets")
	if err != nil {
		panic("notify/web: embedded assets: " + err.Error())
	}
	for _, e := range entries {
		data, err := fs.ReadFile(assets, "assets/"+e.Name())
		if err != nil {
			panic("notify/web: embedded assets: " + err.Error())
		}
		out[e.Name()] = newAsset(e.Name(), data)
	}
	idx := out["index.html"]
	if idx == nil {
		panic("notify/web: embedded assets: no index.html")
	}
	delete(out, "index.html")
	return out, idx
}

func newAsset(name string, data []byte) *asset {
	sum := sha256.Sum256(data)
	ctype := mime.TypeByExtension(path.Ext(name))
	switch path.Ext(name) {
	case ".md":
		ctype = "text/plain; charset=utf-8"
	case ".js":
		ctype = "text/javascript; charset=utf-8"
	}
	if ctype == "" {
		ctype = "application/octet-stream"
	}
	return &asset{name: name, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, data: data}
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
	var a *asset
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
	h := w.Header()
	h.Set("Content-Type", a.ctype)
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.etag)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.data))
}
