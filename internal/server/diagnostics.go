package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// apiCall is one API URL request as the diagnostics page shows it.
type apiCall struct {
	At            time.Time
	Client        [32]byte // sha256 of client IP and User-Agent: "this browser"
	Origin        string
	Cookie        bool // rcsso's session cookie came with the request
	FetchSite     string
	StorageAccess string
	Status        int
}

// callLog keeps the last API URL requests (bounded ring).
type callLog struct {
	mu    sync.Mutex
	calls []apiCall
	next  int
}

const callLogSize = 256

func (l *callLog) add(c apiCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) < callLogSize {
		l.calls = append(l.calls, c)
		return
	}
	l.calls[l.next] = c
	l.next = (l.next + 1) % callLogSize
}

func (l *callLog) forClient(k [32]byte) []apiCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []apiCall
	for _, c := range l.calls {
		if c.Client == k {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b apiCall) int { return b.At.Compare(a.At) })
	if len(out) > 10 {
		out = out[:10]
	}
	return out
}

func clientKey(r *http.Request) [32]byte {
	return sha256.Sum256([]byte(clientIP(r) + "\x00" + r.UserAgent()))
}

// check is one line of the diagnostics page.
type check struct {
	Name   string `json:"name"`
	State  string `json:"state"` // ok, warn, fail, info
	Detail string `json:"detail"`
	Fix    string `json:"fix,omitempty"`
}

// diagCacheFor is how long diagnostics reuses Rocket.Chat's answers.
const diagCacheFor = 30 * time.Second

// rcAnswers is what diagnostics asked Rocket.Chat (and the minting mode's
// readiness check), at one moment.
type rcAnswers struct {
	at          time.Time
	info        rocketchat.ServerInfo
	infoErr     error
	settings    map[string]any
	settingsErr error
	head        http.Header
	headErr     error
	ready       bool // Options.Ready was asked
	readyErr    error
}

// diagCache holds the last rcAnswers, shared by every diagnostics request:
// one set of Rocket.Chat calls per diagCacheFor however often the page is
// opened, fetched by one request at a time (others wait for it).
type diagCache struct {
	sem  chan struct{} // a one-slot lock whose wait honours the context
	last *rcAnswers
	now  func() time.Time
}

func newDiagCache() diagCache {
	return diagCache{sem: make(chan struct{}, 1), now: time.Now}
}

// rcAnswers returns Rocket.Chat's answers, at most diagCacheFor old. The
// calls run on a context detached from the request (bounded by 8 s), so a
// visitor who hangs up does not leave a cached "context canceled".
func (s *Server) rcAnswers(ctx context.Context) (*rcAnswers, error) {
	select {
	case s.diag.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-s.diag.sem }()
	if a := s.diag.last; a != nil && s.diag.now().Sub(a.at) < diagCacheFor {
		return a, nil
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 8*time.Second)
	defer cancel()
	a := &rcAnswers{at: s.diag.now()}
	a.info, a.infoErr = s.o.RC.Info(ctx)
	a.settings, a.settingsErr = s.o.RC.PublicSettings(ctx)
	if len(s.o.WebsiteOrigins) > 0 {
		a.head, _, a.headErr = s.o.RC.Head(ctx, "/")
	}
	if s.o.Ready != nil {
		a.ready, a.readyErr = true, s.o.Ready(ctx)
	}
	s.diag.last = a
	return a, nil
}

// Errors of GET /diagnostics.
var (
	errDiagnosticsToken = &Error{Status: http.StatusForbidden,
		Message: "wrong diagnostics token: send Authorization: Bearer <diagnostics.token>, or no Authorization header to see only your own part"}
	errNoDiagnosticsToken = &Error{Status: http.StatusForbidden,
		Message: "no diagnostics.token is configured: set one in rcsso's configuration to see the Rocket.Chat part"}
	errDiagnosticsTokenInURL = &Error{Status: http.StatusBadRequest,
		Message: "the diagnostics token goes in an Authorization: Bearer header, never in the URL (URLs end up in logs and browser history)"}
)

