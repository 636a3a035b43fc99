package rcemu

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// The server-side OAuth flow of Rocket.Chat 8.7 (PR #40721, re-landing
// #39760; https://github.com/RocketChat/Rocket.Chat/releases/tag/8.7.0-rc.0),
// behind the public boolean setting Accounts_OAuth_Use_Modern_Flow (default
// false). Rocket.Chat's own server runs the authorization code grant with
// passport:
//
//	GET /oauth/<service>[?loginClient=mobile|desktop]
//	    302 to the provider's authorize URL with state and PKCE (S256),
//	    redirect_uri <Site_Url>/oauth/<service>/callback
//	GET /oauth/<service>/callback?code&state
//	    exchanges the code at the token URL (client credentials and
//	    code_verifier in the form), fetches the identity, finds or creates
//	    the user, and redirects to <Site_Url>/home?loginCode=<64 hex>
//	    (&loginClient=…); a failure redirects to /login
//	POST /api/v1/loginCode.redeem {code}
//	    single-use, 60 s: {loginToken, userId, success}
//
// Sources (RocketChat/Rocket.Chat): the routes and their gate in
// apps/meteor/server/lib/oauth/addPassportCustomOAuth.ts
// @07961f6fd44e170a3d6229ff7edfe22e52f61655 and allowPassportOAuthMiddleware.ts
// @08c89a66aa6a33435322d0e4c2bd97161fe7c26d (the flow setting and the
// service's enable setting, else the request falls through to the web
// client); the strategy in apps/meteor/server/lib/oauth/passport/CustomOAuthStrategy.ts
// @1fd3f9130a934cd17450545e2f1ddc345c5b4bd3 (state: true); login codes
// instead of a resumeToken in the redirect, PR #40783; the redeem endpoint
// apps/meteor/app/api/server/v1/loginCode.ts @33eca8676a0c1f48c954fda507271df7fa8dee39
// and authentication.yaml (8.7.0: Added). The 2FA detour (/2fa/<method>/<id>)
// is not emulated: a user who needs a second factor is sent to /login.

// oauthFlowTTL bounds a pending authorization (state) and loginCodeTTL a
// login code.
const (
	oauthFlowTTL    = 10 * time.Minute
	loginCodeTTL    = 60 * time.Second
	maxPendingFlows = 1024
)

// oauthFlows holds pending states and unredeemed login codes. Both maps are
// bounded: expired entries are dropped first, then the oldest.
type oauthFlows struct {
	mu     sync.Mutex
	states map[string]pendingFlow // state → flow
	codes  map[string]loginCode   // sha256-hex(code) → code
}

type pendingFlow struct {
	service, verifier, loginClient string
	exp                            time.Time
}

type loginCode struct {
	userID string
	exp    time.Time
}

// prune drops expired entries, and the oldest ones while a map is full.
func prune[T any](m map[string]T, now time.Time, exp func(T) time.Time) {
	var oldestKey string
	var oldest time.Time
	for k, v := range m {
		if !now.Before(exp(v)) {
			delete(m, k)
			continue
		}
		if oldestKey == "" || exp(v).Before(oldest) {
			oldestKey, oldest = k, exp(v)
		}
	}
	if len(m) >= maxPendingFlows && oldestKey != "" {
		delete(m, oldestKey)
	}
}

// modernFlowService returns the service the 8.7 flow may use for this
// request, or false when Rocket.Chat would let the request fall through to
// the web client (profile before 8.7, setting off, service unknown or
// switched off).
func (s *Server) modernFlowService(name string) (OAuthService, bool) {
	if s.profile < profile87 {
		return OAuthService{}, false
	}
	s.mu.Lock()
	on := s.settingBool("Accounts_OAuth_Use_Modern_Flow")
	s.mu.Unlock()
	if !on {
		return OAuthService{}, false
	}
	svc, ok := s.oauthService(name)
	if !ok || svc.AuthorizeURL == "" || svc.TokenURL == "" {
		return OAuthService{}, false
	}
	return svc.effective(), true
}

