// Package webasset serves the files of the binaries' embedded web pages
// (the notification system's page and the status page): each with its
// content type, an ETag of its bytes, a Content-Security-Policy and the
// headers that keep it from being sniffed, framed or cached stale.
package webasset

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"time"
)

// Asset is one embedded file, ready to serve.
type Asset struct {
	Name string // file name
	Type string // Content-Type
	ETag string // quoted hash of Data
	Data []byte
}

// New returns the asset of a file named name holding data: its type from
// the extension (JavaScript and Markdown as UTF-8 text, unknown ones as
// application/octet-stream).
func New(name string, data []byte) *Asset {
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
	return &Asset{Name: name, Type: ctype, ETag: `"` + hex.EncodeToString(sum[:12]) + `"`, Data: data}
}

// Load reads the files of directory dir of fsys, by file name. It fails
// unless dir holds an index.html.
func Load(fsys fs.FS, dir string) (map[string]*Asset, error) {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, err
	}
	out := make(map[string]*Asset, len(entries))
	for _, e := range entries {
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		out[e.Name()] = New(e.Name(), data)
	}
	if out["index.html"] == nil {
		return nil, fmt.Errorf("%s: no index.html", dir)
	}
	return out, nil
}

// Serve answers r with a, under the Content-Security-Policy csp, with its
// ETag and Cache-Control no-cache (a browser revalidates, 304, rather than
// keep an old page after an upgrade), nosniff, no framing and no referrer.
func (a *Asset) Serve(w http.ResponseWriter, r *http.Request, csp string) {
	h := w.Header()
	h.Set("Content-Type", a.Type)
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", a.ETag)
	http.ServeContent(w, r, a.Name, time.Time{}, bytes.NewReader(a.Data))
}
