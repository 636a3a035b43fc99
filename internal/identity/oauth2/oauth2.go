// Package oauth2 is the OAuth 2.0 identity source, for providers that are
// not OpenID Providers: GitHub, GitLab, Discord, Facebook and X have
// presets (presets.go), and any provider with an authorization endpoint, a
// token endpoint and a JSON endpoint that says whose an access token is
// (here: the userinfo URL) can be configured by hand.
//
// rcsso logs the visitor in with the authorization code grant (RFC 6749
// §4.1) protected by PKCE (RFC 7636, S256) and a state that is bound to the
// browser by an AES-GCM sealed cookie and accepted once (store.Store's
// UseOnce, shared by every rcsso instance on the store). It then asks the
// userinfo URL who the person is, with the access token in the
// Authorization header, maps the answer with the shared claim mapping
// (package claims) and starts its own website session, like the local and
// oidc sources. The access token serves these calls only and is never
// stored or logged.
//
// The routes, below /auth/<Name>/:
//
//	GET login?return_to=…     start the code flow (302 to the provider)
//	GET callback?code&state   finish it (303 to return_to, or a small page)
//
// Subjects are "<Name>:<provider user id>": the provider's numeric or
// opaque id, never the login name or e-mail address, which people can
// change. An e-mail address is kept only when the provider says it is
// verified (per preset; see presets.go); otherwise the Rocket.Chat account
// gets a placeholder address (provision.AccountEmail).
//
// Calls to the provider time out (Options.Timeout), are never redirected
// (a 3xx answer fails the login: the access token would follow it), and
// read at most MaxAPIBody bytes per answer. Every failure ends on a small
// page that says what went wrong, in the popup or window the login ran in.
package oauth2

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	xoauth2 "golang.org/x/oauth2"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/identity/flowstate"
	"github.com/rcsso/rcsso/internal/websession"
)

// DefaultTimeout bounds each call to the provider (token, userinfo,
// e-mails, groups) when Options.Timeout is zero.
const DefaultTimeout = 10 * time.Second

const cookiePrefix = "rcsso_oauth2_"

var (
	namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)
	errCode     = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)
)

// Options configures one OAuth 2.0 source. Name, ClientID, RedirectURL,
// Sessions, Once and StateKey are required; AuthURL, TokenURL and
// UserinfoURL too unless Preset supplies them.
type Options struct {
	// Name is the source name: subjects are "<Name>:<id>", routes live
	// under /auth/<Name>/, the state cookie is rcsso_oauth2_<Name>. 1–32
	// characters of [A-Za-z0-9_-], starting with a letter or digit.
	Name string
	// Preset names a known provider (github, gitlab, discord, facebook,
	// x): its endpoints, scopes, client authentication and claim mapping
	// are the defaults of the fields below. Empty: a provider configured
	// by hand.
	Preset string
	// Label is the login button text; default "Log in with <provider>"
	// (the preset's title, else Name).
	Label string
	// AuthURL, TokenURL and UserinfoURL are the provider's authorization
	// endpoint, token endpoint, and the API URL that answers the access
	// token's user as a JSON object (a query such as ?fields=… is kept).
	AuthURL, TokenURL, UserinfoURL string
	// GroupsURL, when set, is an API URL answering a JSON array of the
	// person's groups (organizations, teams, servers): strings, or objects
	// naming the group in GroupsField (a dotted path; default the
	// preset's). A failure of this call fails the login, so that a
	// provider's hiccup never looks like the person left every group.
	GroupsURL, GroupsField string
	// ClientID and ClientSecret are rcsso's client at the provider. An
	// empty secret makes a public client relying on PKCE alone.
	ClientID, ClientSecret string
	// Scopes requested; default the preset's.
	Scopes []string
	// AuthStyle is how the client authenticates at the token endpoint;
	// default the preset's, else auto-detection (header, then body).
	AuthStyle xoauth2.AuthStyle
	// RedirectURL is <public_url>/auth/<Name>/callback, registered at the
	// provider: an absolute http(s) URL whose path ends in "/callback".
	RedirectURL string
	// Mapping maps the userinfo answer; its empty fields take the
	// preset's. Without a preset, Subject must name the provider's stable
	// user id.
	Mapping claims.Mapping
	// Sessions starts rcsso's own sessions.
	Sessions identity.Sessions
	// Once remembers consumed login states until they expire (rcsso's
	// store), so every instance refuses a replayed callback.
	Once interface {
		UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error)
	}
	// StateKey is the 32-byte AES-256-GCM key sealing the state cookie.
	StateKey []byte
	// SecureCookies marks the state cookie Secure (public_url is https).
	SecureCookies bool
	// SafeReturnTo is the caller's open-redirect filter: the URL to use,
	// or "" to reject it; its result is written to Location as it is. Nil
	// rejects every return_to.
	SafeReturnTo func(string) string
	// Timeout bounds each call to the provider; default DefaultTimeout.
	Timeout time.Duration
	// HTTPClient talks to the provider (a copy is used, with Timeout when
	// it has none); default a client with Timeout. Redirects are never
	// followed, whatever its CheckRedirect.
	HTTPClient *http.Client
	// Logger receives one line per completed or failed login, never
	// tokens, codes or return_to values; default slog.Default().
	Logger *slog.Logger
	// Now is the clock; default time.Now.
	Now func() time.Time
}

