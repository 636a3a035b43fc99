// Package oauth2test is an in-process OAuth 2.0 provider for tests of the
// oauth2 identity source: the authorization code grant (RFC 6749 §4.1) with
// PKCE (RFC 7636), single-use codes, client authentication by HTTP Basic or
// in the body, an optional consent page a browser clicks through, and API
// endpoints that answer JSON a test sets (by default GitHub's paths: /user,
// /user/emails, /user/orgs) to requests carrying a token it issued. A test
// can replace any endpoint's answer to play a hostile provider.
package oauth2test

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Paths of the provider's OAuth endpoints (GitHub's).
const (
	AuthorizePath = "/login/oauth/authorize"
	TokenPath     = "/login/oauth/access_token"
)

// codeTTL is how long an authorization code may be exchanged.
const codeTTL = time.Minute

// Provider is a running fake provider. Its methods are safe for concurrent
// use.
type Provider struct {
	// URL is the provider's base URL, http://127.0.0.1:<port>.
	URL string
	// ClientID and ClientSecret are the one client it knows.
	ClientID, ClientSecret string

	mu        sync.Mutex
	consent   bool
	codes     map[string]*grant
	tokens    map[string]*grant
	answers   map[string]any
	handlers  map[string]http.HandlerFunc
	authorize url.Values
	tokenReq  url.Values
	basicAuth bool
	hits      map[string]int
}

type grant struct {
	redirectURI, challenge string
	expires                time.Time
	used                   bool
	token                  string // the access token issued for this code
}

// New starts a provider for the duration of t, with client "rcsso-test",
// auto-approving every authorization request, and a GitHub-like user
// (id 4242, login octo, a verified primary e-mail).
func New(t testing.TB) *Provider {
	p := &Provider{
		ClientID:     "rcsso-test",
		ClientSecret: "rcsso-test-secret",
		codes:        map[string]*grant{},
		tokens:       map[string]*grant{},
		answers:      map[string]any{},
		handlers:     map[string]http.HandlerFunc{},
		hits:         map[string]int{},
	}
	p.SetJSON("/user", map[string]any{"id": 4242, "login": "octo", "name": "Octo Cat", "email": nil,
		"avatar_url": "https://avatars.example.test/u/4242"})
	p.SetJSON("/user/emails", []any{
		map[string]any{"email": "octo@users.example.test", "primary": false, "verified": true, "visibility": nil},
		map[string]any{"email": "octo@example.test", "primary": true, "verified": true, "visibility": "private"},
	})
	p.SetJSON("/user/orgs", []any{map[string]any{"login": "rcsso-devs", "id": 1}, map[string]any{"login": "chat-admins", "id": 2}})
	srv := httptest.NewServer(http.HandlerFunc(p.serveHTTP))
	t.Cleanup(srv.Close)
	p.URL = srv.URL
	return p
}

// AuthURL, TokenURL and UserinfoURL are the provider's endpoints.
func (p *Provider) AuthURL() string     { return p.URL + AuthorizePath }
func (p *Provider) TokenURL() string    { return p.URL + TokenPath }
func (p *Provider) UserinfoURL() string { return p.URL + "/user" }

// Consent makes the authorization endpoint show a page with an Authorize
// button (#authorize) and a Cancel button (#deny) instead of approving at
// once.
func (p *Provider) Consent(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.consent = on
}

// SetJSON makes path answer v as JSON to requests with a valid access
// token (401 without one).
func (p *Provider) SetJSON(path string, v any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.answers[path] = v
	delete(p.handlers, path)
}

// Handle makes path answer with h, whatever the request carries: a hostile
// or broken provider.
func (p *Provider) Handle(path string, h http.HandlerFunc) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.handlers[path] = h
}

// LastAuthorize returns the query of the last authorization request.
func (p *Provider) LastAuthorize() url.Values {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.authorize
}

// LastTokenRequest returns the body of the last token request and whether
// the client authenticated with HTTP Basic.
func (p *Provider) LastTokenRequest() (url.Values, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.tokenReq, p.basicAuth
}

// Hits counts the requests to path.
func (p *Provider) Hits(path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.hits[path]
}

// TokenValid reports whether an access token is (still) valid: a token is
// revoked when its code is presented a second time (RFC 6749 §4.1.2).
func (p *Provider) TokenValid(tok string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.tokens[tok]
	return ok
}

