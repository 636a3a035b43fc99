package server

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/web"
)

// Host push flow (embed.js): a host page on the website puts Rocket.Chat in
// an iframe and pushes the person's resume token into it with the iframe
// integration command login-with-token (protocol spec §3.1). rcsso's cookie
// stays first-party to the website, so third-party-cookie blocking does not
// matter.
//
//	GET  /embed.js       the script and the <rocketchat-embed> element
//	POST /embed/token    same-site host pages: credentials: include → {"token"}
//	POST /embed/codes    the website's back end (signed like /webhooks/*,
//	                     timestamp within 60 s): {"subject","origin",…} →
//	                     {"code","expires_in"}
//	POST /embed/redeem   host pages on another site: {"code"} → {"token"};
//	                     single use, bound to the person and to the origin

// CodeTTL is how long a single-use code lives.
const CodeTTL = 60 * time.Second

// codesWindow bounds how old (or early) a signed /embed/codes request may
// be: a captured request is useless a minute later.
const codesWindow = 60 * time.Second

// codeProfile is the person a code is for, as the website's back end
// described them (store.Code.Profile).
type codeProfile struct {
	Username      string `json:"username,omitempty"`
	Name          string `json:"name,omitempty"`
	Email         string `json:"email,omitempty"`
	EmailVerified bool   `json:"email_verified,omitempty"`
}

// embedCORS answers CORS for the website's own origins (host pages): exact
// origins, credentials, Vary: Origin; anything else gets 403 and no CORS.
func (s *Server) embedCORS(next http.Handler) http.Handler {
	allowed := map[string]bool{}
	for _, o := range s.o.WebsiteOrigins {
		allowed[o] = true
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		h.Set("Cache-Control", "no-store")
		origin := r.Header.Get("Origin")
		if !allowed[origin] {
			s.writeError(w, r, &Error{Status: http.StatusForbidden, Message: "origin not allowed: add the host page's origin to website.origins"}, false)
			return
		}
		h.Set("Access-Control-Allow-Origin", origin)
		h.Set("Access-Control-Allow-Credentials", "true")
		if r.Method == http.MethodOptions {
			h.Set("Access-Control-Allow-Methods", "POST")
			h.Set("Access-Control-Allow-Headers", "Content-Type")
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		if r.Method != http.MethodPost {
			s.writeError(w, r, &Error{Status: http.StatusMethodNotAllowed, Message: "use POST"}, false)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// embedToken hands the person's resume token to a same-site host page.
func (s *Server) embedToken(w http.ResponseWriter, r *http.Request) error {
	id, err := s.o.Identity.Identify(r)
	if err != nil {
		return err
	}
	return s.writeEmbedToken(w, r, id)
}

func (s *Server) writeEmbedToken(w http.ResponseWriter, r *http.Request, id identity.Identity) error {
	t, err := s.o.Broker.Token(r.Context(), id, false)
	if err != nil {
		return err
	}
	if t.Kind != mint.LoginToken {
		return &Error{Status: http.StatusNotImplemented, Message: "the host push flow needs resume tokens; minting modes mongo-iframe hand out iframe tokens"}
	}
	writeJSON(w, http.StatusOK, map[string]string{"token": t.Value, "rocketchat": s.o.RocketChatOrigin})
	return nil
}

// embedCodes issues a single-use code for a person, bound to a host-page
// origin (website back end, signed like the webhooks). The token is
// obtained now, so redeeming is a cache hit.
func (s *Server) embedCodes(w http.ResponseWriter, r *http.Request) error {
	b, err := s.verifyWebhook(w, r, codesEndpoint)
	if err != nil {
		return err
	}
	allowed := false
	for _, o := range s.o.WebsiteOrigins {
		allowed = allowed || o == b.Origin
	}
	if !allowed {
		return &Error{Status: http.StatusBadRequest, Message: `"origin" must be one of website.origins`}
	}
	id := identity.Identity{Subject: b.Subject, Source: "code", Username: b.Username, Name: b.Name, Email: b.Email, EmailVerified: b.EmailVerified}
	if id.Username == "" {
		id.Username = b.ID
	}
	if _, err := s.o.Broker.Token(r.Context(), id, false); err != nil {
		return err
	}
	code := rand.Text() + rand.Text()
	profile, _ := json.Marshal(codeProfile{Username: id.Username, Name: id.Name, Email: id.Email, EmailVerified: id.EmailVerified})
	err = s.o.Store.PutCode(r.Context(), store.Code{Hash: hashCode(code), Subject: b.Subject, Origin: b.Origin,
		ExpiresAt: time.Now().Add(CodeTTL).UTC(), Profile: profile})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"code": code, "expires_in": int(CodeTTL.Seconds())})
	return nil
}

// embedRedeem trades a single-use code for the token, once, and only for
// the origin the code was issued to.
func (s *Server) embedRedeem(w http.ResponseWriter, r *http.Request) error {
	var body struct {
		Code string `json:"code"`
	}
	raw, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 4<<10))
	if err != nil || json.Unmarshal(raw, &body) != nil || body.Code == "" || len(body.Code) > 128 {
		return &Error{Status: http.StatusBadRequest, Message: `send {"code": "…"}`}
	}
	c, err := s.o.Store.ConsumeCode(r.Context(), hashCode(body.Code))
	if errors.Is(err, store.ErrNotFound) {
		return &Error{Status: http.StatusUnauthorized, Message: "unknown, used or expired code"}
	}
	if err != nil {
		return err
	}
	if c.Origin != r.Header.Get("Origin") {
		s.log.Warn("single-use code presented by another origin", "origin", sanitizeOrigin(r.Header.Get("Origin")), "subject", c.Subject)
		return &Error{Status: http.StatusUnauthorized, Message: "unknown, used or expired code"}
	}
	// Act for the whole person the back end described, so that profile
	// sync compares like with like (a bare subject would read as "no
	// e-mail, no name").
	var p codeProfile
	if err := json.Unmarshal(c.Profile, &p); err != nil {
		return fmt.Errorf("reading the person of a single-use code: %w", err)
	}
	return s.writeEmbedToken(w, r, identity.Identity{Subject: c.Subject, Source: "code", Username: p.Username, Name: p.Name,
		Email: p.Email, EmailVerified: p.EmailVerified})
}

func hashCode(code string) string {
	sum := sha256.Sum256([]byte(code))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// embedScript serves /embed.js: loadable from any host page.
func embedScript() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := fs.ReadFile(web.Static, "embed.js")
		if err != nil {
			http.Error(w, "embed.js missing", http.StatusInternalServerError)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/javascript; charset=utf-8")
		h.Set("Cache-Control", "public, max-age=300")
		h.Set("Cross-Origin-Resource-Policy", "cross-origin")
		_, _ = w.Write(b)
	})
}