// Source is an OAuth 2.0 identity source. It implements identity.Source and
// identity.Interactive, and is safe for concurrent use.
type Source struct {
	cfg        Options
	preset     *preset
	title      string // the provider's name on pages
	client     *http.Client
	log        *slog.Logger
	now        func() time.Time
	oauth      xoauth2.Config
	authOpts   []xoauth2.AuthCodeOption
	headers    map[string]string
	codec      *stateCodec
	cookieName string
	cookiePath string
}

var _ identity.Interactive = (*Source)(nil)

// New validates cfg and fills in the preset's defaults. It does not contact
// the provider (OAuth 2.0 has no discovery). Errors name the source and
// what is wrong.
func New(cfg Options) (*Source, error) {
	if !namePattern.MatchString(cfg.Name) {
		return nil, fmt.Errorf("oauth2 source %q: name must be 1-32 characters of [A-Za-z0-9_-]", cfg.Name)
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("oauth2 source %q: %s", cfg.Name, fmt.Sprintf(format, a...))
	}
	s := &Source{title: cfg.Name}
	if cfg.Preset != "" {
		p, ok := presets[cfg.Preset]
		if !ok {
			return nil, fail("unknown preset %q: use %s", cfg.Preset, presetNames())
		}
		if cfg.Mapping.Subject != "" && cfg.Mapping.Subject != p.mapping.Subject {
			return nil, fail("preset %s: the subject is the provider's user id (%s); leave claims.subject out", cfg.Preset, p.mapping.Subject)
		}
		s.preset, s.title = &p, p.title
		def := func(dst *string, v string) {
			if *dst == "" {
				*dst = v
			}
		}
		def(&cfg.AuthURL, p.authURL)
		def(&cfg.TokenURL, p.tokenURL)
		def(&cfg.UserinfoURL, p.userinfoURL)
		if cfg.GroupsURL != "" {
			def(&cfg.GroupsField, p.groupsField)
		}
		if len(cfg.Scopes) == 0 {
			cfg.Scopes = p.scopes
		}
		if cfg.AuthStyle == xoauth2.AuthStyleAutoDetect {
			cfg.AuthStyle = p.authStyle
		}
		cfg.Mapping = mergeMapping(cfg.Mapping, p.mapping)
		s.headers = p.headers
		for k, v := range p.authParams {
			s.authOpts = append(s.authOpts, xoauth2.SetAuthURLParam(k, v))
		}
	}
	switch {
	case cfg.ClientID == "":
		return nil, fail("client id is empty")
	case cfg.Sessions == nil:
		return nil, fail("no session manager")
	case cfg.Once == nil:
		return nil, fail("no store for single-use login states")
	case cfg.Mapping.Subject == "":
		return nil, fail("no claim names the provider's user id (claims.subject)")
	case cfg.GroupsURL != "" && cfg.GroupsField == "":
		return nil, fail("groups URL set without the field naming a group (groups_field)")
	}
	for _, u := range [][2]string{{"authorization URL", cfg.AuthURL}, {"token URL", cfg.TokenURL}, {"userinfo URL", cfg.UserinfoURL}, {"groups URL", cfg.GroupsURL}} {
		if u[1] == "" && u[0] == "groups URL" {
			continue
		}
		if err := CheckURL(u[1]); err != nil {
			return nil, fail("%s: %v", u[0], err)
		}
	}
	if cfg.Preset == "github" && !strings.HasSuffix(strings.SplitN(cfg.UserinfoURL, "?", 2)[0], "/user") {
		return nil, fail("preset github: the userinfo URL must end in /user (its /emails gives the verified address)")
	}
	if cfg.GroupsURL != "" {
		cfg.Mapping.Groups = claimGroups
	}
	ru, err := url.Parse(cfg.RedirectURL)
	if err != nil || (ru.Scheme != "https" && ru.Scheme != "http") || ru.Host == "" || !strings.HasSuffix(ru.Path, "/callback") {
		return nil, fail("redirect URL %q must be an absolute http(s) URL ending in /callback", cfg.RedirectURL)
	}
	if s.codec, err = newStateCodec(cfg.StateKey, cfg.Name); err != nil {
		return nil, fail("%v", err)
	}
	if cfg.Label == "" {
		cfg.Label = "Log in with " + s.title
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.ClientSecret == "" {
		cfg.AuthStyle = xoauth2.AuthStyleInParams // a public client sends client_id in the body
	}
	s.cfg = cfg
	s.cookieName = cookiePrefix + cfg.Name
	s.cookiePath = strings.TrimSuffix(ru.Path, "callback")
	c := http.Client{Timeout: cfg.Timeout}
	if cfg.HTTPClient != nil {
		c = *cfg.HTTPClient
		if c.Timeout == 0 {
			c.Timeout = cfg.Timeout
		}
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.client = &c
	s.log = cfg.Logger
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("source", cfg.Name)
	s.now = cfg.Now
	if s.now == nil {
		s.now = time.Now
	}
	s.oauth = xoauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Endpoint:     xoauth2.Endpoint{AuthURL: cfg.AuthURL, TokenURL: cfg.TokenURL, AuthStyle: cfg.AuthStyle},
		RedirectURL:  cfg.RedirectURL,
		Scopes:       cfg.Scopes,
	}
	return s, nil
}

// CheckURL accepts an absolute http(s) URL without credentials or a
// fragment (a query is kept: ?fields=… selects what Facebook and X answer).
func CheckURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("must be an absolute http(s) URL (got %q)", s)
	}
	if u.User != nil || u.Fragment != "" {
		return fmt.Errorf("must not contain credentials or a fragment (got %q)", s)
	}
	return nil
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.cfg.Name }

