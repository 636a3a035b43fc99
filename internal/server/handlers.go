package server

import (
	"context"
	"errors"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/web"
)

// apiURL is the API URL (Rocket.Chat setting Accounts_Iframe_api_url).
// Contract (protocol spec §1.4, for every client generation): 200 with
// Content-Type application/json and {"loginToken": …} (or {"token": …} for
// iframe tokens, never both) when the visitor is logged in on the website;
// 401 when not, or when the person logged out of the chat, and to
// Rocket.Chat's mobile app's WebView, which only takes the IFrame URL's
// hand-over (mobileapp.go); 5xx with a JSON error when Rocket.Chat fails.
//
// A call from a 6.2–7.10 web client (fetchClient) gets the cached token only
// after Rocket.Chat has confirmed it (one GET /api/v1/me; concurrent calls
// share it): those clients call right after a chat logout, when Rocket.Chat
// has just deleted that token, and 7.8–7.10 ignore a refused loginToken,
// leaving Rocket.Chat's own login page. A refused token marks the chat
// logout, so the other post-logout calls answer 401 without asking
// Rocket.Chat again. Other clients get the cached token as long as it is
// fresh (minting.revalidate_after): 8.x calls on every page load, and
// 3.x–6.1 and 7.11+ show the IFrame URL on a refused token, which
// re-validates.
func (s *Server) apiURL(w http.ResponseWriter, r *http.Request) error {
	if fromMobileAppWebView(r) {
		return errMobileAppWebView
	}
	id, err := s.o.Identity.Identify(r)
	if err != nil {
		return err
	}
	t, err := s.o.Broker.Token(r.Context(), id, fetchClient(r))
	if err != nil {
		return err
	}
	writeTokenJSON(w, t)
	return nil
}

// fetchClient reports whether r comes from Rocket.Chat's 6.2–7.10 web
// client, which alone sends Content-Type: application/json to the API URL
// (with no body): RocketChat/Rocket.Chat
// apps/meteor/client/views/root/MainLayout/useIframeLogin.ts
// @1384c562991ed85c0232da0adc6720c68eb76d41 (6.2–7.7) and
// apps/meteor/client/hooks/iframe/useIframe.ts
// @8320a447b47382aae069df8e498ee50be0a40d5c (7.8–7.10, PR #36022); 3.x–6.1
// send no header (Meteor HTTP.call) and 7.11+ send `headers: undefined`
// (apps/meteor/client/views/root/hooks/useIframe.ts
// @366449569490ba3f88fa7870a87d3f4b7ff92c47). The header only makes rcsso
// check the person's own token with Rocket.Chat before answering, as every
// visit to the IFrame URL does; forging it gains nothing.
func fetchClient(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == "application/json"
}

// writeTokenJSON writes {"loginToken":"…"} or {"token":"…"}. Tokens are
// [A-Za-z0-9_-] (Random.secret), but the value is escaped anyway.
func writeTokenJSON(w http.ResponseWriter, t mint.Token) {
	// cors set Cache-Control: no-store. Content-Type is the eighth
	// header, the last a Go map holds before it grows into a table (even
	// overwriting a key of a full small map grows it: 3 allocations).
	w.Header()["Content-Type"] = hvJSON
	buf := make([]byte, 0, 64+len(t.Value))
	buf = append(buf, `{"`...)
	buf = append(buf, t.Kind...)
	buf = append(buf, `":`...)
	buf = appendJSONString(buf, t.Value)
	buf = append(buf, "}\n"...)
	_, _ = w.Write(buf)
}

func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20 || c == '<' || c == '>' || c == '&':
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}

// page is the data of every template.
type page struct {
	Title, Heading, Error, RequestID string
	Base, Website, LoginURL          string
	Username, ReturnTo, Client       string
	Buttons                          []button
	Checks                           []check
	ShowForm                         bool
	Data                             any
	// Native is the "Log in with a Rocket.Chat account" part
	// (website.native_login; nativelogin.go); nil hides it.
	Native *nativeView
}

