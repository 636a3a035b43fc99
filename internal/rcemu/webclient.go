package rcemu

import (
	"embed"
	"io"
	"net/http"
	"strconv"
	"strings"
)

//go:embed web/index.html web/client.js web/client.css
var webFS embed.FS

// clientCSP is the Content-Security-Policy of the web client page: scripts
// and styles only from the emulator itself; the API URL (connect-src) and
// the IFrame URL (frame-src) may be anywhere. No frame-ancestors, like
// Rocket.Chat (framing is governed by Iframe_Restrict_Access).
const clientCSP = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src *; frame-src *; " +
	"img-src 'self' data:; base-uri 'none'; form-action 'self'"

// serveClient serves the web client (spec §1.2–1.7, §3) for / and every
// other non-API path (/home, /channel/general, …), like Rocket.Chat's
// single-page app.
func (s *Server) serveClient(w http.ResponseWriter, r *http.Request) {
	if strings.HasPrefix(r.URL.Path, "/_emu/") {
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	data, err := webFS.ReadFile("web/index.html")
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	// The client generation is part of the page, as the client code is
	// part of Rocket.Chat's bundle (client.js reads these attributes).
	page := strings.NewReplacer(
		"{{client}}", s.profile.clientGen(),
		"{{profile}}", s.profile.String(),
		"{{version}}", s.profile.version(),
		"{{settingsDelay}}", strconv.FormatInt(s.cfg.SettingsDelay.Milliseconds(), 10),
	).Replace(string(data))
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", clientCSP)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	_, _ = io.WriteString(w, page)
}

func (s *Server) serveAsset(name, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		data, err := webFS.ReadFile("web/" + name)
		if err != nil {
			http.NotFound(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Type", contentType)
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		_, _ = w.Write(data)
	}
}