// LoginLabel implements identity.Interactive.
func (s *Source) LoginLabel() string { return s.cfg.Label }

// Identify implements identity.Source: the visitor's rcsso session, if this
// source created it; identity.ErrNotLoggedIn otherwise, or a store error.
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	return websession.IdentifyAs(s.cfg.Sessions, r, s.cfg.Name)
}

// Handler implements identity.Interactive: GET login and GET callback,
// relative to /auth/<Name>/ (the caller strips the prefix). Other paths get
// 404, other methods (HEAD included: these routes have side effects) 405.
// Every response carries Cache-Control: no-store.
func (s *Source) Handler() http.Handler { return http.HandlerFunc(s.serveHTTP) }

func (s *Source) serveHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	var h http.HandlerFunc
	switch strings.TrimPrefix(r.URL.Path, "/") {
	case "login":
		h = s.login
	case "callback":
		h = s.callback
	default:
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	h(w, r)
}

// login starts the authorization code grant (RFC 6749 §4.1.1) with PKCE
// S256 (RFC 7636 §4.1–4.3) and a random state, both kept in the sealed
// state cookie.
func (s *Source) login(w http.ResponseWriter, r *http.Request) {
	st := loginState{
		State:    rand.Text(),
		Verifier: xoauth2.GenerateVerifier(),
		ReturnTo: s.safeReturnTo(r.URL.Query().Get("return_to")),
		IssuedAt: s.now().Unix(),
	}
	v, err := s.codec.encode(st)
	if err != nil {
		s.log.Error("oauth2: sealing login state failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start the login. Please try again later.")
		return
	}
	http.SetCookie(w, s.stateCookie(v, int(StateTTL/time.Second)))
	opts := append([]xoauth2.AuthCodeOption{xoauth2.S256ChallengeOption(st.Verifier)}, s.authOpts...)
	http.Redirect(w, r, s.oauth.AuthCodeURL(st.State, opts...), http.StatusFound)
}

