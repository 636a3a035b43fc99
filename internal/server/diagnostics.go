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
	"github.com/rcsso/rcsso/internal/doctor"
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

// rcAnswers is the operator part of diagnostics at one moment: the
// deployment checks (Options.Doctor, rcsso doctor's), which ask Rocket.Chat.
type rcAnswers struct {
	at     time.Time
	report doctor.Report
}

// diagCache holds the last rcAnswers, shared by every diagnostics request:
// one run of the checks per diagCacheFor however often the page is
// opened, run by one request at a time (others wait for it).
type diagCache struct {
	sem  chan struct{} // a one-slot lock whose wait honours the context
	last *rcAnswers
	now  func() time.Time
}

func newDiagCache() diagCache {
	return diagCache{sem: make(chan struct{}, 1), now: time.Now}
}

// rcAnswers returns the checks' report, at most diagCacheFor old. The
// checks run on a context detached from the request (bounded by 20 s), so
// a visitor who hangs up does not leave a cached "context canceled".
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
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 20*time.Second)
	defer cancel()
	a := &rcAnswers{at: s.diag.now()}
	if s.o.Doctor != nil {
		a.report = s.o.Doctor(ctx)
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
// on the website, and what its last API URL calls got; no Rocket.Chat
// calls are made for them. The operator (Authorization: Bearer
// <diagnostics.token>) also sees the deployment checks of rcsso doctor
// (Options.Doctor), run at most every 30 s (diagCache).
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
		add("Rocket.Chat answers", "info", fmt.Sprintf("checked at %s; kept for %s, so a changed setting shows within that time (rcsso doctor --config FILE checks at once)", a.at.Format(time.TimeOnly), diagCacheFor), "")
		for _, res := range a.report.Results {
			add(res.Check, strings.ToLower(string(res.Status)), res.Message, res.Fix)
		}
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
	id, idErr := s.o.Identity.Identify(r)
	if idErr == nil {
		add("This browser", "ok", "logged in on the website as "+id.Username+" ("+id.Subject+")", "")
	} else {
		add("This browser", "warn", "not logged in on the website here", "log in on the website in this browser, then open the chat and come back")
	}
	_, cookieErr := r.Cookie(s.o.Sessions.CookieName())
	s.apiCallCheck(s.calls.forClient(clientKey(r)), idErr == nil, cookieErr == nil, add)
	w.Header().Set("Cache-Control", "no-store")
	if strings.Contains(r.Header.Get("Accept"), "application/json") {
		writeJSON(w, http.StatusOK, map[string][]check{"checks": checks})
		return nil
	}
	s.render(w, r, http.StatusOK, "diagnostics.html", page{Title: "rcsso diagnostics", Checks: checks})
	return nil
}

// apiCallCheck judges this browser's last API URL call. Only a call that
// did not log the chat in, came without rcsso's cookie, while this page's
// request carries it, shows the browser withholding the cookie as
// third-party: a call that got 200 worked (a trusted-header visitor's
// calls carry no rcsso cookie at all), and a visitor without a session has
// no cookie to send.
func (s *Server) apiCallCheck(calls []apiCall, loggedIn, hasCookie bool, add func(name, state, detail, fix string)) {
	const name = "API URL calls from this browser"
	if len(calls) == 0 {
		add(name, "warn", "none yet", "open Rocket.Chat in this browser, then reload this page")
		return
	}
	c := calls[0]
	last := fmt.Sprintf("the last call (%s, from %s", c.At.Format(time.TimeOnly), c.Origin)
	cookie := "without rcsso's cookie"
	if c.Cookie {
		cookie = "with rcsso's cookie"
	}
	switch {
	case c.Status == http.StatusOK:
		add(name, "ok", fmt.Sprintf("%s, %s) got 200: the chat was logged in", last, cookie), "")
	case !c.Cookie && hasCookie:
		add(name, "fail", fmt.Sprintf("%s, Sec-Fetch-Site %q, Sec-Fetch-Storage-Access %q) came without rcsso's cookie, which this browser holds, and got %d", last, c.FetchSite, c.StorageAccess, c.Status),
			"the browser blocks the cookie as third-party: use one site for Rocket.Chat and rcsso, or the host push flow")
	case !loggedIn:
		add(name, "warn", fmt.Sprintf("%s, %s) got %d: this browser is not logged in on the website", last, cookie, c.Status),
			"log in on the website in this browser, then open the chat and come back")
	case c.Status >= 500:
		add(name, "fail", fmt.Sprintf("%s, %s) got %d", last, cookie, c.Status), "see rcsso's log for the request; the operator part of this page lists what rcsso found wrong")
	default:
		add(name, "warn", fmt.Sprintf("%s, %s) got %d although this browser is logged in on the website", last, cookie, c.Status),
			"if the website's reverse proxy identifies people (trusted header), make it pass the header on the API URL's path too; reload the chat and this page")
	}
}
