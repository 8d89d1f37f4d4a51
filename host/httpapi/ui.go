package httpapi

import (
	"context"
	"embed"
	"net/http"
)

// uiFiles is the status page: HTML, CSS and JavaScript, no external assets.
//
//go:embed ui/index.html ui/style.css ui/app.js
var uiFiles embed.FS

var uiTypes = map[string]string{
	"index.html": "text/html; charset=utf-8",
	"style.css":  "text/css; charset=utf-8",
	"app.js":     "text/javascript; charset=utf-8",
}

// ui serves GET /ui and GET /ui/{file}: the status page. The page is public
// (it holds no data); the data it shows comes from /v1/status and
// /v1/status/cluster, which need the token when one is set: the page asks
// for it.
func (a *API) ui(_ context.Context, w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("file")
	if name == "" {
		name = "index.html"
	}
	ct, ok := uiTypes[name]
	if !ok {
		return &httpError{Status: http.StatusNotFound, Code: "not_found", Message: "no file " + name}
	}
	data, err := uiFiles.ReadFile("ui/" + name)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	_, err = w.Write(data)
	return err
}
