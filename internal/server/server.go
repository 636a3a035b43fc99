// Package server is rcsso's HTTP surface: the API URL
// (/api/rocketchat/token), the IFrame URL (/login), /logout, health and
// readiness. Handlers return errors; writeError maps them to responses in
// one place.
package server

import (
	"context"
	"crypto/sha256"
	"io/fs"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/netip"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/web"
	"github.com/rcsso/rcsso/internal/websession"
)

// Options wires a Server.
type Options struct {
	// PublicURL is where browsers reach rcsso.
	PublicURL *url.URL
	// RocketChatOrigin is the exact origin of Rocket.Chat
	// ("https://chat.example.com"): the only origin that gets CORS on the
	// API URL and the postMessage target of the IFrame URL.
	RocketChatOrigin string
	// WebsiteOrigins are the website's own origins (host pages).
	WebsiteOrigins []string
	// WebsiteName and WebsiteLoginURL are shown on the IFrame URL.
	WebsiteName     string
	WebsiteLoginURL string

	Identity identity.Chain
	Sessions *websession.Manager
	Broker   *mint.Broker
	Store    store.Store
	RC       *rocketchat.Client
	Logger   *slog.Logger
	// Audit records who was given a chat session and every other decision
	// about a person's account (audit.path); nil records nothing. Every
	// request's context carries it, with the request id and client IP.
	Audit *audit.Recorder

	// NoStorageAccessHeaders turns off Activate-Storage-Access answers.
	NoStorageAccessHeaders bool

	// Observe, when set, is told the route and status code of every
	// response (metrics).
	Observe func(route string, code int)

	// TrustedProxies are reverse proxies whose X-Forwarded-For names the
	// client (configuration key trusted_proxies): limits, logs and the
	// audit log then key on the client, not the proxy.
	TrustedProxies []netip.Prefix

	// LoginLimiter limits failed local logins; nil → the defaults of
	// LimiterConfig.
	LoginLimiter *FailureLimiter
	// LoginConcurrency is how many passwords the login form checks at
	// once (argon2id: 19 MiB and tens of milliseconds of one CPU each);
	// 0 → GOMAXPROCS − 1 (at least 1), which leaves a CPU to the API URL
	// and health checks during a login flood. An attempt that finds no
	// free slot within loginHashWait is refused with 429.
	LoginConcurrency int

	// Ready, when set, is an extra readiness check (the minting mode's
	// capability): /readyz reports its error under "minting".
	Ready func(ctx context.Context) error
	// MintingVia, when set, describes in one line how rcsso mints right
	// now (mode oauth: the OAuth service it logs in through); /readyz
	// reports it under "minting_via" when minting is ok.
	MintingVia func() string
	// Warnings, when set, adds lines to /readyz that never make rcsso
	// unready, e.g. "rooms": "warn: #sales does not exist" or
	// "identity_corp": "warn: ldap corp: …". It is called at most every
	// 2 s, with a context that ends after 3 s.
	Warnings func(context.Context) map[string]string

	// WebhookSecret signs /webhooks/* (HMAC-SHA256); empty turns them off.
	WebhookSecret []byte
	// Deprovisioner serves /webhooks/deprovision; nil → 501.
	Deprovisioner Deprovisioner
	// UnknownSubject is the Deprovisioner's "no such person" error.
	UnknownSubject error

	// DiagnosticsToken is the operator credential of GET /diagnostics
	// (config diagnostics.token): a request with "Authorization: Bearer
	// <token>" also sees the deployment checks (Doctor). Empty: nobody
	// does.
	DiagnosticsToken string
	// Doctor runs rcsso doctor's checks of the deployment for the
	// operator part of /diagnostics (nil: none).
	Doctor func(ctx context.Context) doctor.Report

	// NativeLogin (config website.native_login) offers "Log in with a
	// Rocket.Chat account" on the IFrame URL: a person logs in with their
	// own Rocket.Chat password and 2FA code through RC (nativelogin.go).
	// Off: the form is absent and POST /login/rocketchat is 404.
	NativeLogin bool

	// Extra mounts more handlers: a path prefix ending in "/" → a handler
	// that gets the path with the prefix stripped, e.g. "/oauth/" → the
	// OAuth provider (minting mode oauth).
	Extra map[string]http.Handler
}

// Server is the HTTP handler.
type Server struct {
	o       Options
	log     *slog.Logger
	handler http.Handler
	base    string
	allowed map[string]bool // exact origins allowed to call the API URL
	csrf    *http.CrossOriginProtection
	// pageCSP is the Content-Security-Policy of rcsso's pages, without
	// frame-ancestors.
	pageCSP string
	// cspNoFraming is pageCSP with frame-ancestors 'none' (every page but
	// the IFrame URL), as a shared header value.
	cspNoFraming []string
	// allowOrigin is Access-Control-Allow-Origin's value for each allowed
	// origin, shared like the hv* values.
	allowOrigin map[string][]string
	// returnTo is the open-redirect filter (ReturnToFilter).
	returnTo func(string) string
	limiter  *FailureLimiter
	// hashSlots holds one value per password check under way.
	hashSlots chan struct{}
	// nativeSlots holds one value per native login waiting on Rocket.Chat.
	nativeSlots chan struct{}

	calls callLog
	// diagToken is sha256(Options.DiagnosticsToken), nil when unset.
	diagToken []byte
	diag      diagCache

	readyMu   sync.Mutex
	readyAt   time.Time
	readyBody map[string]string
	readyOK   bool
}

