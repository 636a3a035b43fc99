package oauthprovider

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
)

// Handler serves the routes "authorize" (GET), "token" (POST) and
// "identity" (GET) relative to where the caller mounts it (with the mount
// prefix stripped; a leading "/" is ignored). Other paths answer 404, other
// methods 405. Every answer has Cache-Control: no-store.
func (p *Provider) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		var h http.HandlerFunc
		method := http.MethodGet
		switch strings.TrimPrefix(r.URL.Path, "/") {
		case "authorize":
			h = p.authorize
		case "token":
			h, method = p.token, http.MethodPost
		case "identity":
			h = p.identity
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
	})
}

// ---- authorize ----

// pkceRe is RFC 7636's code_verifier / S256 challenge alphabet and length.
var pkceRe = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)

// authorize is the authorization endpoint (RFC 6749 §4.1.1). A wrong
// client_id or redirect_uri gets an error page and no redirect (§4.1.2.1);
// other request errors are reported to the redirect URI. The visitor is
// identified through the identity chain; an unidentified one is sent to
// LoginURL with return_to pointing back here. There is no consent screen:
// the only client is Rocket.Chat, and the code only ever travels to its
// callback.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for _, k := range []string{"client_id", "redirect_uri", "response_type", "state", "code_challenge", "code_challenge_method"} {
		if len(q[k]) > 1 {
			if k == "client_id" || k == "redirect_uri" {
				page(w, http.StatusBadRequest, "Invalid sign-in request: "+k+" is repeated.")
				return
			}
			p.redirectError(w, r, p.callback, q.Get("state"), "invalid_request", k+" is repeated")
			return
		}
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("client_id")), []byte(p.cfg.ClientID)) != 1 {
		page(w, http.StatusBadRequest, "Invalid sign-in request: unknown client_id.")
		return
	}
	redirectURI := q.Get("redirect_uri")
	target := p.callback
	if redirectURI != "" {
		if !p.validCallback(redirectURI) {
			page(w, http.StatusBadRequest, "Invalid sign-in request: redirect_uri is not this Rocket.Chat's callback "+p.callback+
				" (or "+p.modernCallback+").")
			return
		}
		target = redirectURI
	}
	state := q.Get("state")
	if q.Get("response_type") != "code" {
		p.redirectError(w, r, target, state, "unsupported_response_type", "only response_type=code is supported")
		return
	}
	challenge, method := q.Get("code_challenge"), q.Get("code_challenge_method")
	switch {
	case challenge == "" && method != "":
		p.redirectError(w, r, target, state, "invalid_request", "code_challenge_method without code_challenge")
		return
	case challenge != "":
		if method == "" {
			method = "plain"
		}
		if (method != "S256" && method != "plain") || !pkceRe.MatchString(challenge) {
			p.redirectError(w, r, target, state, "invalid_request", "unsupported code_challenge or code_challenge_method")
			return
		}
	}
	id, err := p.cfg.Identity.Identify(r)
	switch {
	case errors.Is(err, identity.ErrNotLoggedIn):
		p.toLogin(w, r)
		return
	case errors.Is(err, identity.ErrSourceUnavailable):
		p.log.Warn("oauth authorize: identity source unavailable", "err", err)
		page(w, http.StatusBadGateway, "The website cannot tell who you are right now. Try again in a moment.")
		return
	case err != nil:
		p.log.Error("oauth authorize: identifying the visitor failed", "err", err)
		page(w, http.StatusInternalServerError, "Something went wrong. Try again in a moment.")
		return
	}
	code := p.seal(kindCode, grant{
		ID: rand.Text(), Exp: p.now().Add(p.cfg.CodeTTL).UnixMilli(), Profile: p.profile(id),
		RedirectURI: redirectURI, Challenge: challenge, Method: method,
	})
	p.log.Info("oauth code issued", "subject", id.Subject)
	redirect(w, r, target, url.Values{"code": {code}}, state)
}