// button is an interactive identity source offered on the IFrame URL.
type button struct {
	Name, Label string
	// URL is the top-level link: back to the IFrame URL (a person who
	// opened it in a tab) or, with Top, to Rocket.Chat (desktop app).
	URL string
	// PopupURL is used from inside Rocket.Chat's iframe: the provider runs
	// in a popup that ends on /popup-done.
	PopupURL string
	Top      bool
}

// buttons lists the interactive sources for the IFrame URL.
func (s *Server) buttons(returnTo, client string) []button {
	var out []button
	for _, src := range s.o.Identity {
		in, ok := src.(identity.Interactive)
		if !ok {
			continue
		}
		start := s.base + "/auth/" + in.Name() + "/login?return_to="
		back := returnTo
		if back == "" {
			back = s.base + "/login"
			if client != "" {
				back += "?client=" + client
			}
		}
		b := button{Name: in.Name(), Label: in.LoginLabel(), URL: start + url.QueryEscape(back), PopupURL: start + url.QueryEscape(s.base+"/popup-done")}
		if client == "electron" || client == clientMobile {
			// Electron opens popups in the system browser, whose cookies the
			// app never sees; the mobile app's WebView loads a popup in
			// place of the workspace page, with no opener (iOS), or in a
			// WebView nobody sees (Android). Take the whole window through
			// the provider and back to Rocket.Chat instead, whose IFrame URL
			// then hands the token over.
			b.URL, b.Top = start+url.QueryEscape(s.o.RocketChatOrigin+"/"), true
		}
		out = append(out, b)
	}
	return out
}

// popupDone ends the popup of an interactive login (see static/login.js).
func (s *Server) popupDone(w http.ResponseWriter, r *http.Request) error {
	s.render(w, r, http.StatusOK, "popupdone.html", page{Data: handoffData{RCOrigin: s.o.RocketChatOrigin, PopupDone: true}})
	return nil
}

func (s *Server) render(w http.ResponseWriter, r *http.Request, status int, name string, p page) {
	p.Base = s.base
	if p.Website == "" {
		p.Website = s.o.WebsiteName
	}
	if p.Title == "" {
		p.Title = "Chat sign-in"
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := web.Templates.ExecuteTemplate(w, name, p); err != nil {
		s.log.Error("rendering page", "page", name, "err", err, "request_id", requestID(r.Context()))
	}
}

// handoffData is the JSON island read by static/login.js.
type handoffData struct {
	RCOrigin   string `json:"rcOrigin"`
	LoginToken string `json:"loginToken,omitempty"`
	// TokenKey is the login-with-token message's key for LoginToken:
	// "loginToken" for a resume token, "token" for an iframe token (minting
	// mode mongo-iframe); rocketchat-protocol.md §1.6.
	TokenKey  string `json:"tokenKey,omitempty"`
	Client    string `json:"client,omitempty"`
	PopupDone bool   `json:"popupDone,omitempty"`
	// Native marks the native login's own pages (nativelogin.go), where
	// the website's storage-access prompt does not apply.
	Native bool `json:"native,omitempty"`
	// Known marks pages for a person the identity sources recognised
	// (logged out of the chat, no access, deactivated): their cookie
	// arrived, so the storage-access prompt does not apply either.
	Known bool `json:"known,omitempty"`
}

// loginPage is the IFrame URL (Accounts_iframe_url). Rocket.Chat shows it
// when the API URL did not give a working token (spec §1.5), with
// ?client=electron in the desktop app, and always in the mobile app's
// WebView (mobileapp.go). A visitor the identity sources
// recognise gets the hand-over page at once, after re-validating the cached
// token (Rocket.Chat showing this page may mean the token failed); others get
// the login form, or a link to the website's login.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	returnTo := s.safeReturnTo(q.Get("return_to"))
	client := clientOf(r, q.Get("client"))
	id, err := s.o.Identity.Identify(r)
	switch {
	case err == nil:
		if returnTo != "" && !framed(r) {
			redirect(w, returnTo, http.StatusSeeOther)
			return nil
		}
		return s.handoff(w, r, id, true, client)
	case !errors.Is(err, identity.ErrNotLoggedIn):
		return err
	}
	buttons := s.buttons(returnTo, client)
	if form := len(s.o.Identity.PasswordSources()) > 0; form || len(buttons) > 0 {
		s.render(w, r, http.StatusOK, "login.html", page{ReturnTo: returnTo, Client: client, Buttons: buttons,
			ShowForm: form, Data: handoffData{RCOrigin: s.o.RocketChatOrigin},
			Native: s.nativeSection(client)})
		return nil
	}
	s.render(w, r, http.StatusOK, "notloggedin.html", page{LoginURL: s.o.WebsiteLoginURL, Data: handoffData{RCOrigin: s.o.RocketChatOrigin},
		Native: s.nativeSection(client)})
	return nil
}

