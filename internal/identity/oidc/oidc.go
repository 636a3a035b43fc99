// Package oidc is the OpenID Connect identity source: rcsso acts as a
// relying party (RP) of an OpenID Provider (OP), logs the visitor in with the
// authorization code flow (OpenID Connect Core 1.0 §3.1) protected by PKCE
// (RFC 7636, S256), a state and a nonce, and then keeps its own
// websession.Manager session, exactly like the local source. It also accepts
// OpenID Connect Back-Channel Logout 1.0 logout tokens and offers
// RP-Initiated Logout 1.0.
//
// The routes, below /auth/<Name>/:
//
//	GET  login?return_to=…     start the code flow (302 to the OP)
//	GET  callback?code&state   finish it (303 to return_to, or a small page)
//	POST backchannel-logout    OP → rcsso logout token (Back-Channel Logout §2.5)
//	GET  logout?return_to=…    end the rcsso session, then the OP's session
//
// Back-channel logout ends every rcsso session of the token's "sub" (all
// browsers), then calls Options.OnLogout. rcsso does not record the OP's
// session ids, so a logout token carrying only "sid" is refused with 400
// and an error_description saying so; register the client at the OP
// without backchannel_logout_session_required, or have it send "sub".
//
// The login state cookie is one per browser and source: two logins started
// in parallel in one browser leave only the later one able to finish.
//
// Single-use values (consumed login states, logout token "jti") are
// remembered in memory only: several rcsso instances behind one name do not
// share them (each one still refuses its own replays; the OP's single-use
// authorization codes and the short state lifetime bound the rest).
package oidc

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/identity/flowstate"
	"github.com/rcsso/rcsso/internal/websession"
)

// Protocol constants and limits.
const (
	// BackchannelLogoutEvent is the member of a logout token's "events"
	// claim that marks it as a logout token (Back-Channel Logout 1.0 §2.4).
	BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"

	cookiePrefix   = "rcsso_oidc_"
	maxLogoutBody  = 64 << 10 // bytes of a back-channel logout request body
	maxSeen        = 10000    // entries in each single-use set
	iatSkew        = 5 * time.Minute
	defaultTimeout = 15 * time.Second
)

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)
	errCode     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

	errNonce   = errors.New("oidc: ID token nonce does not match the login request")
	errSIDOnly = errors.New("oidc: logout token has no sub claim; rcsso does not track OP session ids (sid), so sid-only logout tokens are not supported")
	errReplay  = errors.New("oidc: logout token jti already used")
)

// protectedClaims are ID token claims that UserInfo claims never replace
// when the two are merged.
var protectedClaims = map[string]bool{
	"sub": true, "iss": true, "aud": true, "exp": true, "iat": true, "nbf": true,
	"nonce": true, "azp": true, "auth_time": true, "acr": true, "amr": true,
	"at_hash": true, "c_hash": true, "sid": true, "jti": true,
}

