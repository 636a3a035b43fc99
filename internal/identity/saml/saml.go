// Package saml is the SAML 2.0 identity source: rcsso is a service provider
// (SP) of one identity provider (IdP) in the Web Browser SSO profile
// (saml-profiles-2.0-os §4.1), built on github.com/crewjam/saml, and then
// keeps its own websession.Manager session, exactly like the local and OIDC
// sources. It also takes the IdP's single logout (§4.4).
//
// The routes, below /auth/<Name>/:
//
//	GET  metadata            the SP metadata (entity ID, ACS, SLO, certificate)
//	GET  login?return_to=…   start an SP-initiated login: an AuthnRequest with
//	                         the HTTP-Redirect binding, signed (302 to the IdP)
//	POST acs                 the IdP's Response (HTTP-POST binding): 303 to
//	                         return_to, or a small page
//	GET  slo, POST slo       the IdP's LogoutRequest (HTTP-Redirect, HTTP-POST,
//	                         or SOAP from the IdP's server): ends the sessions
//	                         and answers with a signed LogoutResponse
//
// What a Response must be to start a session (crewjam/saml checks most of
// it; see its ServiceProvider docs): well-formed XML within the bounds of
// maxACSBody, no DTD; every assertion covered by a valid signature of a
// certificate in the IdP's metadata (on the assertion or on the Response:
// saml-profiles §4.1.3.5), read only from what the signature covers (no
// signature wrapping), not SHA-1; issuer the IdP's entity ID; Destination
// and the bearer confirmation's Recipient this ACS; the audience this SP's
// entity ID; within NotBefore / NotOnOrAfter (3 min of clock skew);
// InResponseTo the AuthnRequest this browser started (its ID travels in a
// sealed cookie), or absent for an IdP-initiated login, which is refused
// unless Options.AllowIDPInitiated; an assertion ID never accepted before
// by any rcsso instance on the store (store.Store's UseOnce); no unknown
// Conditions. The HTTP-Artifact and HTTP-POST-SimpleSign bindings are
// refused (neither is advertised).
//
// The subject is "<Name>:<NameID>" by default (claims.subject: NameID), or
// an attribute's value; a transient NameID, which changes at every login,
// is refused as a subject. Attributes are looked up by Name and by
// FriendlyName through the shared claim mapping (package claims).
//
// A LogoutRequest ends every rcsso session of the subject its NameID names
// (when the subject is the NameID) and of the browser that brings it, then
// calls Options.OnLogout; unsigned or replayed requests are refused without
// a LogoutResponse. rcsso does not start SAML logouts itself.
//
// The login state cookie is one per browser and source: two logins started
// in parallel in one browser leave only the later one able to finish. It
// is SameSite=None (so that the IdP's cross-site POST carries it) when
// cookies are Secure, and Lax otherwise: with an http public_url only an
// IdP on the same site as rcsso can complete an SP-initiated login.
package saml

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/identity/flowstate"
	"github.com/rcsso/rcsso/internal/websession"
)

// NameIDClaim is the claim name under which the assertion's NameID is
// offered to the claim mapping (the default subject). It replaces an
// attribute of the same name.
const NameIDClaim = "NameID"

// Limits and defaults.
const (
	cookiePrefix = "rcsso_saml_"
	// maxACSBody bounds an ACS POST body (bytes). A Response with 150
	// groups (where Microsoft Entra ID stops sending them) is about 20 KB,
	// encrypted and base64 about 35 KB; parsing and canonicalising XML
	// costs about 0.1 ms of CPU and 30 bytes of garbage per byte, and
	// whoever posts here need not have a valid signature.
	maxACSBody = 256 << 10
	// maxSLOBody bounds a POSTed LogoutRequest (bytes), SOAP or form.
	maxSLOBody = 256 << 10
	// maxInflated bounds an HTTP-Redirect message once inflated (bytes), as
	// crewjam/saml does.
	maxInflated = 1 << 20
	// maxRelayState bounds a RelayState kept or echoed (bytes).
	maxRelayState = 2048
	// DefaultMetadataRefresh is how often the IdP metadata is read again.
	DefaultMetadataRefresh = time.Hour
	// metadataRetry is the least time between two readings of the IdP
	// metadata after a failed one, or after a signature that did not
	// verify (the IdP may have rotated its key).
	metadataRetry  = time.Minute
	defaultTimeout = 15 * time.Second
)

var namePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$`)

// Errors of a login response (the ACS), each with its page.
var (
	errBinding     = errors.New("saml: only the HTTP-POST binding is accepted at the ACS (no artifact, no SimpleSign)")
	errNoResponse  = errors.New("saml: the request carries no single SAMLResponse")
	errUnsolicited = errors.New("saml: IdP-initiated login refused (allow_idp_initiated is off), or the login state cookie did not come back")
	errTransient   = errors.New("saml: the NameID is transient (or missing), so it cannot be the subject: ask the IdP for a persistent NameID or set claims.subject to a stable attribute")
	errStore       = errors.New("saml: recording the assertion as used failed")
	errBusy        = errors.New("saml: too many SAML messages being checked; the request gave up waiting")
)

// Once is store.Store's single-use record, as this source uses it.
type Once interface {
	UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error)
}

// Options configures one SAML source. Name, BaseURL, the IdP metadata
// (IDPMetadataURL or IDPMetadataFile), Key, Certificate, Sessions, Once
// and StateKey are required.
type Options struct {
	// Name is the source name: subjects are "<Name>:<id>", routes live
	// under /auth/<Name>/, the state cookie is rcsso_saml_<Name>. 1–32
	// characters of [A-Za-z0-9_-], starting with a letter or digit.
	Name string
	// Label is the login button text; default "Log in with <Name>".
	Label string
	// BaseURL is rcsso's public_url without a trailing slash: the ACS is
	// <BaseURL>/auth/<Name>/acs, single logout <BaseURL>/auth/<Name>/slo,
	// the metadata <BaseURL>/auth/<Name>/metadata.
	BaseURL string
	// EntityID is the SP's entity ID (the audience the IdP must name);
	// default the metadata URL.
	EntityID string
	// IDPMetadataURL (https, or http on a loopback address) or
	// IDPMetadataFile holds the IdP's metadata: its entity ID, its HTTP-
	// Redirect SingleSignOnService, its signing certificates, its
	// SingleLogoutService. It is read in New and again every
	// MetadataRefresh (in the background of a request; a failed reading
	// keeps the previous metadata), and at most once a minute after a
	// signature did not verify.
	IDPMetadataURL, IDPMetadataFile string
	// MetadataCertificates, when set, are the certificates the IdP
	// metadata must be signed with (an enveloped signature on its root).
	MetadataCertificates []*x509.Certificate
	// MetadataRefresh; default DefaultMetadataRefresh.
	MetadataRefresh time.Duration
	// Key (RSA, 2048 bits or more) and Certificate are the SP's: it signs
	// AuthnRequests and LogoutResponses with them (RSA-SHA256) and
	// decrypts encrypted assertions; the metadata publishes Certificate.
	Key         *rsa.PrivateKey
	Certificate *x509.Certificate
	// NameIDFormat asked for in AuthnRequests; default persistent.
	NameIDFormat crewsaml.NameIDFormat
	// AllowIDPInitiated accepts responses no AuthnRequest asked for (no
	// InResponseTo). Off by default: such a login cannot be tied to the
	// browser, so anyone holding a fresh response for their own account
	// can log a victim's browser in as themselves.
	AllowIDPInitiated bool
	// Mapping maps attributes (by Name and FriendlyName) and the NameID
	// (NameIDClaim). Defaults differ from OIDC's: subject NameID, username
	// uid, name displayName, email mail; groups, email_verified and
	// avatar keep the shared defaults.
	Mapping claims.Mapping
	// Sessions starts and ends rcsso's own sessions.
	Sessions identity.Sessions
	// Once records used assertion IDs and LogoutRequest IDs, so that every
	// rcsso instance on the store refuses a replay (keys
	// "saml:<Name>:<base64url(sha256(id))>").
	Once Once
	// StateKey is the 32-byte AES-256-GCM key sealing the state cookie.
	StateKey []byte
	// SecureCookies marks the state cookie Secure and SameSite=None
	// (public_url is https).
	SecureCookies bool
	// SafeReturnTo is the caller's open-redirect filter (see the oidc
	// source): the return_to of login and the RelayState of an
	// IdP-initiated login go through it. Nil rejects every return_to.
	SafeReturnTo func(string) string
	// OnLogout is called after rcsso ended a subject's sessions because of
	// the IdP's LogoutRequest, to end the Rocket.Chat session too.
	OnLogout func(ctx context.Context, subject string) error
	// HTTPClient reads IDPMetadataURL; default a client with a 15 s
	// timeout that follows redirects only to https (or loopback http).
	HTTPClient *http.Client
	// Logger receives one line per failed or completed login or logout,
	// never a SAML message, an attribute value or a return_to; default
	// slog.Default().
	Logger *slog.Logger
	// Clock is the time source for assertions, metadata and state (nil:
	// the real clock).
	Clock *dsig.Clock
}

// Source is a SAML identity source. It implements identity.Source and
// identity.Interactive, and is safe for concurrent use.
type Source struct {
	cfg         Options
	log         *slog.Logger
	mapping     claims.Mapping
	codec       *stateCodec
	cookieName  string
	cookiePath  string
	acsURL      url.URL
	sloURL      url.URL
	metadataURL url.URL
	meta        metadataSource
	mux         *http.ServeMux

	// slots bounds the SAML messages checked at once (parsing a message
	// of maxACSBody takes tens of milliseconds and megabytes): anyone may
	// post one, signed or not.
	slots chan struct{}

	sp          atomic.Pointer[crewsaml.ServiceProvider]
	loadedAt    atomic.Int64 // Unix ns of the last reading, failed or not
	nextLoad    atomic.Int64 // Unix ns
	refreshing  atomic.Bool
	refreshDone chan struct{} // tests: receives after each background reading, when set
}

var _ identity.Interactive = (*Source)(nil)

// New validates cfg and reads the IdP metadata with ctx. Errors name the
// source and say what is wrong: a field, an unreadable or unusable
// metadata document.
func New(ctx context.Context, cfg Options) (*Source, error) {
	if !namePattern.MatchString(cfg.Name) {
		return nil, fmt.Errorf("saml source %q: name must be 1-32 characters of [A-Za-z0-9_-]", cfg.Name)
	}
	fail := func(format string, a ...any) error {
		return fmt.Errorf("saml source %q: %s", cfg.Name, fmt.Sprintf(format, a...))
	}
	base, err := url.Parse(cfg.BaseURL)
	switch {
	case err != nil || (base.Scheme != "https" && base.Scheme != "http") || base.Host == "":
		return nil, fail("base URL %q is not an absolute http(s) URL", cfg.BaseURL)
	case (cfg.IDPMetadataURL == "") == (cfg.IDPMetadataFile == ""):
		return nil, fail("give exactly one of the IdP metadata URL and file")
	case cfg.Key == nil || cfg.Certificate == nil:
		return nil, fail("no SP key and certificate")
	case cfg.Key.N.BitLen() < 2048:
		return nil, fail("the SP key has %d bits; use an RSA key of 2048 bits or more", cfg.Key.N.BitLen())
	case !cfg.Key.PublicKey.Equal(cfg.Certificate.PublicKey):
		return nil, fail("the SP certificate is not the SP key's")
	case cfg.Sessions == nil:
		return nil, fail("no session manager")
	case cfg.Once == nil:
		return nil, fail("no single-use store")
	}
	codec, err := newStateCodec(cfg.StateKey, cfg.Name)
	if err != nil {
		return nil, fail("%v", err)
	}
	if cfg.Label == "" {
		cfg.Label = "Log in with " + cfg.Name
	}
	if cfg.NameIDFormat == "" {
		cfg.NameIDFormat = crewsaml.PersistentNameIDFormat
	}
	if cfg.MetadataRefresh <= 0 {
		cfg.MetadataRefresh = DefaultMetadataRefresh
	}
	prefix := strings.TrimRight(base.String(), "/") + "/auth/" + cfg.Name + "/"
	s := &Source{cfg: cfg, log: cfg.Logger, codec: codec, cookieName: cookiePrefix + cfg.Name, mapping: samlMapping(cfg.Mapping),
		slots: make(chan struct{}, max(2, runtime.GOMAXPROCS(0)))}
	for u, suffix := range map[*url.URL]string{&s.acsURL: "acs", &s.sloURL: "slo", &s.metadataURL: "metadata"} {
		p, _ := url.Parse(prefix + suffix)
		*u = *p
	}
	s.cookiePath = strings.TrimSuffix(s.acsURL.Path, "acs")
	if s.cfg.EntityID == "" {
		s.cfg.EntityID = s.metadataURL.String()
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.log = s.log.With("source", cfg.Name)
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: defaultTimeout, CheckRedirect: checkMetadataRedirect}
	}
	s.meta = metadataSource{url: cfg.IDPMetadataURL, file: cfg.IDPMetadataFile, client: client, certs: cfg.MetadataCertificates}
	md, err := s.meta.load(ctx)
	if err != nil {
		return nil, fail("%v", err)
	}
	s.install(md)

	s.mux = http.NewServeMux()
	s.mux.HandleFunc("GET /metadata", s.metadata)
	s.mux.HandleFunc("GET /login", s.login)
	s.mux.HandleFunc("POST /acs", s.acs)
	s.mux.HandleFunc("GET /slo", s.slo)
	s.mux.HandleFunc("POST /slo", s.slo)
	return s, nil
}

// samlMapping fills the SAML defaults into m (see Options.Mapping).
func samlMapping(m claims.Mapping) claims.Mapping {
	for field, def := range map[*string]string{&m.Subject: NameIDClaim, &m.Username: "uid", &m.Name: "displayName", &m.Email: "mail"} {
		if *field == "" {
			*field = def
		}
	}
	return m
}

func (s *Source) now() time.Time { return s.cfg.Clock.Now() }

// install makes md the IdP metadata in use.
func (s *Source) install(md *crewsaml.EntityDescriptor) {
	now := s.now()
	s.sp.Store(&crewsaml.ServiceProvider{
		EntityID:                         s.cfg.EntityID,
		Key:                              s.cfg.Key,
		Certificate:                      s.cfg.Certificate,
		MetadataURL:                      s.metadataURL,
		AcsURL:                           s.acsURL,
		SloURL:                           s.sloURL,
		IDPMetadata:                      md,
		AuthnNameIDFormat:                s.cfg.NameIDFormat,
		SignatureMethod:                  dsig.RSASHA256SignatureMethod,
		LogoutBindings:                   []string{crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding, crewsaml.SOAPBinding},
		AssertionConsumerServiceBindings: []string{crewsaml.HTTPPostBinding},
		RejectUnknownConditions:          true,
		RejectSHA1Signatures:             true,
		Clock:                            s.cfg.Clock,
	})
	s.loadedAt.Store(now.UnixNano())
	s.nextLoad.Store(now.Add(s.cfg.MetadataRefresh).UnixNano())
}

// serviceProvider returns a copy of the service provider in use (the
// caller may set its per-request fields), first starting a background
// reading of the IdP metadata when one is due.
func (s *Source) serviceProvider() crewsaml.ServiceProvider {
	if s.now().UnixNano() >= s.nextLoad.Load() && s.refreshing.CompareAndSwap(false, true) {
		go func() {
			defer s.refreshing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), defaultTimeout)
			defer cancel()
			_ = s.Refresh(ctx)
			if s.refreshDone != nil {
				s.refreshDone <- struct{}{}
			}
		}()
	}
	return *s.sp.Load()
}

// Refresh reads the IdP metadata now and, when it is usable, puts it in
// use; otherwise the previous metadata stays, the error is logged and
// returned, and the next reading is due in a minute.
func (s *Source) Refresh(ctx context.Context) error {
	md, err := s.meta.load(ctx)
	if err != nil {
		now := s.now()
		s.loadedAt.Store(now.UnixNano())
		s.nextLoad.Store(now.Add(metadataRetry).UnixNano())
		s.log.Warn("saml: reading the IdP metadata failed; keeping the previous one", "err", err)
		return err
	}
	s.install(md)
	return nil
}

// refreshSoon makes the next reading of the IdP metadata due a minute after
// the last one (a signature did not verify: the IdP may have a new key).
func (s *Source) refreshSoon() {
	if at := time.Unix(0, s.loadedAt.Load()).Add(metadataRetry).UnixNano(); at < s.nextLoad.Load() {
		s.nextLoad.Store(at)
	}
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.cfg.Name }

// LoginLabel implements identity.Interactive.
func (s *Source) LoginLabel() string { return s.cfg.Label }

// EntityID is the SP's entity ID.
func (s *Source) EntityID() string { return s.cfg.EntityID }

// Identify implements identity.Source: the visitor's rcsso session, if this
// source created it; identity.ErrNotLoggedIn otherwise, or a store error.
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	return websession.IdentifyAs(s.cfg.Sessions, r, s.cfg.Name)
}

// Handler implements identity.Interactive. It serves metadata, login, acs
// and slo relative to /auth/<Name>/; the caller strips that prefix, with or
// without its trailing slash. Other paths get 404, other methods 405 (HEAD
// only on metadata: the other routes have side effects). Every response
// carries Cache-Control: no-store.
func (s *Source) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		path := "/" + strings.TrimPrefix(r.URL.Path, "/")
		if r.Method == http.MethodHead && path != "/metadata" {
			w.Header().Set("Allow", http.MethodGet)
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		r2 := *r
		u := *r.URL
		u.Path, u.RawPath = path, ""
		r2.URL = &u
		s.mux.ServeHTTP(w, &r2)
	})
}

// metadata serves the SP metadata (saml-metadata-2.0-os §2.4.4): the
// entity ID, the ACS (HTTP-POST), single logout (HTTP-Redirect, HTTP-POST,
// SOAP), the certificate for signing and encryption, the NameID format,
// AuthnRequestsSigned and WantAssertionsSigned.
func (s *Source) metadata(w http.ResponseWriter, _ *http.Request) {
	sp := s.serviceProvider()
	b, err := xml.MarshalIndent(sp.Metadata(), "", "  ")
	if err != nil {
		s.log.Error("saml: writing the SP metadata failed", "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/samlmetadata+xml")
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(b)
}

// login starts an SP-initiated login (saml-profiles §4.1.3.3): a signed
// AuthnRequest with the HTTP-Redirect binding, asking for the response with
// HTTP-POST; its ID, the RelayState and the return_to stay in the sealed
// state cookie.
func (s *Source) login(w http.ResponseWriter, r *http.Request) {
	sp := s.serviceProvider()
	req, err := sp.MakeAuthenticationRequest(sp.GetSSOBindingLocation(crewsaml.HTTPRedirectBinding), crewsaml.HTTPRedirectBinding, crewsaml.HTTPPostBinding)
	if err != nil {
		s.log.Error("saml: making the AuthnRequest failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start the login. Please try again later.")
		return
	}
	st := loginState{State: rand.Text(), RequestID: req.ID, ReturnTo: s.safeReturnTo(r.URL.Query().Get("return_to")), IssuedAt: s.now().Unix()}
	v, err := s.codec.encode(st)
	if err != nil {
		s.log.Error("saml: sealing login state failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start the login. Please try again later.")
		return
	}
	u, err := req.Redirect(st.State, &sp)
	if err != nil {
		s.log.Error("saml: signing the AuthnRequest failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start the login. Please try again later.")
		return
	}
	http.SetCookie(w, s.stateCookie(v, int(StateTTL/time.Second)))
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// acs is the assertion consumer service (saml-profiles §4.1.4): it checks
// the Response (Consume), starts the session and sends the browser to the
// return_to of the login (SP-initiated) or to the RelayState, if it passes
// SafeReturnTo (IdP-initiated).
func (s *Source) acs(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	const retry = "Please close this window and start the login again."
	r.Body = http.MaxBytesReader(w, r.Body, maxACSBody)
	if err := r.ParseForm(); err != nil {
		s.log.Warn("saml: unreadable ACS request", "err", err)
		status := http.StatusBadRequest
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			status = http.StatusRequestEntityTooLarge
		}
		s.page(w, status, "Login failed", "The login response could not be read. "+retry)
		return
	}
	relay := r.PostForm.Get("RelayState")
	var st *loginState
	if c, err := r.Cookie(s.cookieName); err == nil {
		http.SetCookie(w, s.stateCookie("", -1)) // single use, whatever happens
		if v, err := s.codec.decode(c.Value, s.now()); err != nil {
			s.log.Info("saml: ignoring a bad login state cookie", "err", err)
		} else if subtle.ConstantTimeCompare([]byte(relay), []byte(v.State)) == 1 {
			st = &v
		}
	}
	id, err := s.consume(r.Context(), r.PostForm, st)
	if err != nil {
		s.loginFailed(w, err, retry)
		return
	}
	if err := s.cfg.Sessions.Start(r.Context(), w, id); err != nil {
		s.log.Error("saml: starting session failed", "err", err)
		s.page(w, http.StatusInternalServerError, "Login failed", "rcsso could not start your session. Please try again later.")
		return
	}
	returnTo := relay
	if st != nil {
		returnTo = st.ReturnTo
	}
	s.log.Info("saml: login", "subject", id.Subject, "idp_initiated", st == nil)
	if rt := s.safeReturnTo(returnTo); rt != "" { // filtered again: the cookie may predate a filter change
		redirect(w, rt, http.StatusSeeOther)
		return
	}
	s.page(w, http.StatusOK, "Logged in", "You are logged in, you can close this window.")
}

// loginFailed logs why a login response was refused and shows a page.
func (s *Source) loginFailed(w http.ResponseWriter, err error, retry string) {
	var ire *crewsaml.InvalidResponseError
	detail := err
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		detail = ire.PrivateErr // never ire.Response: the whole message
	}
	var bad crewsaml.ErrBadStatus
	switch {
	case errors.Is(err, errBusy):
		s.log.Warn("saml: login response dropped: too many being checked")
		s.page(w, http.StatusServiceUnavailable, "Login failed", "rcsso is busy. "+retry)
	case errors.Is(err, errStore):
		s.log.Error("saml: login refused: store unavailable", "err", detail)
		s.page(w, http.StatusServiceUnavailable, "Login failed", "rcsso cannot record this login right now. "+retry)
	case errors.As(err, &bad):
		code := bad.Status
		if !printable(code) || len(code) > 128 {
			code = "invalid status"
		}
		code = strings.TrimPrefix(code, "urn:oasis:names:tc:SAML:2.0:status:")
		s.log.Warn("saml: the IdP did not log the person in", "status", code)
		s.page(w, http.StatusBadGateway, "Login failed", "The identity provider did not log you in ("+code+"). "+retry)
	case errors.Is(err, errUnsolicited):
		s.log.Warn("saml: login refused", "err", err)
		s.page(w, http.StatusBadRequest, "Login failed", "This login was not started here, or it took too long, or this browser blocked rcsso's cookie. "+retry)
	case errors.Is(err, errTransient), errors.Is(err, claims.ErrMissingSubject):
		s.log.Error("saml: login refused: no usable subject", "err", err)
		s.page(w, http.StatusBadGateway, "Login failed", "The identity provider did not send a usable user id. "+retry)
	case errors.Is(detail, crewsaml.ErrAssertionReplayed):
		s.log.Warn("saml: login refused: assertion replayed")
		s.page(w, http.StatusBadRequest, "Login failed", "This login response was already used. "+retry)
	default:
		s.log.Warn("saml: login response refused", "err", detail)
		s.page(w, http.StatusBadRequest, "Login failed", "The login response is not valid for this site. "+retry)
	}
}

// consume checks the login Response in form (the ACS's POST form:
// SAMLResponse, base64 of the Response XML) and returns the identity it
// asserts. st is the browser's login state when its RelayState matched
// (SP-initiated), or nil (IdP-initiated, refused with errUnsolicited unless
// allowed). Errors: errBinding, errNoResponse, errUnsolicited, errStore
// (wrapped), a *crewsaml.InvalidResponseError (its PrivateErr says why),
// crewsaml.ErrBadStatus (the IdP's refusal), errTransient,
// claims.ErrMissingSubject (wrapped). It never panics on any input.
func (s *Source) consume(ctx context.Context, form url.Values, st *loginState) (identity.Identity, error) {
	if form.Has("SAMLart") || form.Has("SigAlg") || form.Has("Signature") {
		return identity.Identity{}, errBinding
	}
	if len(form["SAMLResponse"]) != 1 {
		return identity.Identity{}, errNoResponse
	}
	raw, err := base64.StdEncoding.DecodeString(form.Get("SAMLResponse"))
	if err != nil {
		return identity.Identity{}, &crewsaml.InvalidResponseError{PrivateErr: fmt.Errorf("base64: %w", err), Now: s.now()}
	}
	if hasDirective(raw) {
		return identity.Identity{}, &crewsaml.InvalidResponseError{PrivateErr: errDirective, Now: s.now()}
	}
	sp := s.serviceProvider()
	rc := &replayCache{ctx: ctx, once: s.cfg.Once, prefix: "saml:" + s.cfg.Name + ":"}
	sp.ReplayCache = rc
	var ids []string
	if st != nil {
		ids = []string{st.RequestID}
	} else {
		if !s.cfg.AllowIDPInitiated {
			return identity.Identity{}, errUnsolicited
		}
		sp.AllowIDPInitiated = true
	}
	release, err := s.acquire(ctx)
	if err != nil {
		return identity.Identity{}, err
	}
	a, err := sp.ParseXMLResponse(raw, ids, s.acsURL)
	release()
	if err != nil {
		if rc.err != nil {
			return identity.Identity{}, fmt.Errorf("%w: %w", errStore, rc.err)
		}
		if errors.Is(err, crewsaml.ErrInvalidSignature) || errors.Is(err, crewsaml.ErrUntrustedCertificate) {
			s.refreshSoon()
		}
		return identity.Identity{}, err
	}
	return s.identityOf(a)
}

// errDirective refuses a DTD (or any other <!...> directive) in a SAML
// message: SAML has no use for one (saml-core §1.3), and entity
// declarations are what XXE and entity expansion attacks are made of.
var errDirective = errors.New("saml: the message holds a DTD or another <!...> directive")

// hasDirective reports whether b holds "<!" other than a comment or a
// CDATA section.
func hasDirective(b []byte) bool {
	for {
		i := bytes.Index(b, []byte("<!"))
		if i < 0 {
			return false
		}
		b = b[i+2:]
		if !bytes.HasPrefix(b, []byte("--")) && !bytes.HasPrefix(b, []byte("[CDATA[")) {
			return true
		}
	}
}

// acquire waits for one of the slots for checking a SAML message, or for
// ctx to end (errBusy); call release when done.
func (s *Source) acquire(ctx context.Context) (release func(), err error) {
	select {
	case s.slots <- struct{}{}:
		return func() { <-s.slots }, nil
	case <-ctx.Done():
		return nil, errBusy
	}
}

// identityOf maps a verified assertion through the claim mapping.
func (s *Source) identityOf(a *crewsaml.Assertion) (identity.Identity, error) {
	values := map[string][]string{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vs []string
			for _, v := range at.Values {
				if v.Value != "" {
					vs = append(vs, v.Value)
				}
			}
			values[at.Name] = append(values[at.Name], vs...)
			if at.FriendlyName != "" && at.FriendlyName != at.Name {
				values[at.FriendlyName] = append(values[at.FriendlyName], vs...)
			}
		}
	}
	c := make(map[string]any, len(values)+1)
	for name, vs := range values {
		switch {
		case name == s.mapping.Groups || name == s.mapping.Roles:
			list := make([]any, len(vs)) // always a list: a group name may hold spaces
			for i, v := range vs {
				list[i] = v
			}
			c[name] = list
		case len(vs) == 1:
			c[name] = vs[0]
		case len(vs) > 1:
			list := make([]any, len(vs))
			for i, v := range vs {
				list[i] = v
			}
			c[name] = list
		}
	}
	var nameID *crewsaml.NameID
	if a.Subject != nil {
		nameID = a.Subject.NameID
	}
	delete(c, NameIDClaim)
	if nameID != nil && strings.TrimSpace(nameID.Value) != "" {
		c[NameIDClaim] = strings.TrimSpace(nameID.Value)
	}
	if s.mapping.Subject == NameIDClaim && (nameID == nil || nameID.Format == string(crewsaml.TransientNameIDFormat)) {
		return identity.Identity{}, errTransient
	}
	return s.mapping.Map(s.cfg.Name, c)
}

// replayCache is crewsaml.AssertionReplayCache on Options.Once for one
// request: it keeps the store's error apart from a replay.
type replayCache struct {
	ctx    context.Context
	once   Once
	prefix string
	err    error
}

// Consume implements crewsaml.AssertionReplayCache. Keys are hashed: IDs
// come from the IdP and may be long.
func (c *replayCache) Consume(id string, expiresAt time.Time) error {
	sum := sha256.Sum256([]byte(id))
	first, err := c.once.UseOnce(c.ctx, c.prefix+base64.RawURLEncoding.EncodeToString(sum[:]), expiresAt)
	if err != nil {
		c.err = err
		return err
	}
	if !first {
		return crewsaml.ErrAssertionReplayed
	}
	return nil
}

// slo is the single logout service (saml-profiles §4.4.4.1): it checks the
// IdP's LogoutRequest (signed: a query string signature, an enveloped
// signature, or the SOAP message's; not replayed; issuer, destination,
// time), ends the sessions (logoutSubject) and answers with a signed
// LogoutResponse by the binding the request came with (or the other one
// the IdP has). A request that fails the checks gets a page or a SOAP fault,
// never a LogoutResponse.
func (s *Source) slo(w http.ResponseWriter, r *http.Request) {
	ctx := context.WithoutCancel(r.Context())
	sp := s.serviceProvider()
	rc := &replayCache{ctx: ctx, once: s.cfg.Once, prefix: "saml:" + s.cfg.Name + ":"}
	sp.ReplayCache = rc
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxSLOBody)
		if crewsaml.IsSOAPRequest(r) {
			s.sloSOAP(ctx, w, r, &sp, rc)
			return
		}
		if err := r.ParseForm(); err != nil {
			s.log.Warn("saml: unreadable logout request", "err", err)
			s.page(w, http.StatusBadRequest, "Logout failed", "The logout request could not be read.")
			return
		}
	}
	if r.URL.Query().Has("SAMLResponse") || r.PostForm.Has("SAMLResponse") {
		s.log.Warn("saml: LogoutResponse received, but rcsso sends no LogoutRequests")
		s.page(w, http.StatusBadRequest, "Logout failed", "rcsso did not ask the identity provider to log you out.")
		return
	}
	if browserMessageHasDirective(r) {
		s.logoutRefused(w, errDirective, rc)
		return
	}
	release, err := s.acquire(r.Context())
	if err != nil {
		s.log.Warn("saml: logout request dropped: too many being checked")
		s.page(w, http.StatusServiceUnavailable, "Logout failed", "rcsso is busy. Please try again.")
		return
	}
	lr, err := sp.ValidateLogoutRequest(r)
	release()
	if err != nil {
		s.logoutRefused(w, err, rc)
		return
	}
	relay := r.URL.Query().Get("RelayState")
	if r.Method == http.MethodPost {
		relay = r.PostForm.Get("RelayState")
	}
	if len(relay) > maxRelayState || !printable(relay) {
		relay = ""
	}
	status := s.logoutSubject(ctx, w, r, lr)

	redirectLoc, postLoc := sp.GetSLOBindingLocation(crewsaml.HTTPRedirectBinding), sp.GetSLOBindingLocation(crewsaml.HTTPPostBinding)
	useRedirect := redirectLoc != "" && (r.Method == http.MethodGet || postLoc == "")
	switch {
	case useRedirect:
		u, err := sp.MakeRedirectLogoutResponseWithStatus(lr.ID, relay, status)
		if err != nil {
			s.log.Error("saml: making the LogoutResponse failed", "err", err)
			s.page(w, http.StatusInternalServerError, "Logout", "You are logged out of the chat, but rcsso could not answer the identity provider.")
			return
		}
		http.Redirect(w, r, u.String(), http.StatusFound)
	case postLoc != "":
		resp, err := sp.MakeLogoutResponseWithStatus(postLoc, lr.ID, status)
		if err != nil {
			s.log.Error("saml: making the LogoutResponse failed", "err", err)
			s.page(w, http.StatusInternalServerError, "Logout", "You are logged out of the chat, but rcsso could not answer the identity provider.")
			return
		}
		s.postPage(w, postLoc, func(nonce string) []byte { return resp.PostWithNonce(relay, nonce) })
	default:
		s.page(w, http.StatusOK, "Logged out", "You are logged out, you can close this window.")
	}
}

// sloSOAP answers a LogoutRequest the IdP sent from its server (SOAP
// binding, saml-bindings §3.2).
func (s *Source) sloSOAP(ctx context.Context, w http.ResponseWriter, r *http.Request, sp *crewsaml.ServiceProvider, rc *replayCache) {
	body, err := io.ReadAll(r.Body) // bounded by slo's MaxBytesReader
	if err == nil && hasDirective(body) {
		err = errDirective
	}
	var lr *crewsaml.LogoutRequest
	if err == nil {
		var release func()
		if release, err = s.acquire(r.Context()); err == nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			lr, err = sp.ValidateSOAPLogoutRequest(r)
			release()
		}
	}
	if err != nil {
		s.logLogoutRefusal(err, rc)
		_ = crewsaml.WriteSOAPFault(w, "logout request refused")
		return
	}
	resp, err := sp.MakeSOAPLogoutResponse(lr.ID, s.logoutSubject(ctx, nil, nil, lr))
	if err != nil {
		s.log.Error("saml: making the LogoutResponse failed", "err", err)
		_ = crewsaml.WriteSOAPFault(w, "internal error")
		return
	}
	_ = crewsaml.WriteSOAPLogoutResponse(w, resp)
}

// browserMessageHasDirective reports whether the SAMLRequest of r
// (HTTP-Redirect: base64 of DEFLATE, inflated to at most maxInflated
// bytes; HTTP-POST: base64) holds a directive (see hasDirective). A message
// that cannot be decoded is left to the library to refuse.
func browserMessageHasDirective(r *http.Request) bool {
	if r.Method == http.MethodPost {
		raw, err := base64.StdEncoding.DecodeString(r.PostForm.Get("SAMLRequest"))
		return err == nil && hasDirective(raw)
	}
	raw, err := base64.StdEncoding.DecodeString(r.URL.Query().Get("SAMLRequest"))
	if err != nil {
		return false
	}
	inflated, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), maxInflated+1))
	if len(inflated) > maxInflated {
		return false // the library refuses it as too large
	}
	_ = err // a truncated stream is the library's to refuse; what was read is checked
	return hasDirective(inflated)
}

func (s *Source) logLogoutRefusal(err error, rc *replayCache) {
	var ire *crewsaml.InvalidResponseError
	if errors.As(err, &ire) && ire.PrivateErr != nil {
		err = ire.PrivateErr
	}
	if rc.err != nil {
		s.log.Error("saml: logout request refused: store unavailable", "err", rc.err)
		return
	}
	s.log.Warn("saml: logout request refused", "err", err)
}

func (s *Source) logoutRefused(w http.ResponseWriter, err error, rc *replayCache) {
	s.logLogoutRefusal(err, rc)
	if rc.err != nil {
		s.page(w, http.StatusServiceUnavailable, "Logout failed", "rcsso cannot record this logout right now. Please try again later.")
		return
	}
	s.page(w, http.StatusBadRequest, "Logout failed", "The logout request is not valid for this site.")
}

// logoutSubject ends the sessions a verified LogoutRequest names: every
// session of "<Name>:<NameID>" when the subject is the NameID, and the
// session of the browser that brought the request (w, r; nil for SOAP) if
// this source made it; then OnLogout for each subject. It returns the
// LogoutResponse status: Success; Success with PartialLogout when the
// subject is an attribute and no browser session was there to end (rcsso
// cannot map the NameID to the subject); Responder when ending failed.
func (s *Source) logoutSubject(ctx context.Context, w http.ResponseWriter, r *http.Request, lr *crewsaml.LogoutRequest) crewsaml.Status {
	var subjects []string
	if s.mapping.Subject == NameIDClaim && lr.NameID != nil {
		if v := strings.TrimSpace(lr.NameID.Value); v != "" {
			subjects = append(subjects, s.cfg.Name+":"+v)
		}
	}
	failed := false
	if r != nil {
		if sess, err := s.cfg.Sessions.Lookup(r); err == nil && sess.Source == s.cfg.Name {
			if _, _, err := s.cfg.Sessions.End(ctx, w, r); err != nil {
				s.log.Error("saml: ending the browser's session failed", "subject", sess.Subject, "err", err)
				failed = true
			}
			if len(subjects) == 0 || subjects[0] != sess.Subject {
				subjects = append(subjects, sess.Subject)
			}
		}
	}
	for _, subject := range subjects {
		if _, err := s.cfg.Sessions.EndSubject(ctx, subject); err != nil {
			s.log.Error("saml: single logout failed", "subject", subject, "err", err)
			failed = true
			continue
		}
		if s.cfg.OnLogout != nil {
			if err := s.cfg.OnLogout(ctx, subject); err != nil {
				s.log.Error("saml: ending the chat session failed", "subject", subject, "err", err)
				failed = true
				continue
			}
		}
		s.log.Info("saml: single logout", "subject", subject)
	}
	switch {
	case failed:
		return crewsaml.Status{StatusCode: crewsaml.StatusCode{Value: crewsaml.StatusResponder}}
	case len(subjects) == 0:
		s.log.Warn("saml: single logout ended no session: claims.subject is an attribute, and the request did not come through the person's browser")
		return crewsaml.Status{StatusCode: crewsaml.StatusCode{Value: crewsaml.StatusSuccess,
			StatusCode: &crewsaml.StatusCode{Value: crewsaml.StatusPartialLogout}}}
	}
	return crewsaml.Status{StatusCode: crewsaml.StatusCode{Value: crewsaml.StatusSuccess}}
}

// redirect sends the browser to loc, a URL from SafeReturnTo, exactly as
// given.
func redirect(w http.ResponseWriter, loc string, code int) {
	w.Header().Set("Location", loc)
	w.WriteHeader(code)
}

func (s *Source) safeReturnTo(raw string) string { return flowstate.ReturnTo(s.cfg.SafeReturnTo, raw) }

func (s *Source) stateCookie(value string, maxAge int) *http.Cookie {
	c := &http.Cookie{
		Name:     s.cookieName,
		Value:    value,
		Path:     s.cookiePath,
		MaxAge:   maxAge,
		Secure:   s.cfg.SecureCookies,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	}
	if s.cfg.SecureCookies {
		c.SameSite = http.SameSiteNoneMode // the IdP's POST to the ACS is cross-site
	}
	return c
}

func printable(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) || r == unicode.ReplacementChar {
			return false
		}
	}
	return true
}

// page writes a small self-contained HTML page (flowstate.Page).
func (s *Source) page(w http.ResponseWriter, status int, title, msg string) {
	flowstate.Page(w, status, title, msg, true)
}

// postPage writes the self-submitting form of the HTTP-POST binding to
// action, its script allowed by a nonce, posting only to action's origin.
func (s *Source) postPage(w http.ResponseWriter, action string, form func(nonce string) []byte) {
	u, err := url.Parse(action)
	if err != nil {
		s.page(w, http.StatusInternalServerError, "Logout", "rcsso could not answer the identity provider.")
		return
	}
	nonce := rand.Text()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'nonce-"+nonce+"'; base-uri 'none'; form-action "+u.Scheme+"://"+u.Host+"; frame-ancestors 'none'")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Logging out</title></head><body>`))
	_, _ = w.Write(form(nonce))
	_, _ = w.Write([]byte(`</body></html>`))
}
