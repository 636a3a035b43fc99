package server

import (
	"net/http"
	"strings"
	"time"
)

// cors guards the API URL. Rocket.Chat's web client calls it from
// Rocket.Chat's origin with credentials (protocol spec §1.3), so the answer
// echoes exactly that origin with Access-Control-Allow-Credentials, never
// "*", and always varies on Origin. A request from any other origin gets no
// CORS headers and is refused with 403 before any work is done (no user is
// created, no token minted): CORS alone would only stop the reading.
// Requests without an Origin header (native mobile clients, same-origin
// GETs, curl) pass; browsers always send Origin on cross-origin fetches.
//
// Browsers do not send Origin on a no-cors GET (<img src>, <script src>) or
// a top-level GET navigation, so before the Origin check the Fetch Metadata
// headers refuse those too (403, no work done): every Rocket.Chat client
// generation calls the API URL with fetch or XMLHttpRequest in cors mode
// (rocketchat-2026 §1.2), never as no-cors or by navigating. Requests
// without Fetch Metadata (older browsers, plain http, native clients, curl)
// pass, as does a visitor typing the API URL into the address bar
// (Sec-Fetch-Site: none).
func (s *Server) cors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if _, ok := h["Vary"]; ok {
			h.Add("Vary", "Origin")
		} else {
			h["Vary"] = hvOrigin
		}
		h["Cache-Control"] = hvNoStore
		// common set the API URL's Content-Security-Policy (and no
		// Referrer-Policy): cors only wraps the API URL.
		origin := r.Header.Get("Origin")
		preflight := r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != ""
		if preflight {
			h.Add("Vary", "Access-Control-Request-Method")
			h.Add("Vary", "Access-Control-Request-Headers")
		}
		if err := fetchMetadataRefusal(r); err != nil {
			s.writeError(w, r, err, false)
			return
		}
		if origin != "" && !s.allowed[origin] {
			s.log.Warn("API URL called from an origin that is not allowed", "origin", sanitizeOrigin(origin), "request_id", requestID(r.Context()))
			s.writeError(w, r, errOrigin, false)
			return
		}
		if origin != "" {
			h["Access-Control-Allow-Origin"] = s.allowOrigin[origin]
			h["Access-Control-Allow-Credentials"] = hvTrue
			// Storage Access Headers (Chrome 133+, Firefox 145+): when the
			// browser held back rcsso's cookie only because it would be a
			// third-party cookie, and the user already granted storage
			// access, ask it to retry with the cookie.
			if !s.o.NoStorageAccessHeaders && r.Header.Get("Sec-Fetch-Storage-Access") == "inactive" {
				h.Set("Activate-Storage-Access", `retry; allowed-origin="`+origin+`"`)
			}
		}
		switch r.Method {
		case http.MethodGet, http.MethodPost:
			sw, ok := w.(*statusWriter) // common's, which records the status
			if !ok {
				sw = &statusWriter{ResponseWriter: w}
			}
			next.ServeHTTP(sw, r)
			s.calls.add(apiCall{At: time.Now(), Client: clientKey(r), Origin: sanitizeOrigin(origin), Cookie: hasCookie(r, s.o.Sessions.CookieName()),
				FetchSite: r.Header.Get("Sec-Fetch-Site"), StorageAccess: r.Header.Get("Sec-Fetch-Storage-Access"), Status: sw.status})
		case http.MethodOptions:
			if preflight {
				m := r.Header.Get("Access-Control-Request-Method")
				if m != http.MethodGet && m != http.MethodPost {
					s.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Message: "the API URL answers GET and POST"}, false)
					return
				}
				h.Set("Access-Control-Allow-Methods", "GET, POST")
				if reqH := r.Header.Get("Access-Control-Request-Headers"); reqH != "" {
					// The 6.2–7.x client sends Content-Type: application/json.
					h.Set("Access-Control-Allow-Headers", "Content-Type")
				}
				h.Set("Access-Control-Max-Age", "600")
			}
			h.Set("Allow", "GET, POST, OPTIONS")
			w.WriteHeader(http.StatusNoContent)
		default:
			h.Set("Allow", "GET, POST, OPTIONS")
			s.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Message: "the API URL answers GET and POST"}, false)
		}
	})
}

// Fetch Metadata refusals of the API URL (see cors).
var (
	errNoCORS = &Error{Status: http.StatusForbidden,
		Message: "the API URL answers only cors-mode fetch or XMLHttpRequest calls (Sec-Fetch-Mode: no-cors refused)"}
	errCrossSiteNavigation = &Error{Status: http.StatusForbidden,
		Message: "the API URL cannot be opened from another site's page (cross-site navigation refused)"}
)

// fetchMetadataRefusal returns the 403 for a request the browser says is a
// no-cors fetch (any site) or a cross-site navigation, else nil.
func fetchMetadataRefusal(r *http.Request) error {
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "no-cors":
		return errNoCORS
	case "navigate", "nested-navigate": // nested-navigate: Chrome 76–79 for frames
		if r.Header.Get("Sec-Fetch-Site") == "cross-site" {
			return errCrossSiteNavigation
		}
	}
	return nil
}

// sanitizeOrigin bounds an untrusted Origin value for logging.
func sanitizeOrigin(o string) string {
	if len(o) > 100 {
		o = o[:100] + "…"
	}
	return o
}

// hasCookie reports whether r carries a cookie named name, without
// parsing (and allocating) every cookie as r.Cookie does.
func hasCookie(r *http.Request, name string) bool {
	for _, line := range r.Header["Cookie"] {
		for part := range strings.SplitSeq(line, ";") {
			k, _, _ := strings.Cut(strings.TrimSpace(part), "=")
			if k == name {
				return true
			}
		}
	}
	return false
}