// New returns a Server.
func New(o Options) *Server {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.LoginLimiter == nil {
		o.LoginLimiter = NewFailureLimiter(LimiterConfig{})
	}
	if o.LoginConcurrency <= 0 {
		o.LoginConcurrency = max(runtime.GOMAXPROCS(0)-1, 1)
	}
	s := &Server{
		o:           o,
		log:         o.Logger,
		base:        strings.TrimRight(o.PublicURL.Path, "/"),
		allowed:     map[string]bool{o.RocketChatOrigin: true},
		csrf:        http.NewCrossOriginProtection(),
		limiter:     o.LoginLimiter,
		hashSlots:   make(chan struct{}, o.LoginConcurrency),
		nativeSlots: make(chan struct{}, nativeConcurrency),
		returnTo:    ReturnToFilter(o.PublicURL, o.RocketChatOrigin, o.WebsiteOrigins),
		diag:        newDiagCache(),
	}
	if o.DiagnosticsToken != "" {
		h := sha256.Sum256([]byte(o.DiagnosticsToken))
		s.diagToken = h[:]
	}
	for _, origin := range append([]string{o.RocketChatOrigin}, o.WebsiteOrigins...) {
		_ = s.csrf.AddTrustedOrigin(origin)
	}
	// Scripts and styles only from rcsso itself, no inline script.
	// form-action also governs the redirect after a form post, which may go
	// to a return_to on the website or Rocket.Chat.
	s.pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self' " +
		strings.Join(append([]string{o.RocketChatOrigin}, o.WebsiteOrigins...), " ")
	s.cspNoFraming = []string{s.pageCSP + "; frame-ancestors 'none'"}
	s.allowOrigin = map[string][]string{}
	for origin := range s.allowed {
		s.allowOrigin[origin] = []string{origin}
	}
	s.csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, &Error{Status: http.StatusForbidden, Message: "cross-origin request refused (CSRF protection)"}, wantsHTML(r))
	}))

	mux := http.NewServeMux()
	mux.Handle(APIURLPath, s.cors(s.handle(s.apiURL, false)))
	mux.Handle("GET /login", s.framable(s.handle(s.loginPage, true)))
	mux.Handle("POST /login", s.framable(s.csrf.Handler(s.handle(s.loginSubmit, true))))
	mux.Handle("POST /login/resume", s.framable(s.csrf.Handler(s.handle(s.resumeSubmit, true))))
	if o.NativeLogin {
		mux.Handle("POST /login/rocketchat", s.framable(s.csrf.Handler(s.handle(s.nativeLoginSubmit, true))))
	}
	mux.Handle("GET /popup-done", s.handle(s.popupDone, true))
	for _, src := range o.Identity {
		if in, ok := src.(identity.Interactive); ok {
			prefix := "/auth/" + in.Name() + "/"
			mux.Handle(prefix, http.StripPrefix(prefix, in.Handler()))
		}
	}
	for prefix, h := range o.Extra {
		mux.Handle(prefix, http.StripPrefix(prefix, h))
	}
	mux.Handle("GET /diagnostics", s.handle(s.diagnostics, true))
	mux.Handle("GET /embed.js", embedScript())
	mux.Handle("/embed/token", s.embedCORS(s.handle(s.embedToken, false)))
	mux.Handle("/embed/redeem", s.embedCORS(s.handle(s.embedRedeem, false)))
	mux.Handle("POST /embed/codes", s.handle(s.embedCodes, false))
	mux.Handle("POST /webhooks/logout", s.handle(s.logoutWebhook, false))
	mux.Handle("POST /webhooks/deprovision", s.handle(s.deprovisionWebhook, false))
	mux.Handle("GET /logout", s.handle(s.logoutPage, true))
	mux.Handle("POST /logout", s.csrf.Handler(s.handle(s.logoutSubmit, true)))
	mux.Handle("GET /healthz", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}))
	mux.Handle("GET /readyz", s.handle(s.readyz, false))
	mux.Handle("GET /static/", http.StripPrefix("/static/", s.handle(s.static, false)))
	mux.Handle("/", s.handle(func(http.ResponseWriter, *http.Request) error { return errNotFound }, false))
	s.handler = s.common(mux)
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

type handlerFunc func(http.ResponseWriter, *http.Request) error

// handle adapts a handlerFunc; html selects HTML error pages for browsers.
func (s *Server) handle(h handlerFunc, html bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			s.writeError(w, r, err, html && wantsHTML(r))
		}
	})
}