// handleOAuthStart is GET /oauth/{service}.
func (s *Server) handleOAuthStart(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.modernFlowService(r.PathValue("service"))
	if !ok {
		s.serveClient(w, r)
		return
	}
	state, verifier := randomHex(32), randomHex(32)
	lc := r.URL.Query().Get("loginClient")
	if lc != "mobile" && lc != "desktop" {
		lc = ""
	}
	now := s.now()
	s.flows.mu.Lock()
	prune(s.flows.states, now, func(p pendingFlow) time.Time { return p.exp })
	s.flows.states[state] = pendingFlow{service: svc.Name, verifier: verifier, loginClient: lc, exp: now.Add(oauthFlowTTL)}
	s.flows.mu.Unlock()
	sum := sha256.Sum256([]byte(verifier))
	scope := svc.Scope
	if scope == "" {
		scope = "openid"
	}
	u, err := url.Parse(svc.AuthorizeURL)
	if err != nil {
		http.Redirect(w, r, "/login", http.StatusFound)
		return
	}
	q := u.Query()
	q.Set("response_type", "code")
	q.Set("client_id", svc.ClientID)
	q.Set("redirect_uri", s.callbackURL(r, svc.Name))
	q.Set("scope", scope)
	q.Set("state", state)
	q.Set("code_challenge", base64.RawURLEncoding.EncodeToString(sum[:]))
	q.Set("code_challenge_method", "S256")
	u.RawQuery = q.Encode()
	// express-session keeps the state in a cookie-bound session.
	http.SetCookie(w, &http.Cookie{Name: "rcemu_oauth_state", Value: state, Path: "/oauth/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, MaxAge: int(oauthFlowTTL / time.Second)})
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// callbackURL is <Site_Url>/oauth/<service>/callback.
func (s *Server) callbackURL(r *http.Request, service string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.siteURL(r) + "/oauth/" + service + "/callback"
}

// handleOAuthCallback is GET /oauth/{service}/callback.
func (s *Server) handleOAuthCallback(w http.ResponseWriter, r *http.Request) {
	svc, ok := s.modernFlowService(r.PathValue("service"))
	if !ok {
		s.serveClient(w, r)
		return
	}
	fail := func() { http.Redirect(w, r, "/login", http.StatusFound) }
	q := r.URL.Query()
	state := q.Get("state")
	c, err := r.Cookie("rcemu_oauth_state")
	if state == "" || err != nil || c.Value != state {
		fail()
		return
	}
	now := s.now()
	s.flows.mu.Lock()
	p, found := s.flows.states[state]
	delete(s.flows.states, state)
	s.flows.mu.Unlock()
	if !found || p.service != svc.Name || !now.Before(p.exp) || q.Get("error") != "" || q.Get("code") == "" {
		fail()
		return
	}
	token, err := svc.exchangeCode(r.Context(), q.Get("code"), s.callbackURL(r, svc.Name), p.verifier)
	if err != nil {
		s.log.Debug("rcemu: oauth code exchange failed", "service", svc.Name, "err", err)
		fail()
		return
	}
	ident, e := svc.fetchIdentity(token)
	if e != nil {
		fail()
		return
	}
	s.mu.Lock()
	u, e := s.oauthUser(svc, ident, now)
	if e == nil {
		e = s.validateLogin(u, svc.Name, "")
	}
	var userID string
	if u != nil {
		userID = u.id
	}
	site := s.siteURL(r)
	s.mu.Unlock()
	if e != nil {
		fail()
		return
	}
	code := randomHex(32)
	s.flows.mu.Lock()
	prune(s.flows.codes, now, func(l loginCode) time.Time { return l.exp })
	s.flows.codes[hashHex(code)] = loginCode{userID: userID, exp: now.Add(loginCodeTTL)}
	s.flows.mu.Unlock()
	dest, _ := url.Parse(site + "/home")
	dq := url.Values{"loginCode": {code}}
	if p.loginClient != "" {
		dq.Set("loginClient", p.loginClient)
	}
	dest.RawQuery = dq.Encode()
	http.Redirect(w, r, dest.String(), http.StatusFound)
}

// exchangeCode is passport-oauth2's getOAuthAccessToken: POST the token URL
// with grant_type, code, redirect_uri, client_id, client_secret and
// code_verifier in the form; the answer's access_token.
func (o OAuthService) exchangeCode(ctx context.Context, code, redirectURI, verifier string) (string, error) {
	form := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {o.ClientID}, "client_secret": {o.ClientSecret}, "code_verifier": {verifier}}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.TokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	res, err := oauthClient.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	var out struct {
		AccessToken string `json:"access_token"`
	}
	data, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK || json.Unmarshal(data, &out) != nil || out.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %s", res.Status)
	}
	return out.AccessToken, nil
}

// handleLoginCodeRedeem is POST /api/v1/loginCode.redeem {code} (8.7+, no
// auth): the code of a finished server-side OAuth flow becomes a resume
// token, once. Unknown, used or expired codes answer 400
// {success:false, error:"error-invalid-code"}.
func (s *Server) handleLoginCodeRedeem(c *call) reply {
	sc := &schema{props: []prop{{name: "code", kind: kString, minLen: 64}}, required: []string{"code"}}
	if msg := sc.validate(c.body); msg != "" {
		return invalidParams(msg)
	}
	code := str(c.body, "code")
	if len(code) > 64 {
		return invalidParams("must NOT have more than 64 characters")
	}
	s.flows.mu.Lock()
	lc, ok := s.flows.codes[hashHex(code)]
	delete(s.flows.codes, hashHex(code))
	s.flows.mu.Unlock()
	if !ok || !c.now.Before(lc.exp) {
		return failure("error-invalid-code")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[lc.userID]
	if u == nil {
		return failure("error-invalid-code")
	}
	tok := randomSecret()
	s.st.pushResume(u, tok, c.now, s.cfg.MaxResumeTokens)
	return success(map[string]any{"loginToken": tok, "userId": u.id})
}

// effective is the service as Rocket.Chat runs it: the built-in WordPress
// provider's config has no merge or field settings.
func (o OAuthService) effective() OAuthService {
	if o.Builtin {
		o.MergeUsers, o.UsernameField, o.EmailField, o.NameField = false, "", "", ""
	}
	return o
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hashHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
