// Package jwt is the "jwt" identity source: the website already issues a
// signed JSON Web Token to its logged-in visitors (in a cookie shared with
// rcsso's domain, or sent as "Authorization: Bearer"), and rcsso believes it
// after checking the signature, algorithm, issuer, audience and validity
// window. Verification is github.com/golang-jwt/jwt/v5; keys come from a
// shared secret, a PEM public key, or a JWKS URL refreshed in the background
// by github.com/MicahParks/keyfunc/v3.
package jwt

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/MicahParks/keyfunc/v3"
	gojwt "github.com/golang-jwt/jwt/v5"
	"golang.org/x/sync/singleflight"
	"golang.org/x/time/rate"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// MaxTokenSize is the largest token accepted (bytes); larger ones are
// rejected before parsing.
const MaxTokenSize = 8 << 10

// DefaultLeeway is the clock skew allowed for exp, nbf and iat when
// Options.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// JWKS fetching: each fetch is bounded by jwksTimeout; keys are refreshed
// every jwksRefresh in the background, and at most once per jwksUnknownKID
// when a token names a key id not in the cache.
const (
	jwksTimeout    = 5 * time.Second
	jwksRefresh    = time.Hour
	jwksUnknownKID = 30 * time.Second
	minRSABits     = 2048
	maxLogReason   = 200
)

// Options configures the source.
type Options struct {
	// Name is the source name; subjects are "<Name>:<sub>" (default "jwt").
	Name string
	// Cookie names the cookie carrying the token ("" = no cookie).
	Cookie string
	// Header reads the token from "Authorization: Bearer <jwt>" too. When a
	// request has both, the header wins. At least one of Cookie and Header
	// is required.
	Header bool
	// Algorithms is the explicit allow-list of JWS "alg" values, e.g.
	// ["RS256"] (required). "none" is never accepted, and every algorithm
	// must suit the configured key (no HS* with a public key, no RS*, PS*,
	// ES* or EdDSA with a secret).
	Algorithms []string
	// Secret is the HS256/HS384/HS512 shared secret (raw bytes; the caller
	// reads it from a file). It must be at least as long as the hash output
	// (32, 48 or 64 bytes, RFC 7518 §3.2).
	Secret []byte
	// PublicKeyPEM is the RS*/PS* (RSA ≥ 2048 bits), ES256/384/512 (P-256,
	// P-384, P-521) or EdDSA (Ed25519) public key: a PEM "PUBLIC KEY"
	// (PKIX), "RSA PUBLIC KEY" (PKCS #1) or "CERTIFICATE" block.
	PublicKeyPEM []byte
	// JWKSURL is the website's JWK Set URL. Keys are fetched at New, then
	// every hour and, rate limited, when a token names an unknown key id.
	// Only asymmetric algorithms may be used with it; keys whose "use" is
	// "enc" are ignored. Exactly one of Secret, PublicKeyPEM and JWKSURL
	// is required.
	JWKSURL string
	// Issuer is required: the "iss" claim must equal it.
	Issuer string
	// Audience is required: the "aud" claim must contain it.
	Audience string
	// Leeway is the clock skew allowed for exp, nbf and iat (0 = DefaultLeeway).
	Leeway time.Duration
	// RequireExp rejects tokens without an "exp" claim. A present exp or nbf
	// is always checked.
	RequireExp bool
	// Mapping maps the token claims onto the identity (claims.DefaultMapping
	// for empty fields).
	Mapping claims.Mapping
	// HTTPClient fetches the JWKS (default: a client without timeout; each
	// fetch is bounded to 5 s anyway).
	HTTPClient *http.Client
	// Logger receives rejections (info) and JWKS failures (warn); tokens are
	// never logged. Default slog.Default().
	Logger *slog.Logger
}

// Source is the JWT identity source. It is safe for concurrent use.
type Source struct {
	cfg    Options
	log    *slog.Logger
	parser *gojwt.Parser
	now    func() time.Time // replaced in tests

	key any // static key: []byte or a public key

	jwks     keyfunc.Keyfunc
	jwksURL  string        // redacted, for messages
	jwksDown atomic.Bool   // the last JWKS fetch failed
	unknown  *rate.Limiter // unknown-kid refreshes
	lookups  singleflight.Group
}