// toLogin sends an unidentified visitor to LoginURL?return_to=<this
// authorize URL>.
func (p *Provider) toLogin(w http.ResponseWriter, r *http.Request) {
	if p.cfg.LoginURL == "" {
		page(w, http.StatusUnauthorized, "You are not logged in on the website. Log in there, then try again.")
		return
	}
	u, err := url.Parse(p.cfg.LoginURL)
	if err != nil {
		page(w, http.StatusInternalServerError, "The login page is misconfigured.")
		return
	}
	lq := u.Query()
	lq.Set("return_to", p.cfg.BaseURL+"/authorize?"+r.URL.RawQuery)
	u.RawQuery = lq.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// redirect sends the browser to target with params and state added to its
// query (RFC 6749 §4.1.2: the state is returned exactly as received).
func redirect(w http.ResponseWriter, r *http.Request, target string, params url.Values, state string) {
	u, err := url.Parse(target)
	if err != nil {
		page(w, http.StatusInternalServerError, "The Rocket.Chat callback is misconfigured.")
		return
	}
	q := u.Query()
	for k, v := range params {
		q[k] = v
	}
	if state != "" {
		q.Set("state", state)
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, target, state, code, desc string) {
	redirect(w, r, target, url.Values{"error": {code}, "error_description": {desc}}, state)
}

// page writes a short plain-text page for a person.
func page(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(msg + "\n"))
}

// ---- token ----

// tokenError is an RFC 6749 §5.2 error answer.
type tokenError struct {
	status int
	code   string
	desc   string
}

// token is the token endpoint (RFC 6749 §4.1.3, §3.2.1): client
// authentication by HTTP Basic (client_secret_basic; id and secret
// form-urlencoded per §2.3.1, plain values accepted too) or by client_id +
// client_secret in the body (client_secret_post), never both; grant_type
// authorization_code; the code's redirect_uri and PKCE verifier checked; the
// code redeemed once. 200 {"access_token","token_type":"Bearer",
// "expires_in"}; errors 400/401/503 {"error","error_description"}.
func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if e := p.tokenExchange(w, r); e != nil {
		if e.status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="rcsso"`)
		}
		writeJSON(w, e.status, map[string]string{"error": e.code, "error_description": e.desc})
	}
}

func (p *Provider) tokenExchange(w http.ResponseWriter, r *http.Request) *tokenError {
	bad := func(code, desc string) *tokenError { return &tokenError{http.StatusBadRequest, code, desc} }
	r.Body = http.MaxBytesReader(w, r.Body, 32<<10)
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/x-www-form-urlencoded") {
		return bad("invalid_request", "the body must be application/x-www-form-urlencoded")
	}
	if err := r.ParseForm(); err != nil {
		return bad("invalid_request", "malformed form body")
	}
	f := r.PostForm
	for k, v := range f {
		if len(v) > 1 {
			return bad("invalid_request", k+" is repeated")
		}
	}
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if u, pw, ok := r.BasicAuth(); ok {
		if secret != "" {
			return bad("invalid_request", "use one client authentication method, not both")
		}
		bu, bp := formUnescape(u), formUnescape(pw)
		if clientID != "" && clientID != bu {
			return bad("invalid_request", "client_id differs from the authenticated client")
		}
		clientID, secret = bu, bp
	}
	if !p.clientOK(clientID, secret) {
		return &tokenError{http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret"}
	}
	if f.Get("grant_type") != "authorization_code" {
		return bad("unsupported_grant_type", "only authorization_code is supported")
	}
	g, err := p.open(kindCode, f.Get("code"))
	if err != nil {
		return bad("invalid_grant", "invalid code")
	}
	if p.expired(g) {
		return bad("invalid_grant", "the code has expired")
	}
	ru := f.Get("redirect_uri")
	if (g.RedirectURI != "" && ru != g.RedirectURI) || (ru != "" && !p.validCallback(ru)) {
		return bad("invalid_grant", "redirect_uri does not match the authorization request")
	}
	verifier := f.Get("code_verifier")
	switch {
	case g.Challenge != "" && !pkceOK(g.Challenge, g.Method, verifier):
		return bad("invalid_grant", "code_verifier does not match the code_challenge")
	case g.Challenge == "" && verifier != "":
		return bad("invalid_grant", "code_verifier given but the authorization request had no code_challenge")
	}
	switch err := p.redeem(r.Context(), g); {
	case errors.Is(err, errCodeUsed):
		p.log.Warn("oauth code replayed", "subject", g.Profile.Subject)
		return bad("invalid_grant", "the code has already been used")
	case errors.Is(err, errTooManyCodes):
		p.log.Warn("oauth token endpoint refusing codes: too many redeemed in the last minute", "limit", p.cfg.MaxPendingCodes)
		return &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", "try again in a minute"}
	case err != nil:
		p.log.Error("oauth token endpoint cannot record the redeemed code", "err", err)
		return &tokenError{http.StatusServiceUnavailable, "temporarily_unavailable", "try again shortly"}
	}
	exp := p.now().Add(p.cfg.AccessTokenTTL)
	at := p.seal(kindAccessToken, grant{ID: rand.Text(), Exp: exp.UnixMilli(), Profile: g.Profile})
	p.log.Info("oauth code redeemed", "subject", g.Profile.Subject)
	writeJSON(w, http.StatusOK, map[string]any{
		"access_token": at, "token_type": "Bearer", "expires_in": int(p.cfg.AccessTokenTTL / time.Second),
	})
	return nil
}

// clientOK compares the client credentials in constant time.
func (p *Provider) clientOK(id, secret string) bool {
	i := sha256.Sum256([]byte(id))
	s := sha256.Sum256([]byte(secret))
	return subtle.ConstantTimeCompare(i[:], p.clientID[:])&subtle.ConstantTimeCompare(s[:], p.secret[:]) == 1
}

// formUnescape undoes RFC 6749 §2.3.1's form encoding of Basic credentials;
// a value that is not valid form encoding is taken as it is.
func formUnescape(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
}

// pkceOK checks a code_verifier against the code's challenge (RFC 7636 §4.6).
func pkceOK(challenge, method, verifier string) bool {
	if !pkceRe.MatchString(verifier) {
		return false
	}
	want := verifier
	if method == "S256" {
		sum := sha256.Sum256([]byte(verifier))
		want = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	return subtle.ConstantTimeCompare([]byte(want), []byte(challenge)) == 1
}

// ---- identity ----

// identity is the identity (userinfo) endpoint Rocket.Chat calls with an
// access token: as the query parameter access_token (Custom OAuth "Token
// sent via: Payload") or an Authorization: Bearer header ("Header"), not
// both (RFC 6750 §2). 200 JSON:
//
//	{"id":"<subject>","sub":"<subject>","username":"<Rocket.Chat username>",
//	 "name":"…","email":"…","email_verified":true,"picture":"…","roles":[…]}
//
// email only when the website vouches for it (then email_verified is
// true); name falls back to the username; picture and roles only when
// known. 400 invalid_request, or 401 with WWW-Authenticate: Bearer
// error="invalid_token" for a missing, forged or expired token.
func (p *Provider) identity(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()["access_token"]
	auth := r.Header.Get("Authorization")
	var tok string
	switch {
	case len(q) > 1 || (len(q) == 1 && auth != ""):
		w.Header().Set("WWW-Authenticate", `Bearer realm="rcsso", error="invalid_request"`)
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "send the access token once"})
		return
	case len(q) == 1:
		tok = q[0]
	case auth != "":
		scheme, value, _ := strings.Cut(auth, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="rcsso", error="invalid_request"`)
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "use Authorization: Bearer"})
			return
		}
		tok = strings.TrimSpace(value)
	default:
		w.Header().Set("WWW-Authenticate", `Bearer realm="rcsso"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_request", "error_description": "no access token"})
		return
	}
	g, err := p.open(kindAccessToken, tok)
	if err == nil && p.expired(g) {
		err = errors.New("expired")
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Bearer realm="rcsso", error="invalid_token"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "invalid or expired access token"})
		return
	}
	writeJSON(w, http.StatusOK, identityJSON(g.Profile))
}

// identityJSON is the identity route's body for pr.
func identityJSON(pr profile) map[string]any {
	name := pr.Name
	if name == "" {
		name = pr.Username
	}
	m := map[string]any{
		"id": pr.Subject, "sub": pr.Subject, "username": pr.Username, "name": name,
		"email_verified": pr.EmailVerified,
	}
	if pr.Email != "" {
		m["email"] = pr.Email
	}
	if pr.Avatar != "" {
		m["picture"] = pr.Avatar
	}
	if pr.HasRoles {
		roles := pr.Roles
		if roles == nil {
			roles = []string{}
		}
		m["roles"] = roles
	}
	return m
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