// diagnosticsOperator reports whether the request carries the operator
// credential: "Authorization: Bearer <diagnostics.token>", compared in
// constant time (of the SHA-256 digests, so the length does not leak
// either). No Authorization header: false, nil (the visitor's own part).
// A wrong token or scheme, or a token when none is configured: 403.
func (s *Server) diagnosticsOperator(r *http.Request) (bool, error) {
	q := r.URL.Query()
	if q.Has("token") || q.Has("access_token") || q.Has("diagnostics_token") {
		return false, errDiagnosticsTokenInURL
	}
	h := r.Header.Get("Authorization")
	if h == "" {
		return false, nil
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return false, errDiagnosticsToken
	}
	if s.diagToken == nil {
		return false, errNoDiagnosticsToken
	}
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if subtle.ConstantTimeCompare(got[:], s.diagToken) != 1 {
		s.log.Warn("diagnostics: wrong operator token", "client_ip", clientIP(r), "request_id", requestID(r.Context()))
		return false, errDiagnosticsToken
	}
	return true, nil
}

// diagnostics is GET /diagnostics: a page that says what works and what to
// change where. Anyone may open it and sees their own part: the cookie
// topology (from rcsso's configuration), whether this browser is logged in
// on the website, and whether its API URL calls carried rcsso's cookie; no
// Rocket.Chat calls are made for them. The operator (Authorization: Bearer
// <diagnostics.token>) also sees what rcsso can see from Rocket.Chat, asked
// at most every 30 s (diagCache): its version, its iframe settings, whether
// host pages may frame it, whether iframe integration accepts the website's
// origins, and the minting check.
func (s *Server) diagnostics(w http.ResponseWriter, r *http.Request) error {
	operator, err := s.diagnosticsOperator(r)
	if err != nil {
		return err
	}
	var checks []check
	add := func(name, state, detail, fix string) {
		checks = append(checks, check{name, state, detail, fix})
	}
	if operator {
		a, err := s.rcAnswers(r.Context())
		if err != nil {
			return err
		}
		s.rocketChatChecks(a, add)
	} else {
		add("Rocket.Chat", "info", "Rocket.Chat's version, settings and the minting check are shown to the site administrator only",
			"the administrator sends Authorization: Bearer <diagnostics.token>, e.g. curl -H \"Authorization: Bearer $(cat token)\" "+strings.TrimRight(s.o.PublicURL.String(), "/")+"/diagnostics")
	}
	rcURL, _ := url.Parse(s.o.RocketChatOrigin)
	if config.SameSite(s.o.PublicURL, rcURL) {
		add("Cookie topology", "ok", "Rocket.Chat and rcsso are on one site: rcsso's cookie is first-party and reaches the API URL even where third-party cookies are blocked", "")
	} else {
		add("Cookie topology", "warn", "Rocket.Chat and rcsso are on different sites: the API URL flow needs third-party cookies, which Safari, Firefox and Chrome Incognito block",
			"put rcsso on the website's domain next to chat.<site> (sso.<site>), or use the host push flow (embed.js with single-use codes)")
	}
	if id, err := s.o.Identity.Identify(r); err == nil {
		add("This browser", "ok", "logged in on the website as "+id.Username+" ("+id.Subject+")", "")
	} else {
		add("This browser", "warn", "not logged in on the website here", "log in on the website in this browser, then open the chat and come back")
	}
	calls := s.calls.forClient(clientKey(r))
	if len(calls) == 0 {
		add("API URL calls from this browser", "warn", "none yet", "open Rocket.Chat in this browser, then reload this page")
	} else if c := calls[0]; !c.Cookie {
		add("API URL calls from this browser", "fail",
			fmt.Sprintf("the last call (%s, from %s, Sec-Fetch-Site %q, Sec-Fetch-Storage-Access %q) came without rcsso's cookie", c.At.Format(time.TimeOnly), c.Origin, c.FetchSite, c.StorageAccess),
			"the browser blocks the cookie as third-party: use one site for Rocket.Chat and rcsso, or the host push flow")
	} else {
		add("API URL calls from this browser", "ok", fmt.Sprintf("the last call (%s, from %s) carried rcsso's cookie and got %d", c.At.Format(time.TimeOnly), c.Origin, c.Status), "")
	}
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, map[string][]check{"checks": checks})
		return nil
	}
	s.render(w, r, http.StatusOK, "diagnostics.html", page{Title: "rcsso diagnostics", Checks: checks})
	return nil
}