// Options configures one OpenID Connect source. Name, Issuer, ClientID,
// RedirectURL, Sessions and StateKey are required.
type Options struct {
	// Name is the source name: subjects are "<Name>:<sub>", routes live
	// under /auth/<Name>/, the state cookie is rcsso_oidc_<Name>. 1–32
	// characters of [A-Za-z0-9_-], starting with a letter or digit.
	Name string
	// Label is the login button text; default "Log in with <Name>".
	Label string
	// Issuer is the OP's issuer URL; discovery reads
	// <Issuer>/.well-known/openid-configuration, and ID and logout tokens
	// must carry exactly this "iss".
	Issuer string
	// ClientID is rcsso's client id at the OP (the expected "aud").
	ClientID string
	// ClientSecret may be empty for a public client, which then relies on
	// PKCE alone and sends client_id in the token request body.
	ClientSecret string
	// Scopes requested; default openid, profile, email. "openid" is added
	// when missing.
	Scopes []string
	// RedirectURL is <public_url>/auth/<Name>/callback, registered at the
	// OP. It must be an absolute http(s) URL whose path ends in "/callback";
	// the state cookie's Path is that path without "callback".
	RedirectURL string
	// Mapping maps the merged ID token and UserInfo claims. Its Subject
	// must be empty or "sub": OpenID subjects are always the "sub" claim
	// (Core 1.0 §5.7), and back-channel logout addresses users by "sub".
	Mapping claims.Mapping
	// Sessions starts and ends rcsso's own sessions.
	Sessions identity.Sessions
	// Once, when set, remembers single-use values (consumed login states,
	// logout token jti) in rcsso's store, so every rcsso instance on the
	// store refuses a replay, and a restart forgets nothing (store.Store's
	// UseOnce). Nil keeps them in this process (bounded). With a store, a
	// back-channel logout that failed after its jti was recorded cannot be
	// retried with the same token: the OP must send a new one.
	Once interface {
		UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error)
	}
	// StateKey is the 32-byte AES-256-GCM key sealing the state cookie.
	StateKey []byte
	// SecureCookies marks the state cookie Secure (public_url is https).
	SecureCookies bool
	// SafeReturnTo is the caller's open-redirect filter: it returns the URL
	// to use, or "" to reject it. Its result is written to the Location
	// header as it is (http.Redirect would clean relative paths), so it
	// must be unambiguous to browsers (server.ReturnToFilter returns
	// absolute URLs). Nil rejects every return_to.
	SafeReturnTo func(string) string
	// OnLogout is called after rcsso ended a subject's sessions because of
	// a back-channel or RP-initiated logout, to end the Rocket.Chat session
	// too. Optional.
	OnLogout func(ctx context.Context, subject string) error
	// HTTPClient talks to the OP (discovery, JWKS, token, UserInfo);
	// default a client with a 15 s timeout.
	HTTPClient *http.Client
	// Logger receives one line per failed or completed login or logout,
	// never tokens, codes or return_to values; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Source is an OpenID Connect identity source. It implements
// identity.Source and identity.Interactive, and is safe for concurrent use.
type Source struct {
	cfg        Options
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time
	provider   *gooidc.Provider
	verifier   *gooidc.IDTokenVerifier
	oauth      oauth2.Config
	endSession string
	codec      *stateCodec
	cookieName string
	cookiePath string
	redirect   *url.URL // parsed RedirectURL
	states     *seenSet
	jtis       *seenSet
}

var _ identity.Interactive = (*Source)(nil)

// New validates cfg and performs OpenID Provider discovery with ctx (OIDC
// Discovery 1.0 §4). Errors name the source and issuer and say what failed:
// an invalid field, an unreachable or malformed discovery document, an
// issuer mismatch, or missing endpoints.
func New(ctx context.Context, cfg Options) (*Source, error) {
	if !namePattern.MatchString(cfg.Name) {
		return nil, fmt.Errorf("oidc source %q: name must be 1-32 characters of [A-Za-z0-9_-]", cfg.Name)
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("oidc source %q (issuer %q): %s", cfg.Name, cfg.Issuer, fmt.Sprintf(format, a...))
	}
	switch {
	case cfg.Issuer == "":
		return nil, fail("issuer is empty")
	case cfg.ClientID == "":
		return nil, fail("client id is empty")
	case cfg.Sessions == nil:
		return nil, fail("no session manager")
	case cfg.Mapping.Subject != "" && cfg.Mapping.Subject != "sub":
		return nil, fail("claim mapping subject must be \"sub\", not %q", cfg.Mapping.Subject)
	}
	ru, err := url.Parse(cfg.RedirectURL)
	if err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" || !strings.HasSuffix(ru.Path, "/callback") {
		return nil, fail("redirect URL %q must be an absolute http(s) URL ending in /callback", cfg.RedirectURL)
	}
	codec, err := newStateCodec(cfg.StateKey, cfg.Name)
	if err != nil {
		return nil, fail("%v", err)
	}
	if cfg.Label == "" {
		cfg.Label = "Log in with " + cfg.Name
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{gooidc.ScopeOpenID, "profile", "email"}
	} else if !slices.Contains(cfg.Scopes, gooidc.ScopeOpenID) {
		cfg.Scopes = append([]string{gooidc.ScopeOpenID}, cfg.Scopes...)
	}
	s := &Source{
		cfg:        cfg,
		client:     cfg.HTTPClient,
		log:        cfg.Logger,
		now:        cfg.Now,
		codec:      codec,
		cookieName: cookiePrefix + cfg.Name,
		cookiePath: strings.TrimSuffix(ru.Path, "callback"),
		redirect:   ru,
		states:     newSeenSet(maxSeen),
		jtis:       newSeenSet(maxSeen),
	}
	if s.client == nil {
		s.client = &http.Client{Timeout: defaultTimeout}
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("source", cfg.Name)
	if s.now == nil {
		s.now = time.Now
	}

	s.provider, err = gooidc.NewProvider(gooidc.ClientContext(ctx, s.client), cfg.Issuer)
	if err != nil {
		return nil, fail("discovery at %s/.well-known/openid-configuration failed: %v", strings.TrimSuffix(cfg.Issuer, "/"), err)
	}
	ep := s.provider.Endpoint()
	if ep.AuthURL == "" || ep.TokenURL == "" {
		return nil, fail("discovery document lacks authorization_endpoint or token_endpoint")
	}
	var extra struct {
		EndSession string `json:"end_session_endpoint"`
	}
	if err := s.provider.Claims(&extra); err != nil {
		return nil, fail("discovery document: %v", err)
	}
	if extra.EndSession != "" {
		u, err := url.Parse(extra.EndSession)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fail("end_session_endpoint %q is not an absolute http(s) URL", extra.EndSession)
		}
		s.endSession = extra.EndSession
	}
	if cfg.ClientSecret == "" {
		ep.AuthStyle = oauth2.AuthStyleInParams
	}
	s.oauth = oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint:     ep,
		RedirectURL:  cfg.RedirectURL,
		Scopes:       cfg.Scopes,
	}
	// The provider's shared RemoteKeySet refetches the JWKS when a token
	// names an unknown "kid" (key rotation, Core 1.0 §10.1.1).
	s.verifier = s.provider.Verifier(&gooidc.Config{ClientID: cfg.ClientID, Now: s.now})
	return s, nil
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.cfg.Name }