// callback handles the authorization response (RFC 6749 §4.1.2), the token
// request (§4.1.3) and the userinfo call, then starts the session.
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
		s.log.Warn("oauth2: login refused by the provider", "error", e)
		status := http.StatusBadGateway
		if e == "access_denied" {
			status = http.StatusBadRequest
		}
		s.page(w, status, "Login failed", s.title+" did not log you in ("+e+"). "+retry)
		return
	}
	if cerr != nil {
		s.log.Warn("oauth2: callback without state cookie")
		s.page(w, http.StatusBadRequest, "Login expired", "This login was not started in this browser, or it took too long. "+retry)
		return
	}
	now := s.now()
	st, err := s.codec.decode(c.Value, now)
	if err != nil {
		s.log.Warn("oauth2: bad state cookie", "err", err)
		s.page(w, http.StatusBadRequest, "Login expired", "This login was not started in this browser, or it took too long. "+retry)
		return
	}
	if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(st.State)) != 1 {
		s.log.Warn("oauth2: state parameter does not match the state cookie")
		s.page(w, http.StatusBadRequest, "Login failed", "The login response does not belong to this browser's login. "+retry)
		return
	}
	key := "oauth2:" + s.cfg.Name + ":state:" + st.State
	if first, err := s.cfg.Once.UseOnce(r.Context(), key, time.Unix(st.IssuedAt, 0).Add(StateTTL)); err != nil {
		s.log.Error("oauth2: recording the login state", "err", err)
		s.page(w, http.StatusServiceUnavailable, "Login failed", "rcsso cannot record this login right now. "+retry)
		return
	} else if !first {
		s.log.Warn("oauth2: login state replayed")
		s.page(w, http.StatusBadRequest, "Login failed", "This login response was already used. "+retry)
		return
	}
	code := q.Get("code")
	if code == "" {
		s.log.Warn("oauth2: callback without code")
		s.page(w, http.StatusBadRequest, "Login failed", "The login response has no authorization code. "+retry)
		return
	}

	ctx := context.WithValue(r.Context(), xoauth2.HTTPClient, s.client)
	tok, err := s.oauth.Exchange(ctx, code, xoauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *xoauth2.RetrieveError
		if errors.As(err, &re) {
			s.log.Error("oauth2: token request refused", "status", re.Response.StatusCode, "error", safeCode(re.ErrorCode))
		} else {
			s.log.Error("oauth2: token request failed", "err", err)
		}
		s.page(w, http.StatusBadGateway, "Login failed", "rcsso could not complete the login with "+s.title+". "+retry)
		return
	}
	if t := tok.TokenType; t != "" && !strings.EqualFold(t, "bearer") {
		s.log.Error("oauth2: token type is not bearer", "token_type", safeCode(t))
		s.page(w, http.StatusBadGateway, "Login failed", s.title+" issued a kind of access token rcsso cannot use. "+retry)
		return
	}
	id, err := s.identity(ctx, tok.AccessToken)
	if err != nil {
		s.failPage(w, err, retry)
		return
	}
	if !id.EmailVerified {
		id.Email = "" // sessions only keep addresses the provider vouches for
	}
	if err := s.cfg.Sessions.Start(r.Context(), w, id); err != nil {
		s.log.Error("oauth2: starting session failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start your session. Please try again later.")
		return
	}
	s.log.Info("oauth2: login", "subject", id.Subject)
	if rt := s.safeReturnTo(st.ReturnTo); rt != "" { // filtered again: the cookie may predate a filter change
		w.Header().Set("Location", rt)
		w.WriteHeader(http.StatusSeeOther)
		return
	}
	s.page(w, http.StatusOK, "Logged in", "You are logged in, you can close this window.")
}