// rocketChatChecks turns Rocket.Chat's answers into the operator's checks.
func (s *Server) rocketChatChecks(a *rcAnswers, add func(name, state, detail, fix string)) {
	pub := strings.TrimRight(s.o.PublicURL.String(), "/")
	apiURL, iframeURL := pub+"/api/rocketchat/token", pub+"/login"
	if a.infoErr != nil {
		add("Rocket.Chat reachable", "fail", a.infoErr.Error(), "check rocketchat.url / rocketchat.api_url and that rcsso's host can reach Rocket.Chat")
	} else {
		add("Rocket.Chat reachable", "ok", "version "+a.info.Version, "")
	}
	add("Rocket.Chat answers", "info", fmt.Sprintf("asked at %s; kept for %s, so a changed setting shows within that time", a.at.Format(time.TimeOnly), diagCacheFor), "")
	if a.settingsErr != nil {
		add("Rocket.Chat settings", "warn", "cannot read public settings: "+a.settingsErr.Error(), "")
	} else {
		set := a.settings
		str := func(k string) string { v, _ := set[k].(string); return v }
		on := func(k string) bool { v, _ := set[k].(bool); return v }
		switch {
		case !on("Accounts_iframe_enabled"):
			add("Iframe authentication", "warn", "Accounts_iframe_enabled is off: only the host push flow (embed.js) can log people in",
				"Rocket.Chat → Administration → Settings → Accounts → Iframe: enable it")
		case str("Accounts_Iframe_api_url") != apiURL:
			add("API URL", "fail", fmt.Sprintf("Rocket.Chat calls %q", str("Accounts_Iframe_api_url")), "set Accounts → Iframe → API URL to "+apiURL)
		case str("Accounts_iframe_url") != iframeURL && !strings.HasPrefix(str("Accounts_iframe_url"), iframeURL+"?"):
			add("IFrame URL", "fail", fmt.Sprintf("Rocket.Chat shows %q", str("Accounts_iframe_url")), "set Accounts → Iframe → Iframe URL to "+iframeURL)
		default:
			add("Iframe authentication", "ok", "API URL and IFrame URL point at rcsso, method "+str("Accounts_Iframe_api_method"), "")
		}
		for _, o := range s.o.WebsiteOrigins {
			origins := strings.Split(str("Iframe_Integration_receive_origin"), ",")
			switch {
			case !on("Iframe_Integration_receive_enable"):
				add("Iframe integration from "+o, "warn", "Iframe_Integration_receive_enable is off: embed.js cannot push tokens",
					"Rocket.Chat → Settings → General → Iframe Integration: enable Receive and list "+o)
			case slices.Contains(origins, "*"):
				add("Iframe integration from "+o, "warn", "Iframe_Integration_receive_origin is *: any page that frames Rocket.Chat can send it commands",
					"list the website's origins exactly instead of *")
			case !slices.Contains(origins, o):
				fix := "add " + o + " to Iframe_Integration_receive_origin (comma-separated, exact)"
				if slices.Contains(origins, " "+o) {
					fix = "remove the space before " + o + ": Rocket.Chat compares the untrimmed values"
				}
				add("Iframe integration from "+o, "fail", "Rocket.Chat ignores commands from "+o, fix)
			default:
				add("Iframe integration from "+o, "ok", "Rocket.Chat accepts commands from "+o, "")
			}
		}
	}
	if a.head != nil && a.headErr == nil && len(s.o.WebsiteOrigins) > 0 {
		xfo := strings.ToLower(a.head.Get("X-Frame-Options"))
		csp := a.head.Get("Content-Security-Policy")
		switch {
		case xfo != "":
			add("Framing Rocket.Chat", "fail", "Rocket.Chat answers X-Frame-Options: "+xfo+"; pages of "+strings.Join(s.o.WebsiteOrigins, ", ")+" cannot frame it",
				"set Iframe_Restrict_Access=false in Rocket.Chat and send Content-Security-Policy: frame-ancestors "+strings.Join(s.o.WebsiteOrigins, " ")+" from its reverse proxy")
		case !strings.Contains(csp, "frame-ancestors"):
			add("Framing Rocket.Chat", "warn", "any site can frame Rocket.Chat (no frame-ancestors) and drive its origin-unchecked login listener",
				"send Content-Security-Policy: frame-ancestors "+strings.Join(s.o.WebsiteOrigins, " ")+" from Rocket.Chat's reverse proxy")
		default:
			add("Framing Rocket.Chat", "ok", "frame-ancestors is set: "+csp, "")
		}
	}
	if a.ready {
		if a.readyErr != nil {
			add("Minting", "fail", a.readyErr.Error(), "")
		} else {
			add("Minting", "ok", "Rocket.Chat accepts rcsso's way of obtaining tokens", "")
		}
	}
}