// LoginLabel implements identity.Interactive.
func (s *Source) LoginLabel() string { return s.cfg.Label }

// Identify implements identity.Source: the visitor's rcsso session, if this
// source created it; identity.ErrNotLoggedIn otherwise, or a store error.
// The e-mail is only kept at login when the OP says it is verified, so
// EmailVerified is Email != "". Avatar and roles are not kept in sessions.
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	return websession.IdentifyAs(s.cfg.Sessions, r, s.cfg.Name)
}

// Handler implements identity.Interactive. It serves login, callback,
// logout (GET) and backchannel-logout (POST) relative to /auth/<Name>/; the
// caller strips that prefix, with or without its trailing slash. Other
// paths get 404, other methods (HEAD included: these routes have side
// effects) 405. Every response carries Cache-Control: no-store.
func (s *Source) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Source) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	route := strings.TrimPrefix(r.URL.Path, "/")
	var h http.HandlerFunc
	method := http.MethodGet
	switch route {
	case "login":
		h = s.login
	case "callback":
		h = s.callback
	case "logout":
		h = s.logout
	case "backchannel-logout":
		h, method = s.backchannelLogout, http.MethodPost
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != method {
		w.Header().Set("Allow", method)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h(w, r)
}

// login starts the authorization code flow (Core 1.0 §3.1.2.1) with PKCE
// S256 (RFC 7636 §4.1–4.3), a random state and nonce kept in the sealed
// state cookie.
func (s *Source) login(w http.ResponseWriter, r *http.Request) {
	st := loginState{
		State:    rand.Text(),
		Nonce:    rand.Text(),
		Verifier: oauth2.GenerateVerifier(),
		ReturnTo: s.safeReturnTo(r.URL.Query().Get("return_to")),
		IssuedAt: s.now().Unix(),
	}
	v, err := s.codec.encode(st)
	if err != nil {
		s.log.Error("oidc: sealing login state failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start the login. Please try again later.")
		return
	}
	http.SetCookie(w, s.stateCookie(v, int(StateTTL/time.Second)))
	http.Redirect(w, r, s.oauth.AuthCodeURL(st.State, gooidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// callback handles the authentication response (Core 1.0 §3.1.2.5–3.1.2.6),
// the token request (§3.1.3) and ID token validation (§3.1.3.7).
func (s *Source) callback(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Referrer-Policy", "no-referrer") // the URL holds the code
	q := r.URL.Query()
	c, cerr := r.Cookie(s.cookieName)
	http.SetCookie(w, s.stateCookie("", -1)) // single use, whatever happens
	const retry = "Please close this window and start the login again."

	if e := q.Get("error"); e != "" {
		if !errCode.MatchString(e) {
			e = "invalid error code"
		}
		s.log.Warn("oidc: login refused by the provider", "error", e)
		status := http.StatusBadGateway
		if e == "access_denied" {
			status = http.StatusBadRequest
		}
		s.page(w, status, "Login failed", "The identity provider did not log you in ("+e+"). "+retry)
		return
	}
	if cerr != nil {
		s.log.Warn("oidc: callback without state cookie")
		s.page(w, http.StatusBadRequest, "Login expired", "This login was not started in this browser, or it took too long. "+retry)
		return
	}
	now := s.now()
	st, err := s.codec.decode(c.Value, now)
	if err != nil {
		s.log.Warn("oidc: bad state cookie", "err", err)
		s.page(w, http.StatusBadRequest, "Login expired", "This login was not started in this browser, or it took too long. "+retry)
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		s.log.Warn("oidc: state parameter does not match the state cookie")
		s.page(w, http.StatusBadRequest, "Login failed", "The login response does not belong to this browser's login. "+retry)
		return
	}
	if first, err := s.useOnce(r.Context(), s.states, "state", st.State, time.Unix(st.IssuedAt, 0).Add(StateTTL), now); err != nil {
		s.log.Error("oidc: recording the login state", "err", err)
		s.page(w, http.StatusServiceUnavailable, "Login failed", "rcsso cannot record this login right now. "+retry)
		return
	} else if !first {
		s.log.Warn("oidc: login state replayed")
		s.page(w, http.StatusBadRequest, "Login failed", "This login response was already used. "+retry)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.log.Warn("oidc: callback without code")
		s.page(w, http.StatusBadRequest, "Login failed", "The login response has no authorization code. "+retry)
		return
	}

	ctx := gooidc.ClientContext(r.Context(), s.client)
	tok, err := s.oauth.Exchange(ctx, code, oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			s.log.Error("oidc: token request refused", "status", re.Response.StatusCode, "error", re.ErrorCode)
		} else {
			s.log.Error("oidc: token request failed", "err", err)
		}
		s.page(w, http.StatusBadGateway, "Login failed", "rcsso could not complete the login with the identity provider. "+retry)
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		s.log.Error("oidc: token response has no id_token")
		s.page(w, http.StatusBadGateway, "Login failed", "The identity provider sent no ID token. "+retry)
		return
	}
	cl, sub, err := s.verifyIDToken(ctx, rawID, st.Nonce)
	if errors.Is(err, errNonce) {
		s.log.Warn("oidc: ID token nonce mismatch")
		s.page(w, http.StatusBadRequest, "Login failed", "The login response does not belong to this browser's login. "+retry)
		return
	}
	if err != nil {
		s.log.Error("oidc: ID token rejected", "err", err)
		s.page(w, http.StatusBadGateway, "Login failed", "The identity provider sent an invalid ID token. "+retry)
		return
	}
	if s.provider.UserInfoEndpoint() != "" {
		if err := s.mergeUserInfo(ctx, tok, sub, cl); err != nil {
			s.log.Error("oidc: UserInfo rejected", "err", err)
			s.page(w, http.StatusBadGateway, "Login failed", "rcsso could not read your profile from the identity provider. "+retry)
			return
		}
	}
	id, err := s.cfg.Mapping.Map(s.cfg.Name, cl)
	if err != nil {
		s.log.Error("oidc: claims not usable", "err", err)
		s.page(w, http.StatusBadGateway, "Login failed", "The identity provider did not send a usable user id. "+retry)
		return
	}
	if !id.EmailVerified {
		id.Email = "" // sessions only keep e-mail addresses the OP vouches for
	}
	if err := s.cfg.Sessions.Start(r.Context(), w, id); err != nil {
		s.log.Error("oidc: starting session failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start your session. Please try again later.")
		return
	}
	s.log.Info("oidc: login", "subject", id.Subject)
	if rt := s.safeReturnTo(st.ReturnTo); rt != "" { // filtered again: the cookie may predate a filter change
		redirect(w, rt, http.StatusSeeOther)
		return
	}
	s.page(w, http.StatusOK, "Logged in", "You are logged in, you can close this window.")
}

// verifyIDToken checks signature, iss, aud, exp (go-oidc), azp and nonce
// (Core 1.0 §3.1.3.7 items 4, 5, 11) and returns the claims and "sub".
func (s *Source) verifyIDToken(ctx context.Context, raw, nonce string) (map[string]any, string, error) {
	t, err := s.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, "", err
	}
	if subtle.ConstantTimeCompare([]byte(t.Nonce), []byte(nonce)) != 1 {
		return nil, "", errNonce
	}
	var cl map[string]any
	if err := t.Claims(&cl); err != nil {
		return nil, "", fmt.Errorf("oidc: ID token claims: %w", err)
	}
	azp, hasAZP := cl["azp"]
	if (hasAZP || len(t.Audience) > 1) && azp != s.cfg.ClientID {
		return nil, "", fmt.Errorf("oidc: ID token authorized party %v is not client %q", azp, s.cfg.ClientID)
	}
	if t.Subject == "" {
		return nil, "", errors.New("oidc: ID token has no sub")
	}
	return cl, t.Subject, nil
}

// mergeUserInfo adds UserInfo claims (Core 1.0 §5.3) to cl. Profile claims
// from UserInfo replace the ID token's; protocol claims never do. The
// UserInfo "sub" must equal the ID token's (§5.3.2).
func (s *Source) mergeUserInfo(ctx context.Context, tok *oauth2.Token, sub string, cl map[string]any) error {
	ui, err := s.provider.UserInfo(ctx, oauth2.StaticTokenSource(tok))
	if err != nil {
		return err
	}
	if ui.Subject != sub {
		return errors.New("oidc: UserInfo sub differs from the ID token's")
	}
	var uc map[string]any
	if err := ui.Claims(&uc); err != nil {
		return err
	}
	mergeClaims(cl, uc)
	return nil
}

// mergeClaims copies UserInfo claims into the ID token claims, except the
// protocol claims (protectedClaims), which stay the ID token's.
func mergeClaims(idClaims, userinfo map[string]any) {
	for k, v := range userinfo {
		if !protectedClaims[k] {
			idClaims[k] = v
		}
	}
}

// backchannelLogout implements the RP side of Back-Channel Logout 1.0
// (§2.5 request, §2.6 validation, §2.8 response).
func (s *Source) backchannelLogout(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxLogoutBody)
	if err := r.ParseForm(); err != nil {
		s.logoutError(w, "invalid_request", "malformed request body")
		return
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" {
		s.logoutError(w, "invalid_request", "logout_token is missing")
		return
	}
	ctx := context.WithoutCancel(r.Context())
	sub, jti, err := s.verifyLogout(gooidc.ClientContext(ctx, s.client), raw)
	if err != nil {
		s.log.Warn("oidc: logout token rejected", "err", err)
		desc := "invalid logout token"
		if errors.Is(err, errSIDOnly) {
			desc = errSIDOnly.Error()
		}
		s.logoutError(w, "invalid_request", desc)
		return
	}
	subject := s.cfg.Name + ":" + sub
	if err := s.endSubject(ctx, subject); err != nil {
		if s.cfg.Once == nil {
			s.jtis.remove(jti) // let the OP retry
		}
		s.log.Error("oidc: back-channel logout failed", "subject", subject, "err", err)
		s.logoutError(w, "server_error", "logout failed")
		return
	}
	s.log.Info("oidc: back-channel logout", "subject", subject)
	w.WriteHeader(http.StatusOK)
}

// useOnce records a single-use value: in the store when Options.Once is
// set (key "oidc:<source>:<kind>:<value>"), else in set.
func (s *Source) useOnce(ctx context.Context, set *seenSet, kind, value string, exp, now time.Time) (bool, error) {
	if s.cfg.Once == nil {
		return set.add(value, exp, now), nil
	}
	return s.cfg.Once.UseOnce(ctx, "oidc:"+s.cfg.Name+":"+kind+":"+value, exp)
}

func (s *Source) endSubject(ctx context.Context, subject string) error {
	if _, err := s.cfg.Sessions.EndSubject(ctx, subject); err != nil {
		return err
	}
	if s.cfg.OnLogout != nil {
		return s.cfg.OnLogout(ctx, subject)
	}
	return nil
}

// verifyLogout validates a logout token (Back-Channel Logout 1.0 §2.6):
// go-oidc checks signature, iss, aud, exp, the events member, no nonce,
// jti and sub/sid presence; this adds iat, the events value being a JSON
// object, a required sub, and jti replay. It returns sub and jti.
func (s *Source) verifyLogout(ctx context.Context, raw string) (sub, jti string, err error) {
	lt, err := s.verifier.VerifyLogout(ctx, raw)
	if err != nil {
		return "", "", err
	}
	now := s.now()
	if lt.IssuedAt.IsZero() || lt.IssuedAt.After(now.Add(iatSkew)) {
		return "", "", errors.New("oidc: logout token iat missing or in the future")
	}
	var c struct {
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := lt.Claims(&c); err != nil {
		return "", "", err
	}
	if ev := strings.TrimSpace(string(c.Events[BackchannelLogoutEvent])); !strings.HasPrefix(ev, "{") {
		return "", "", errors.New("oidc: logout token event value is not a JSON object")
	}
	sub = strings.TrimSpace(lt.Subject) // as claims.Mapping.Map does
	if sub == "" {
		return "", "", errSIDOnly
	}
	if first, err := s.useOnce(ctx, s.jtis, "jti", lt.TokenID, lt.Expiry, now); err != nil {
		return "", "", err
	} else if !first {
		return "", "", errReplay
	}
	return sub, lt.TokenID, nil
}

func (s *Source) logoutError(w http.ResponseWriter, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusBadRequest)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// logout is RP-initiated logout (RP-Initiated Logout 1.0 §2): it ends the
// visitor's rcsso session, calls OnLogout, and sends the browser to the OP's
// end_session_endpoint with client_id and post_logout_redirect_uri (the
// filtered return_to, which must be registered at the OP), or else straight
// to return_to.
func (s *Source) logout(w http.ResponseWriter, r *http.Request) {
	rt := s.safeReturnTo(r.URL.Query().Get("return_to"))
	ctx := context.WithoutCancel(r.Context())
	sess, ok, err := s.cfg.Sessions.End(ctx, w, r)
	if err != nil {
		s.log.Error("oidc: ending session failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Logout failed", "rcsso could not end your session. Please try again later.")
		return
	}
	if ok {
		s.log.Info("oidc: logout", "subject", sess.Subject)
		if s.cfg.OnLogout != nil {
			if err := s.cfg.OnLogout(ctx, sess.Subject); err != nil {
				s.log.Error("oidc: logout hook failed", "subject", sess.Subject, "err", err)
			}
		}
	}
	if s.endSession != "" {
		u, _ := url.Parse(s.endSession) // checked in New
		v := u.Query()
		v.Set("client_id", s.cfg.ClientID)
		if rt != "" { // must be absolute (RP-Initiated Logout 1.0 §2)
			if abs, err := s.redirect.Parse(rt); err == nil {
				v.Set("post_logout_redirect_uri", abs.String())
			}
		}
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
		return
	}
	if rt != "" {
		redirect(w, rt, http.StatusFound)
		return
	}
	s.page(w, http.StatusOK, "Logged out", "You are logged out, you can close this window.")
}

// redirect sends the browser to loc, a URL from SafeReturnTo, exactly as
// given.
func redirect(w http.ResponseWriter, loc string, code int) {
	w.Header().Set("Location", loc)
	w.WriteHeader(code)
}

func (s *Source) safeReturnTo(raw string) string { return flowstate.ReturnTo(s.cfg.SafeReturnTo, raw) }

func (s *Source) stateCookie(value string, maxAge int) *http.Cookie {
	return &http.Cookie{
		Name:     s.cookieName,
		Value:    value,
		Path:     s.cookiePath,
		MaxAge:   maxAge,
		Secure:   s.cfg.SecureCookies,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
}

// page writes a small self-contained HTML page (flowstate.Page).
func (s *Source) page(w http.ResponseWriter, status int, title, msg string) {
	flowstate.Page(w, status, title, msg, false)
}