// Failures after the token request, for failPage.
var (
	errProfile = errors.New("oauth2: userinfo call failed")
	errGroups  = errors.New("oauth2: groups call failed")
)

// identity asks the provider who the access token's user is and maps the
// answer. Errors wrap errProfile or errGroups (with the cause), or
// claims.ErrMissingSubject.
func (s *Source) identity(ctx context.Context, token string) (identity.Identity, error) {
	v, err := s.getJSON(ctx, s.cfg.UserinfoURL, token)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: %w", errProfile, err)
	}
	c, err := s.claimsFrom(v)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: %w", errProfile, err)
	}
	if p := s.preset; p != nil && p.extra != nil {
		p.extra(ctx, s, token, c)
	}
	if s.cfg.GroupsURL != "" {
		gv, err := s.getJSON(ctx, s.cfg.GroupsURL, token)
		if err == nil {
			c[claimGroups], err = groupNames(gv, s.cfg.GroupsField)
		}
		if err != nil {
			return identity.Identity{}, fmt.Errorf("%w: %w", errGroups, err)
		}
	}
	return s.cfg.Mapping.Map(s.cfg.Name, c)
}

// claimsFrom turns a decoded userinfo answer into claims: it must be a
// JSON object (errNotJSON); rcsso:* members are dropped, then the preset
// derives its own (verified e-mail, avatar URL).
func (s *Source) claimsFrom(v any) (map[string]any, error) {
	c, err := userinfoObject(v)
	if err != nil {
		return nil, err
	}
	if s.preset != nil && s.preset.derive != nil {
		s.preset.derive(c)
	}
	return c, nil
}

// failPage logs a failure of identity and shows what went wrong.
func (s *Source) failPage(w http.ResponseWriter, err error, retry string) {
	s.log.Error("oauth2: login failed", "err", err)
	var se *statusError
	switch {
	case errors.Is(err, claims.ErrMissingSubject):
		s.page(w, http.StatusBadGateway, "Login failed", s.title+" did not send a usable user id. "+retry)
	case errors.Is(err, errGroups):
		s.page(w, http.StatusBadGateway, "Login failed", "rcsso could not read your groups from "+s.title+". "+retry)
	case errors.As(err, &se) && se.Status >= 500:
		s.page(w, http.StatusBadGateway, "Login failed", fmt.Sprintf("%s had a problem answering rcsso (error %d). Please try again later.", s.title, se.Status))
	case errors.As(err, &se):
		s.page(w, http.StatusBadGateway, "Login failed", fmt.Sprintf("%s refused rcsso's request for your profile (error %d). %s", s.title, se.Status, retry))
	case timedOut(err):
		s.page(w, http.StatusGatewayTimeout, "Login failed", s.title+" did not answer in time. Please try again later.")
	default:
		s.page(w, http.StatusBadGateway, "Login failed", "rcsso could not read your profile from "+s.title+". "+retry)
	}
}

// timedOut reports whether err is a timeout (the client's Timeout or the
// request's deadline).
func timedOut(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout())
}

// safeCode keeps a provider's error or token type printable and short for
// logs.
func safeCode(s string) string {
	if errCode.MatchString(s) {
		return s
	}
	return "(invalid)"
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