// loginHashWait is how long a login attempt waits for a free password
// check slot (Options.LoginConcurrency) before it is refused with 429.
const loginHashWait = 2 * time.Second

// loginSubmit takes the login form (CSRF-protected by
// http.CrossOriginProtection) and checks the password against each
// password source in order (local accounts, a directory, …): the first
// that accepts it wins. Anonymous visitors choose how much work it does,
// so each attempt first reserves its place in the failure limiter (per
// client, per user and client, slow-down per user; one attempt per form
// submission, however many sources check it), then waits for one of
// Options.LoginConcurrency password check slots; refusals answer 429 with
// Retry-After and the reason on the login form. A source that cannot
// check passwords now (identity.ErrSourceUnavailable: its directory is
// down) shows the form again with 502 and why.
func (s *Server) loginSubmit(w http.ResponseWriter, r *http.Request) error {
	pws := s.o.Identity.PasswordSources()
	if len(pws) == 0 {
		return &Error{Status: http.StatusNotFound, Message: "no identity source takes a password here"}
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		return &Error{Status: http.StatusBadRequest, Message: "malformed login form", Err: err}
	}
	username := strings.TrimSpace(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	returnTo := s.safeReturnTo(r.PostForm.Get("return_to"))
	client := clientOf(r, r.PostForm.Get("client"))
	form := page{Username: username, ReturnTo: returnTo, Client: client, ShowForm: true, Buttons: s.buttons(returnTo, client),
		Data: handoffData{RCOrigin: s.o.RocketChatOrigin}}
	ip := clientIP(r)
	user := strings.ToLower(username)
	refuse := func(err error) error {
		var le *LoginRefusedError
		if !errors.As(err, &le) {
			return err
		}
		status, msg, retry := classify(err)
		s.log.Warn("local login refused", "reason", le.Reason, "user", user, "client_ip", ip)
		audit.Record(r.Context(), audit.Event{Event: audit.LoginFailed, Outcome: audit.Denied, Username: user, Reason: "login limits: " + le.Reason})
		form.Error = msg
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		s.render(w, r, status, "login.html", form)
		return nil
	}
	attempt, err := s.limiter.Reserve(limiterClient(ip), user)
	if err != nil {
		return refuse(err)
	}
	ctx := r.Context()
	if attempt.Wait > 0 {
		t := time.NewTimer(attempt.Wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			attempt.Cancel()
			s.log.Debug("local login abandoned by the client", "user", user, "client_ip", ip)
			return nil
		}
	}
	release, err := s.hashSlot(ctx)
	if err != nil {
		attempt.Cancel()
		if ctx.Err() != nil {
			s.log.Debug("local login abandoned by the client", "user", user, "client_ip", ip)
			return nil
		}
		return refuse(err)
	}
	id, checked, err := func() (identity.Identity, bool, error) {
		defer release()
		return authenticate(ctx, pws, username, password)
	}()
	if errors.Is(err, identity.ErrBadCredentials) {
		attempt.Failed()
		s.log.Info("local login failed", "user", user, "client_ip", ip)
		audit.Record(ctx, audit.Event{Event: audit.LoginFailed, Outcome: audit.Denied, Username: user, Reason: "wrong user name or password"})
		form.Error = "Wrong user name or password."
		s.render(w, r, http.StatusUnauthorized, "login.html", form)
		return nil
	}
	if err != nil {
		// A source that refused the password counts the attempt, even
		// when another could not check it: the limits must hold for the
		// local accounts while a directory is down.
		if checked {
			attempt.Failed()
		} else {
			attempt.Cancel()
		}
		if !errors.Is(err, identity.ErrSourceUnavailable) {
			return err
		}
		status, msg, _ := classify(err)
		s.log.Error("password login: an identity source cannot check passwords", "user", user, "client_ip", ip,
			"request_id", requestID(ctx), "err", err)
		audit.Record(ctx, audit.Event{Event: audit.LoginFailed, Outcome: audit.Failed, Username: user, Reason: "identity source unavailable"})
		form.Error = msg
		w.Header().Set("Cache-Control", "no-store")
		s.render(w, r, status, "login.html", form)
		return nil
	}
	attempt.Succeeded()
	start := s.o.Sessions.Start
	if framed(r) {
		start = s.o.Sessions.StartFramed
	}
	if err := start(r.Context(), w, id); err != nil {
		return err
	}
	s.log.Info("website session started", "subject", id.Subject, "source", id.Source)
	if returnTo != "" && !framed(r) {
		redirect(w, returnTo, http.StatusSeeOther)
		return nil
	}
	return s.handoff(w, r, id, false, client)
}

// authenticate checks the password against each source in order and
// returns the first identity one accepts. When none accepts it returns
// the first error other than identity.ErrBadCredentials (a source that
// could not check: its directory is down) or else
// identity.ErrBadCredentials; checked says whether some source refused
// the password. It stops at ctx's end.
func authenticate(ctx context.Context, pws []identity.PasswordAuthenticator, username, password string) (id identity.Identity, checked bool, err error) {
	var failed error
	for _, p := range pws {
		id, err := p.Authenticate(ctx, username, password)
		switch {
		case err == nil:
			return id, checked, nil
		case errors.Is(err, identity.ErrBadCredentials):
			checked = true
		case ctx.Err() != nil:
			return identity.Identity{}, checked, err
		case failed == nil:
			failed = err
		}
	}
	if failed != nil {
		return identity.Identity{}, checked, failed
	}
	return identity.Identity{}, checked, identity.ErrBadCredentials
}

// hashSlot takes one of the password check slots, waiting at most
// loginHashWait (waiters are served in order); release gives it back.
// Errors: a *LoginRefusedError (RefusedBusy) or ctx's error.
func (s *Server) hashSlot(ctx context.Context) (release func(), err error) {
	release = func() { <-s.hashSlots }
	select {
	case s.hashSlots <- struct{}{}:
		return release, nil
	default:
	}
	t := time.NewTimer(loginHashWait)
	defer t.Stop()
	select {
	case s.hashSlots <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, &LoginRefusedError{Reason: RefusedBusy, RetryAfter: loginHashWait}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// handoff renders the page that posts the token to Rocket.Chat, or, after
// a chat-side logout, the page that offers to log in to the chat again.
func (s *Server) handoff(w http.ResponseWriter, r *http.Request, id identity.Identity, revalidate bool, client string) error {
	t, err := s.o.Broker.Token(r.Context(), id, revalidate)
	if errors.Is(err, mint.ErrChatLoggedOut) {
		s.render(w, r, http.StatusOK, "chatloggedout.html", page{Username: id.Username, Client: client, Data: handoffData{RCOrigin: s.o.RocketChatOrigin, Known: true}})
		return nil
	}
	if errors.Is(err, identity.ErrAccessDenied) {
		s.render(w, r, http.StatusForbidden, "accessdenied.html", page{Username: id.Username, Data: handoffData{RCOrigin: s.o.RocketChatOrigin, Known: true}})
		return nil
	}
	if errors.Is(err, mint.ErrDeactivated) {
		s.render(w, r, http.StatusForbidden, "deactivated.html", page{Username: id.Username, Data: handoffData{RCOrigin: s.o.RocketChatOrigin, Known: true}})
		return nil
	}
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "handoff.html", page{
		Username: id.Username,
		Data:     handoffData{RCOrigin: s.o.RocketChatOrigin, LoginToken: t.Value, TokenKey: string(t.Kind), Client: client},
	})
	return nil
}

// resumeSubmit is the "log in to the chat again" button shown after a
// chat-side logout (CSRF-protected).
func (s *Server) resumeSubmit(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	_ = r.ParseForm()
	id, err := s.o.Identity.Identify(r)
	if err != nil {
		return err
	}
	t, err := s.o.Broker.Resume(r.Context(), id)
	if err != nil {
		return err
	}
	s.render(w, r, http.StatusOK, "handoff.html", page{
		Username: id.Username,
		Data:     handoffData{RCOrigin: s.o.RocketChatOrigin, LoginToken: t.Value, TokenKey: string(t.Kind), Client: clientKind(r.PostForm.Get("client"))},
	})
	return nil
}

// logoutPage shows a logout button (for top-level visits).
func (s *Server) logoutPage(w http.ResponseWriter, r *http.Request) error {
	s.render(w, r, http.StatusOK, "logout.html", page{ReturnTo: s.safeReturnTo(r.URL.Query().Get("return_to"))})
	return nil
}

// logoutSubmit ends the visitor's rcsso website session, drops their cached
// Rocket.Chat token and ends that Rocket.Chat session (POST /api/v1/logout
// as the user), so the chat logs out too.
func (s *Server) logoutSubmit(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	_ = r.ParseForm()
	returnTo := s.safeReturnTo(r.PostForm.Get("return_to"))
	id, idErr := s.o.Identity.Identify(r)
	if idErr != nil && !errors.Is(idErr, identity.ErrNotLoggedIn) {
		return idErr
	}
	if _, _, err := s.o.Sessions.End(r.Context(), w, r); err != nil {
		return err
	}
	if idErr == nil {
		audit.Record(r.Context(), audit.Event{Event: audit.Logout, Subject: id.Subject, Source: id.Source, Reason: "logout page"})
		if _, err := s.o.Broker.Forget(r.Context(), id.Subject, true); err != nil {
			s.log.Warn("logout: could not end the Rocket.Chat session", "subject", id.Subject, "err", err)
		}
		s.log.Info("logged out", "subject", id.Subject)
	}
	switch {
	case returnTo != "":
		redirect(w, returnTo, http.StatusSeeOther)
	case wantsHTML(r):
		s.render(w, r, http.StatusOK, "loggedout.html", page{})
	default:
		writeJSON(w, http.StatusOK, map[string]bool{"logged_out": idErr == nil})
	}
	return nil
}

// readyz answers 200 when the store and Rocket.Chat answer (checked at most
// every 2 s), 503 otherwise, with the failing part named, and any
// warnings (Options.Warnings) that do not make rcsso unready. Anyone sees
// each part's state (publicReadiness); the operator (Authorization: Bearer
// <diagnostics.token>, as for /diagnostics) also sees the reasons,
// Rocket.Chat's version and minting_via. Failing parts are logged at WARN.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) error {
	operator, err := s.diagnosticsOperator(r)
	if err != nil {
		return err
	}
	s.readyMu.Lock()
	defer s.readyMu.Unlock()
	if time.Since(s.readyAt) > 2*time.Second {
		body := map[string]string{"store": "ok", "rocketchat": "ok"}
		ok := true
		// The answer is shared by every prober for 2 s: it must not be
		// cut short by the one client that asked and hung up.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), 3*time.Second)
		defer cancel()
		if err := s.o.Store.Ping(ctx); err != nil {
			body["store"] = "failing: " + err.Error()
			ok = false
		}
		if info, err := s.o.RC.Info(ctx); err != nil {
			body["rocketchat"] = "failing: " + err.Error()
			ok = false
		} else {
			body["rocketchat_version"] = info.Version
			if s.o.Ready != nil {
				body["minting"] = "ok"
				if err := s.o.Ready(ctx); err != nil {
					body["minting"] = "failing: " + err.Error()
					ok = false
				} else if s.o.MintingVia != nil {
					if via := s.o.MintingVia(); via != "" {
						body["minting_via"] = via
					}
				}
			}
		}
		if s.o.Warnings != nil {
			for k, v := range s.o.Warnings(ctx) {
				if _, taken := body[k]; !taken {
					body[k] = v
				}
			}
		}
		for k, v := range body {
			if strings.HasPrefix(v, "failing") {
				s.log.Warn("not ready", "part", k, "reason", v)
			}
		}
		s.readyAt, s.readyBody, s.readyOK = time.Now(), body, ok
	}
	status := http.StatusOK
	if !s.readyOK {
		status = http.StatusServiceUnavailable
	}
	if operator {
		writeJSON(w, status, s.readyBody)
		return nil
	}
	writeJSON(w, status, publicReadiness(s.readyBody))
	return nil
}

// publicReadiness is what anyone may see of /readyz's body: each part's
// state ("ok", "failing", "warn"), not its reason, Rocket.Chat's version or
// the service minting goes through, which can name internal addresses,
// rooms and versions with known holes. The reasons are in rcsso's log and
// shown with Authorization: Bearer <diagnostics.token>.
func publicReadiness(body map[string]string) map[string]string {
	out := make(map[string]string, len(body)+1)
	for k, v := range body {
		switch k {
		case "rocketchat_version", "minting_via":
			continue
		}
		state, _, _ := strings.Cut(v, ":")
		out[k] = state
	}
	out["details"] = "for the reasons, send the header Authorization: Bearer followed by diagnostics.token; rcsso's log has them too"
	return out
}

// safeReturnTo filters return_to values (see ReturnToFilter).
func (s *Server) safeReturnTo(raw string) string { return s.returnTo(raw) }

// framed reports whether the browser says (Fetch Metadata) that it loads
// the page into a frame. Rocket.Chat frames the IFrame URL without
// return_to, so a request with return_to and no Fetch Metadata (plain http
// is not a secure context) is a top-level website login.
func framed(r *http.Request) bool {
	d := r.Header.Get("Sec-Fetch-Dest")
	return d == "iframe" || d == "frame"
}

func clientKind(c string) string {
	if c == "electron" {
		return c
	}
	return ""
}

// clientMobile is the client kind of Rocket.Chat's mobile app's WebView.
const clientMobile = "mobile"

// clientOf is the Rocket.Chat client that shows the IFrame URL: "electron"
// (the desktop app adds client=electron, param), clientMobile (the mobile
// app's WebView, by its user agent; mobileapp.go) or "" (a browser).
func clientOf(r *http.Request, param string) string {
	if fromMobileAppWebView(r) {
		return clientMobile
	}
	return clientKind(param)
}

// clientIP is the TCP peer's address.
func clientIP(r *http.Request) string {
	if _, ip := audit.Request(r.Context()); ip != "" {
		return ip
	}
	return peerIP(r)
}

// peerIP is the TCP peer's address.
func peerIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// clientAddr is the client's address: the TCP peer, or, when the peer is
// one of Options.TrustedProxies, the rightmost X-Forwarded-For address that
// is not a trusted proxy (a client can prepend anything to the header, but
// not what the proxies append). Failed-login limits, logs and the audit log
// key on it, so that behind a reverse proxy one client's failures do not
// lock everybody out.
func (s *Server) clientAddr(r *http.Request) string {
	peer := peerIP(r)
	if len(s.o.TrustedProxies) == 0 || !s.trustedProxy(peer) {
		return peer
	}
	hops := r.Header.Values("X-Forwarded-For")
	addr := peer
	for i := len(hops) - 1; i >= 0; i-- {
		parts := strings.Split(hops[i], ",")
		for j := len(parts) - 1; j >= 0; j-- {
			a, err := netip.ParseAddr(strings.TrimSpace(parts[j]))
			if err != nil {
				return addr // malformed: stop at the last address a trusted hop vouched for
			}
			addr = a.Unmap().String()
			if !s.trustedProxy(addr) {
				return addr
			}
		}
	}
	return addr
}

func (s *Server) trustedProxy(ip string) bool {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return false
	}
	a = a.Unmap()
	for _, p := range s.o.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}