// errJWKSUnavailable marks "cannot tell": the key is not cached and the JWKS
// could not be fetched.
var errJWKSUnavailable = fmt.Errorf("JWKS unavailable (%w)", identity.ErrSourceUnavailable)

type keyKind int

const (
	kindHMAC keyKind = iota + 1
	kindRSA
	kindP256
	kindP384
	kindP521
	kindEd25519
)

// algorithms lists every accepted "alg" with the key kind it needs.
var algorithms = map[string]keyKind{
	"HS256": kindHMAC, "HS384": kindHMAC, "HS512": kindHMAC,
	"RS256": kindRSA, "RS384": kindRSA, "RS512": kindRSA,
	"PS256": kindRSA, "PS384": kindRSA, "PS512": kindRSA,
	"ES256": kindP256, "ES384": kindP384, "ES512": kindP521,
	"EdDSA": kindEd25519,
}

var minSecret = map[string]int{"HS256": 32, "HS384": 48, "HS512": 64}

// New validates cfg and returns the source. With a JWKSURL it fetches the
// key set once (an unreachable JWKS is logged, not fatal: tokens are then
// answered with a non-ErrNotLoggedIn error until it recovers) and refreshes
// it in the background until ctx ends.
func New(ctx context.Context, cfg Options) (*Source, error) {
	if cfg.Name == "" {
		cfg.Name = "jwt"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Leeway == 0 {
		cfg.Leeway = DefaultLeeway
	}
	s := &Source{cfg: cfg, log: cfg.Logger.With("source", cfg.Name), now: time.Now}
	if err := s.configure(ctx); err != nil {
		return nil, fmt.Errorf("jwt source %q: %w", cfg.Name, err)
	}
	return s, nil
}

func (s *Source) configure(ctx context.Context) error {
	cfg := s.cfg
	switch {
	case cfg.Cookie == "" && !cfg.Header:
		return errors.New("set a cookie name, the Authorization header, or both")
	case cfg.Issuer == "":
		return errors.New("issuer is required")
	case cfg.Audience == "":
		return errors.New("audience is required")
	case cfg.Leeway < 0:
		return errors.New("leeway must not be negative")
	case len(cfg.Algorithms) == 0:
		return errors.New("algorithms allow-list is required")
	}
	kinds := map[keyKind]bool{}
	for _, a := range cfg.Algorithms {
		k, ok := algorithms[a]
		if !ok {
			return fmt.Errorf("algorithm %q not supported (none is never accepted)", a)
		}
		kinds[k] = true
	}
	n := 0
	for _, set := range []bool{len(cfg.Secret) > 0, len(cfg.PublicKeyPEM) > 0, cfg.JWKSURL != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		return errors.New("configure exactly one of secret, public key and JWKS URL")
	}

	switch {
	case len(cfg.Secret) > 0:
		for _, a := range cfg.Algorithms {
			if algorithms[a] != kindHMAC {
				return fmt.Errorf("algorithm %s needs a public key, not a shared secret", a)
			}
			if len(cfg.Secret) < minSecret[a] {
				return fmt.Errorf("%s secret must be at least %d bytes", a, minSecret[a])
			}
		}
		s.key = cfg.Secret
	case len(cfg.PublicKeyPEM) > 0:
		key, kind, err := parsePublicKey(cfg.PublicKeyPEM)
		if err != nil {
			return err
		}
		for _, a := range cfg.Algorithms {
			if algorithms[a] != kind {
				return fmt.Errorf("algorithm %s does not suit the configured %s public key", a, kindName(kind))
			}
		}
		s.key = key
	default:
		if kinds[kindHMAC] {
			return errors.New("HS* algorithms need a shared secret, not a JWKS URL")
		}
		if err := s.startJWKS(ctx); err != nil {
			return err
		}
	}
	s.parser = gojwt.NewParser(s.parserOptions()...)
	return nil
}

func (s *Source) parserOptions() []gojwt.ParserOption {
	opts := []gojwt.ParserOption{
		gojwt.WithValidMethods(s.cfg.Algorithms),
		gojwt.WithIssuer(s.cfg.Issuer),
		gojwt.WithAudience(s.cfg.Audience),
		gojwt.WithLeeway(s.cfg.Leeway),
		gojwt.WithIssuedAt(),
		gojwt.WithJSONNumber(), // keep large numeric subjects exact
		gojwt.WithTimeFunc(func() time.Time { return s.now() }),
	}
	if s.cfg.RequireExp {
		opts = append(opts, gojwt.WithExpirationRequired())
	}
	return opts
}

func (s *Source) startJWKS(ctx context.Context) error {
	u, err := url.Parse(s.cfg.JWKSURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("JWKS URL %q is not an absolute http(s) URL", s.cfg.JWKSURL)
	}
	s.jwksURL = u.Redacted()
	if u.Scheme == "http" {
		s.log.Warn("JWKS fetched over plain http: keys can be forged in transit", "url", s.jwksURL)
	}
	client := &http.Client{}
	if s.cfg.HTTPClient != nil {
		c := *s.cfg.HTTPClient
		client = &c
	}
	client.Transport = &recordingTransport{next: client.Transport, down: &s.jwksDown}
	s.unknown = rate.NewLimiter(rate.Every(jwksUnknownKID), 1)
	kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{s.cfg.JWKSURL}, keyfunc.Override{
		Client:            client,
		HTTPTimeout:       jwksTimeout,
		RateLimitWaitMax:  jwksTimeout,
		RefreshInterval:   jwksRefresh,
		RefreshUnknownKID: s.unknown,
		RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
			return func(_ context.Context, err error) {
				s.jwksDown.Store(true)
				s.log.Warn("JWKS fetch failed", "url", s.jwksURL, "error", err)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("JWKS %s: %w", s.jwksURL, err)
	}
	// Same storage, but only keys meant for signatures.
	s.jwks, err = keyfunc.New(keyfunc.Options{Ctx: ctx, Storage: kf.Storage(), UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	return err
}

// recordingTransport notes whether the last JWKS fetch got a 200 answer; a
// body that then fails to decode is reported through the refresh error
// handler, which sets down again.
type recordingTransport struct {
	next http.RoundTripper
	down *atomic.Bool
}

func (t *recordingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(r)
	t.down.Store(err != nil || resp.StatusCode != http.StatusOK)
	return resp, err
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.cfg.Name }

// Identify implements identity.Source. It returns identity.ErrNotLoggedIn
// when the request carries no token, and an error wrapping it (with the
// reason; see the golang-jwt error values such as jwt.ErrTokenExpired) when
// the token is invalid for any reason: malformed, larger than MaxTokenSize,
// bad signature, algorithm not allowed (including "none" and HMAC keyed with
// the public key), wrong issuer or audience, expired, not yet valid, unknown
// key id, a "crit" header, or no usable subject claim. When the key can only
// come from a JWKS that cannot be fetched, the error does not wrap
// ErrNotLoggedIn: rcsso cannot tell.
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	tok, where := s.token(r)
	if tok == "" {
		return identity.Identity{}, identity.ErrNotLoggedIn
	}
	if len(tok) > MaxTokenSize {
		return s.reject(r, where, fmt.Errorf("token is %d bytes, more than %d", len(tok), MaxTokenSize))
	}
	c := gojwt.MapClaims{}
	// A visitor closing the connection must not abort a JWKS refresh that
	// other requests wait for; the refresh is bounded by jwksTimeout.
	ctx := context.WithoutCancel(r.Context())
	if _, err := s.parser.ParseWithClaims(tok, c, s.keyfunc(ctx)); err != nil {
		if errors.Is(err, errJWKSUnavailable) {
			s.log.Warn("cannot verify token: JWKS unreachable and key not cached", "url", s.jwksURL, "from", where)
			return identity.Identity{}, fmt.Errorf("jwt source %q: cannot verify token: JWKS %s unreachable and no cached key: %w", s.cfg.Name, s.jwksURL, identity.ErrSourceUnavailable)
		}
		return s.reject(r, where, err)
	}
	id, err := s.cfg.Mapping.Map(s.cfg.Name, c)
	if err != nil {
		return s.reject(r, where, err)
	}
	return id, nil
}

// token returns the bearer token (preferred) or the cookie value, and where
// it came from.
func (s *Source) token(r *http.Request) (tok, where string) {
	if s.cfg.Header {
		scheme, t, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if ok && strings.EqualFold(scheme, "Bearer") {
			if t = strings.TrimSpace(t); t != "" {
				return t, "header"
			}
		}
	}
	if s.cfg.Cookie != "" {
		if ck, err := r.Cookie(s.cfg.Cookie); err == nil && ck.Value != "" {
			return ck.Value, "cookie"
		}
	}
	return "", ""
}

// reject logs why a token was refused (never the token) and returns an
// ErrNotLoggedIn error.
func (s *Source) reject(r *http.Request, where string, reason error) (identity.Identity, error) {
	msg := reason.Error()
	if len(msg) > maxLogReason {
		msg = msg[:maxLogReason] + "…"
	}
	s.log.Info("token rejected", "from", where, "reason", msg, "remote", r.RemoteAddr)
	return identity.Identity{}, fmt.Errorf("%w: jwt source %q: %s token rejected: %w", identity.ErrNotLoggedIn, s.cfg.Name, where, reason)
}

// keyfunc returns the verification key for a token whose alg the parser
// has already checked against the allow-list.
func (s *Source) keyfunc(ctx context.Context) gojwt.Keyfunc {
	return func(t *gojwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errors.New(`unsupported "crit" header`)
		}
		if s.jwks == nil {
			return s.key, nil
		}
		var (
			key any
			err error
		)
		if kid, ok := t.Header["kid"].(string); ok {
			// After a key rotation many visitors present the new kid at
			// once: share one lookup (and its refresh) instead of letting
			// the rate limiter turn all but the first into rejections.
			key, err, _ = s.lookups.Do(t.Method.Alg()+"\x00"+kid, func() (any, error) {
				return s.jwks.KeyfuncCtx(ctx)(t)
			})
		} else {
			key, err = s.signingKeys(ctx, t.Method.Alg())
		}
		if err != nil {
			if s.jwksDown.Load() {
				return nil, errJWKSUnavailable
			}
			return nil, err
		}
		if set, ok := key.(gojwt.VerificationKeySet); ok && len(set.Keys) == 0 && s.jwksDown.Load() {
			return nil, errJWKSUnavailable
		}
		return key, nil
	}
}

// signingKeys is the candidate set for a token without "kid": every cached
// JWK meant for signatures whose "alg", if given, is alg.
func (s *Source) signingKeys(ctx context.Context, alg string) (any, error) {
	all, err := s.jwks.Storage().KeyReadAll(ctx)
	if err != nil {
		return nil, err
	}
	var set gojwt.VerificationKeySet
	for _, j := range all {
		m := j.Marshal()
		if m.USE == jwkset.UseEnc || (m.ALG != "" && m.ALG.String() != alg) {
			continue
		}
		key := j.Key()
		if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
			key = pk.Public()
		}
		set.Keys = append(set.Keys, key)
	}
	return set, nil
}

// parsePublicKey reads the first PEM block of a public key or certificate.
func parsePublicKey(data []byte) (any, keyKind, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, 0, errors.New("public key: no PEM block found")
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			key = cert.PublicKey
		}
	default:
		if strings.Contains(block.Type, "PRIVATE") {
			return nil, 0, fmt.Errorf("public key: got a %s; give rcsso only the public key", block.Type)
		}
		return nil, 0, fmt.Errorf("public key: unsupported PEM block %q", block.Type)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("public key: %w", err)
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return nil, 0, fmt.Errorf("public key: RSA key of %d bits, need at least %d", k.N.BitLen(), minRSABits)
		}
		return k, kindRSA, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return k, kindP256, nil
		case elliptic.P384():
			return k, kindP384, nil
		case elliptic.P521():
			return k, kindP521, nil
		}
		return nil, 0, errors.New("public key: unsupported elliptic curve")
	case ed25519.PublicKey:
		return k, kindEd25519, nil
	}
	return nil, 0, fmt.Errorf("public key: unsupported key type %T", key)
}

func kindName(k keyKind) string {
	switch k {
	case kindRSA:
		return "RSA"
	case kindP256:
		return "ECDSA P-256"
	case kindP384:
		return "ECDSA P-384"
	case kindP521:
		return "ECDSA P-521"
	case kindEd25519:
		return "Ed25519"
	}
	return "HMAC"
}