func (p *Provider) serveHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.hits[r.URL.Path]++
	h := p.handlers[r.URL.Path]
	p.mu.Unlock()
	switch {
	case h != nil:
		h(w, r)
	case r.URL.Path == AuthorizePath:
		p.authorizeEndpoint(w, r)
	case r.URL.Path == TokenPath && r.Method == http.MethodPost:
		p.tokenEndpoint(w, r)
	default:
		p.api(w, r)
	}
}

var consentPage = template.Must(template.New("consent").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Authorize {{.Client}}</title></head>
<body><h1>Authorize {{.Client}}</h1><p>{{.Client}} wants to know who you are.</p>
<form method="post">{{range $k, $v := .Params}}<input type="hidden" name="{{$k}}" value="{{index $v 0}}">{{end}}
<button type="submit" name="decision" value="allow" id="authorize">Authorize</button>
<button type="submit" name="decision" value="deny" id="deny">Cancel</button></form></body></html>
`))

// authorizeEndpoint is RFC 6749 §4.1.1–4.1.2: GET shows the consent page
// (or approves at once), POST takes the person's decision.
func (p *Provider) authorizeEndpoint(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	q := r.Form
	p.mu.Lock()
	if r.Method == http.MethodGet {
		p.authorize = r.URL.Query()
	}
	consent := p.consent
	p.mu.Unlock()
	if q.Get("client_id") != p.ClientID {
		http.Error(w, "unknown client", http.StatusBadRequest) // never redirect for a bad client (§4.1.2.1)
		return
	}
	redirect, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || !redirect.IsAbs() {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := func(v url.Values) {
		v.Set("state", q.Get("state"))
		u := *redirect
		u.RawQuery = v.Encode()
		http.Redirect(w, r, u.String(), http.StatusFound)
	}
	switch {
	case q.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case q.Get("code_challenge") == "" || q.Get("code_challenge_method") != "S256":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"PKCE S256 required"}})
		return
	}
	if r.Method == http.MethodGet && consent {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = consentPage.Execute(w, map[string]any{"Client": p.ClientID, "Params": r.URL.Query()})
		return
	}
	if r.Method == http.MethodPost && r.PostForm.Get("decision") != "allow" {
		back(url.Values{"error": {"access_denied"}})
		return
	}
	code := rand.Text()
	p.mu.Lock()
	p.codes[code] = &grant{redirectURI: q.Get("redirect_uri"), challenge: q.Get("code_challenge"), expires: time.Now().Add(codeTTL)}
	p.mu.Unlock()
	back(url.Values{"code": {code}})
}

// tokenEndpoint is RFC 6749 §4.1.3–4.1.4 with RFC 7636 §4.6.
func (p *Provider) tokenEndpoint(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		tokenError(w, http.StatusBadRequest, "invalid_request")
		return
	}
	f := r.PostForm
	id, secret, basic := r.BasicAuth()
	if basic {
		id, _ = url.QueryUnescape(id) // RFC 6749 §2.3.1
		secret, _ = url.QueryUnescape(secret)
	} else {
		id, secret = f.Get("client_id"), f.Get("client_secret")
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.tokenReq, p.basicAuth = f, basic
	switch {
	case id != p.ClientID || subtle.ConstantTimeCompare([]byte(secret), []byte(p.ClientSecret)) != 1:
		tokenError(w, http.StatusUnauthorized, "invalid_client")
		return
	case f.Get("grant_type") != "authorization_code":
		tokenError(w, http.StatusBadRequest, "unsupported_grant_type")
		return
	}
	g := p.codes[f.Get("code")]
	switch {
	case g == nil || time.Now().After(g.expires):
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case g.used:
		delete(p.tokens, g.token) // a code used twice revokes its token
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	case f.Get("redirect_uri") != g.redirectURI:
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	sum := sha256.Sum256([]byte(f.Get("code_verifier")))
	if base64.RawURLEncoding.EncodeToString(sum[:]) != g.challenge {
		tokenError(w, http.StatusBadRequest, "invalid_grant")
		return
	}
	g.used = true
	g.token = rand.Text()
	p.tokens[g.token] = g
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]string{"access_token": g.token, "token_type": "bearer", "scope": "read:user,user:email"})
}

func tokenError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code})
}

// api answers the JSON set for the path to a request with a valid token.
func (p *Provider) api(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	p.mu.Lock()
	_, valid := p.tokens[tok]
	v, found := p.answers[r.URL.Path]
	p.mu.Unlock()
	switch {
	case !found:
		http.NotFound(w, r)
	case !ok || !valid:
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
	default:
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
}