func wantsHTML(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Dest") == "document" || r.Header.Get("Sec-Fetch-Dest") == "iframe" ||
		strings.Contains(r.Header.Get("Accept"), "text/html")
}

// Header values rcsso sets on most responses, shared by all of them so
// that setting them allocates nothing. net/http only reads them; Set
// replaces a value and Add copies one (len == cap), so none is ever
// changed in place.
var (
	hvNosniff    = []string{"nosniff"}
	hvSameOrigin = []string{"same-origin"}
	hvDeny       = []string{"DENY"}
	hvNoStore    = []string{"no-store"}
	hvJSON       = []string{"application/json"}
	hvTrue       = []string{"true"}
	hvOrigin     = []string{"Origin"}
	hvAPICSP     = []string{"default-src 'none'; frame-ancestors 'none'"}
)

// newRequestID returns a 12-character request id (60 random bits, base32):
// it names a request in logs, error pages and the audit log, and is not a
// secret, so the runtime's per-thread generator serves (no system call).
func newRequestID() string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	var b [12]byte
	n := mrand.Uint64()
	for i := range b {
		b[i] = alphabet[n&31]
		n >>= 5
	}
	return string(b[:])
}

// requestID is the id common() gave the request (audit.WithRequest
// carries it with the client's address).
func requestID(ctx context.Context) string {
	id, _ := audit.Request(ctx)
	return id
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// common adds a request id, default security headers and an access log
// line (path only: query strings are never logged).
func (s *Server) common(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		id := newRequestID()
		ip := s.clientAddr(r)
		r = r.WithContext(audit.WithRequest(r.Context(), s.o.Audit, id, ip))
		h := w.Header()
		h["X-Content-Type-Options"] = hvNosniff
		if r.URL.Path == APIURLPath {
			// A JSON API's policy (nothing loads, nothing frames it) in
			// place of the pages' long one, and no Referrer-Policy (the
			// answer makes no requests): 250 fewer bytes on every chat
			// page load's calls, and eight headers in all, which Go's
			// header map holds without growing.
			h["Content-Security-Policy"] = hvAPICSP
		} else {
			// same-origin, not no-referrer: with no-referrer browsers send "Origin: null"
			// on form posts, which defeats the CSRF check on plain-http deployments.
			h["Referrer-Policy"] = hvSameOrigin
			// Pages other than the IFrame URL must not be framed; framable()
			// replaces these for /login.
			h["Content-Security-Policy"] = s.cspNoFraming
		}
		h["X-Frame-Options"] = hvDeny
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if s.o.Observe != nil {
			s.o.Observe(routeOf(r.URL.Path), sw.status)
		}
		if s.log.Enabled(r.Context(), slog.LevelDebug) {
			s.log.Debug("http", "request_id", id, "method", r.Method, "path", r.URL.Path, "status", sw.status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
		}
	})
}

// framable sets the IFrame URL's headers: it may be framed by Rocket.Chat
// (and by the website's pages that embed Rocket.Chat), nothing else;
// frame-ancestors is checked against every ancestor. No X-Frame-Options: it
// cannot express an allow-list.
func (s *Server) framable(next http.Handler) http.Handler {
	ancestors := strings.Join(append([]string{s.o.RocketChatOrigin}, s.o.WebsiteOrigins...), " ")
	csp := s.pageCSP + "; frame-ancestors " + ancestors
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Del("X-Frame-Options")
		h.Set("Content-Security-Policy", csp)
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// errNotFound is the 404 of unknown paths.
var errNotFound = &Error{Status: http.StatusNotFound, Message: "not found"}

// static serves web.Static below /static/ (the prefix stripped). A name
// that is not a valid io/fs path (invalid UTF-8 such as the overlong
// "%c0%ae%c0%ae", "..", empty elements, backslashes), a missing file and a
// directory are all 404s through the error table: embed.FS answers
// fs.ErrInvalid for invalid names, which http.FileServerFS turned into 500.
func (s *Server) static(w http.ResponseWriter, r *http.Request) error {
	name := r.URL.Path
	if !fs.ValidPath(name) || strings.Contains(name, "\\") {
		return errNotFound
	}
	fi, err := fs.Stat(web.Static, name)
	if err != nil || fi.IsDir() {
		return errNotFound
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	http.ServeFileFS(w, r, web.Static, name)
	return nil
}

// APIURLPath is the API URL's path below public_url: the value of
// Rocket.Chat's Accounts_Iframe_api_url is public_url + APIURLPath.
const APIURLPath = "/api/rocketchat/token"

// routeOf groups paths for metrics (bounded label values).
func routeOf(path string) string {
	switch {
	case path == APIURLPath:
		return "api_url"
	case path == "/login" || strings.HasPrefix(path, "/login/"):
		return "iframe_url"
	case strings.HasPrefix(path, "/embed"):
		return "embed"
	case path == "/logout":
		return "logout"
	case strings.HasPrefix(path, "/webhooks/"):
		return "webhook"
	case strings.HasPrefix(path, "/auth/"), strings.HasPrefix(path, "/oauth/"):
		return "auth"
	}
	return "other"
}
