package jwt

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	gojwt "github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

const (
	testIss    = "https://www.example.com"
	testAud    = "rcsso"
	testCookie = "site_jwt"
)

// testNow is the fake clock of every source under test.
var testNow = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)

type testKeySet struct {
	rsa, rsa2       *rsa.PrivateKey
	ec, ec384       *ecdsa.PrivateKey
	ed              ed25519.PrivateKey
	hmac            []byte
	rsaPEM, rsaCert []byte
	rsaPKCS1        []byte
	ecPEM, ec384PEM []byte
	edPEM           []byte
	weakRSAPEM      []byte
	privatePEM      []byte
}

var keys = sync.OnceValue(func() *testKeySet {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	k := &testKeySet{hmac: []byte("0123456789abcdef0123456789abcdef-shared")}
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.rsa2, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.ec384, err = ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	must(err)
	_, k.ed, err = ed25519.GenerateKey(rand.Reader)
	must(err)
	pkix := func(pub any) []byte {
		der, err := x509.MarshalPKIXPublicKey(pub)
		must(err)
		return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	}
	k.rsaPEM = pkix(&k.rsa.PublicKey)
	k.ecPEM = pkix(&k.ec.PublicKey)
	k.ec384PEM = pkix(&k.ec384.PublicKey)
	k.edPEM = pkix(k.ed.Public())
	k.rsaPKCS1 = pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)})
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkixName("www.example.com"),
		NotBefore: testNow.Add(-time.Hour), NotAfter: testNow.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.rsa.PublicKey, k.rsa)
	must(err)
	k.rsaCert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	weak, err := rsa.GenerateKey(rand.Reader, 1024) //nolint:gosec // testing the refusal
	must(err)
	k.weakRSAPEM = pkix(&weak.PublicKey)
	der, err = x509.MarshalPKCS8PrivateKey(k.rsa)
	must(err)
	k.privatePEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	return k
})

func pkixName(cn string) pkix.Name { return pkix.Name{CommonName: cn} }

// claimsAt is a valid claim set at testNow.
func claimsAt(mods ...func(gojwt.MapClaims)) gojwt.MapClaims {
	c := gojwt.MapClaims{
		"iss": testIss, "aud": testAud, "sub": "u-123",
		"iat": testNow.Unix(), "nbf": testNow.Unix(), "exp": testNow.Add(5 * time.Minute).Unix(),
		"preferred_username": "alice", "email": "alice@example.com", "email_verified": true,
	}
	for _, m := range mods {
		m(c)
	}
	return c
}

func sign(t testing.TB, m gojwt.SigningMethod, key any, c gojwt.MapClaims, header map[string]any) string {
	t.Helper()
	tok := gojwt.NewWithClaims(m, c)
	for k, v := range header {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatalf("signing: %v", err)
	}
	return s
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// newSource builds a source with test defaults for unset fields and the fake
// clock.
func newSource(t testing.TB, cfg Options) (*Source, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	if cfg.Name == "" {
		cfg.Name = "site"
	}
	if cfg.Cookie == "" {
		cfg.Cookie = testCookie
	}
	cfg.Header = true
	cfg.Issuer, cfg.Audience = testIss, testAud
	cfg.RequireExp = true
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(t.Context(), cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	s.now = func() time.Time { return testNow }
	return s, logs
}

func cookieRequest(tok string) *http.Request {
	r := httptest.NewRequest("GET", "https://chat.example.com/api/sso", nil)
	r.Header.Set("Cookie", testCookie+"="+tok)
	return r
}

func bearerRequest(tok string) *http.Request {
	r := httptest.NewRequest("GET", "https://chat.example.com/api/sso", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

// checkRejected asserts an ErrNotLoggedIn rejection that was logged without
// the token.
func checkRejected(t *testing.T, err error, want error, tok string, logs *logBuffer) {
	t.Helper()
	if !errors.Is(err, identity.ErrNotLoggedIn) {
		t.Fatalf("err = %v, want ErrNotLoggedIn", err)
	}
	if want != nil && !errors.Is(err, want) {
		t.Errorf("err = %v, want it to wrap %v", err, want)
	}
	out := logs.String()
	if !strings.Contains(out, "token rejected") {
		t.Errorf("rejection not logged: %q", out)
	}
	if len(tok) >= 16 && strings.Contains(out, tok) {
		t.Errorf("token logged: %q", out)
	}
	if parts := strings.Split(tok, "."); len(parts) == 3 && len(parts[2]) >= 16 && strings.Contains(out, parts[2]) {
		t.Errorf("token signature logged: %q", out)
	}
}

func TestIdentifyRS256(t *testing.T) {
	k := keys()
	rs := func(c gojwt.MapClaims) func(*testing.T) string {
		return func(t *testing.T) string { return sign(t, gojwt.SigningMethodRS256, k.rsa, c, nil) }
	}
	without := func(name string) func(gojwt.MapClaims) { return func(c gojwt.MapClaims) { delete(c, name) } }
	set := func(name string, v any) func(gojwt.MapClaims) { return func(c gojwt.MapClaims) { c[name] = v } }
	at := func(d time.Duration) int64 { return testNow.Add(d).Unix() }
	b64 := base64.RawURLEncoding.EncodeToString

	tests := []struct {
		name    string
		token   func(*testing.T) string
		wantSub string // "" = rejected
		wantErr error  // wrapped reason for rejections (optional)
	}{
		{name: "valid", token: rs(claimsAt()), wantSub: "site:u-123"},
		{name: "audience list containing ours", token: rs(claimsAt(set("aud", []string{"other", testAud}))), wantSub: "site:u-123"},
		{name: "expired within leeway", token: rs(claimsAt(set("exp", at(-20*time.Second)))), wantSub: "site:u-123"},
		{name: "nbf within leeway", token: rs(claimsAt(set("nbf", at(20*time.Second)))), wantSub: "site:u-123"},
		{name: "numeric subject", token: rs(claimsAt(set("sub", 9007199254740993))), wantSub: "site:9007199254740993"},
		{name: "expired", token: rs(claimsAt(set("exp", at(-31*time.Second)))), wantErr: gojwt.ErrTokenExpired},
		{name: "not yet valid", token: rs(claimsAt(set("nbf", at(time.Minute)))), wantErr: gojwt.ErrTokenNotValidYet},
		{name: "issued in the future", token: rs(claimsAt(set("iat", at(time.Minute)))), wantErr: gojwt.ErrTokenUsedBeforeIssued},
		{name: "no exp", token: rs(claimsAt(without("exp"))), wantErr: gojwt.ErrTokenRequiredClaimMissing},
		{name: "exp not a number", token: rs(claimsAt(set("exp", "tomorrow"))), wantErr: gojwt.ErrTokenInvalidClaims},
		{name: "wrong issuer", token: rs(claimsAt(set("iss", "https://evil.example"))), wantErr: gojwt.ErrTokenInvalidIssuer},
		{name: "no issuer", token: rs(claimsAt(without("iss"))), wantErr: gojwt.ErrTokenRequiredClaimMissing},
		{name: "wrong audience", token: rs(claimsAt(set("aud", "other"))), wantErr: gojwt.ErrTokenInvalidAudience},
		{name: "no audience", token: rs(claimsAt(without("aud"))), wantErr: gojwt.ErrTokenRequiredClaimMissing},
		{name: "no subject", token: rs(claimsAt(without("sub"))), wantErr: claims.ErrMissingSubject},
		{name: "subject is an object", token: rs(claimsAt(set("sub", map[string]any{"id": 1}))), wantErr: claims.ErrMissingSubject},
		{name: "signed by another key", token: func(t *testing.T) string {
			return sign(t, gojwt.SigningMethodRS256, k.rsa2, claimsAt(), nil)
		}, wantErr: gojwt.ErrTokenSignatureInvalid},
		{name: "payload tampered", token: func(t *testing.T) string {
			h, _, _ := strings.Cut(sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil), ".")
			evil, _ := json.Marshal(claimsAt(set("sub", "admin")))
			sig := strings.Split(sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil), ".")[2]
			return h + "." + b64(evil) + "." + sig
		}, wantErr: gojwt.ErrTokenSignatureInvalid},
		{name: "alg none", token: func(t *testing.T) string {
			return sign(t, gojwt.SigningMethodNone, gojwt.UnsafeAllowNoneSignatureType, claimsAt(), nil)
		}, wantErr: gojwt.ErrTokenSignatureInvalid},
		{name: "alg None, hand-made", token: func(*testing.T) string {
			p, _ := json.Marshal(claimsAt())
			return b64([]byte(`{"alg":"None","typ":"JWT"}`)) + "." + b64(p) + "."
		}, wantErr: gojwt.ErrTokenUnverifiable},
		{name: "HS256 keyed with the RSA public key PEM (confusion)", token: func(t *testing.T) string {
			return sign(t, gojwt.SigningMethodHS256, k.rsaPEM, claimsAt(), nil)
		}, wantErr: gojwt.ErrTokenSignatureInvalid},
		{name: "HS256 keyed with the public key DER", token: func(t *testing.T) string {
			der, _ := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
			return sign(t, gojwt.SigningMethodHS256, der, claimsAt(), nil)
		}, wantErr: gojwt.ErrTokenSignatureInvalid},
		{name: "RS512 not in the allow-list", token: func(t *testing.T) string {
			return sign(t, gojwt.SigningMethodRS512, k.rsa, claimsAt(), nil)
		}, wantErr: gojwt.ErrTokenSignatureInvalid},
		{name: "ES256 by a stranger", token: func(t *testing.T) string {
			return sign(t, gojwt.SigningMethodES256, k.ec, claimsAt(), nil)
		}, wantErr: gojwt.ErrTokenSignatureInvalid},
		{name: "crit header", token: func(t *testing.T) string {
			return sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), map[string]any{"crit": []string{"exp"}})
		}, wantErr: gojwt.ErrTokenUnverifiable},
		{name: "malformed: one segment", token: func(*testing.T) string { return "not-a-jwt-but-long-enough" }, wantErr: gojwt.ErrTokenMalformed},
		{name: "malformed: four segments", token: func(t *testing.T) string { return rs(claimsAt())(t) + ".x" }, wantErr: gojwt.ErrTokenMalformed},
		{name: "malformed: bad base64", token: func(*testing.T) string { return "e30.!!!.xyz" }, wantErr: gojwt.ErrTokenMalformed},
		{name: "malformed: header not JSON", token: func(*testing.T) string { return b64([]byte("nope")) + ".e30.c2ln" }, wantErr: gojwt.ErrTokenMalformed},
		{name: "malformed: claims not an object", token: func(*testing.T) string {
			return b64([]byte(`{"alg":"RS256"}`)) + "." + b64([]byte(`[1,2]`)) + ".c2ln"
		}, wantErr: gojwt.ErrTokenMalformed},
		{name: "just under the size limit", token: rs(claimsAt(set("pad", strings.Repeat("x", 5000)))), wantSub: "site:u-123"},
		{name: "oversized but validly signed", token: rs(claimsAt(set("pad", strings.Repeat("x", 6500))))},
	}
	for _, tc := range tests {
		for _, via := range []string{"cookie", "header"} {
			t.Run(tc.name+"/"+via, func(t *testing.T) {
				s, logs := newSource(t, Options{Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM})
				tok := tc.token(t)
				r := cookieRequest(tok)
				if via == "header" {
					r = bearerRequest(tok)
				}
				id, err := s.Identify(r)
				if tc.wantSub != "" {
					if err != nil {
						t.Fatalf("Identify: %v", err)
					}
					if id.Subject != tc.wantSub || id.Source != "site" {
						t.Fatalf("identity %+v", id)
					}
					if strings.Contains(logs.String(), tok) {
						t.Error("token logged")
					}
					return
				}
				checkRejected(t, err, tc.wantErr, tok, logs)
			})
		}
	}
}

func TestIdentifyMapping(t *testing.T) {
	k := keys()
	s, _ := newSource(t, Options{Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM,
		Mapping: claims.Mapping{Roles: "realm_access.roles", RoleMap: map[string]string{"chat-admin": "admin"}}})
	tok := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(func(c gojwt.MapClaims) {
		c["realm_access"] = map[string]any{"roles": []string{"chat-admin", "other"}}
		c["name"] = "Alice"
	}), nil)
	id, err := s.Identify(cookieRequest(tok))
	want := identity.Identity{Subject: "site:u-123", Source: "site", Username: "alice", Name: "Alice",
		Email: "alice@example.com", EmailVerified: true, Roles: []string{"admin"}}
	if err != nil || fmt.Sprint(id) != fmt.Sprint(want) {
		t.Fatalf("got %+v, %v; want %+v", id, err, want)
	}
}

func TestNoToken(t *testing.T) {
	k := keys()
	valid := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil)
	tests := []struct {
		name   string
		cookie bool // source reads the cookie
		header bool // source reads the header
		req    func() *http.Request
	}{
		{"nothing", true, true, func() *http.Request { return httptest.NewRequest("GET", "/", nil) }},
		{"other cookie", true, true, func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.Header.Set("Cookie", "session=abc")
			return r
		}},
		{"empty cookie", true, true, func() *http.Request { return cookieRequest("") }},
		{"basic auth is not ours", true, true, func() *http.Request {
			r := httptest.NewRequest("GET", "/", nil)
			r.SetBasicAuth("u", "p")
			return r
		}},
		{"empty bearer", true, true, func() *http.Request { return bearerRequest("  ") }},
		{"bearer ignored when header disabled", true, false, func() *http.Request { return bearerRequest(valid) }},
		{"cookie ignored when only header", false, true, func() *http.Request { return cookieRequest(valid) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := Options{Name: "site", Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM,
				Issuer: testIss, Audience: testAud, Header: tc.header, Logger: slog.New(slog.DiscardHandler)}
			if tc.cookie {
				cfg.Cookie = testCookie
			}
			s, err := New(t.Context(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			s.now = func() time.Time { return testNow }
			if _, err := s.Identify(tc.req()); err != identity.ErrNotLoggedIn {
				t.Fatalf("err = %v, want exactly ErrNotLoggedIn", err)
			}
		})
	}
}

func TestHeaderWinsOverCookie(t *testing.T) {
	k := keys()
	s, _ := newSource(t, Options{Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM})
	good := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil)
	bad := sign(t, gojwt.SigningMethodRS256, k.rsa2, claimsAt(), nil)
	r := bearerRequest(bad)
	r.AddCookie(&http.Cookie{Name: testCookie, Value: good})
	if _, err := s.Identify(r); !errors.Is(err, identity.ErrNotLoggedIn) {
		t.Fatalf("invalid bearer fell back to the cookie: %v", err)
	}
	r = bearerRequest(good)
	r.Header.Set("Authorization", "bearer "+good) // scheme is case-insensitive
	r.AddCookie(&http.Cookie{Name: testCookie, Value: bad})
	if _, err := s.Identify(r); err != nil {
		t.Fatal(err)
	}
}

func TestRequireExpOff(t *testing.T) {
	k := keys()
	s, _ := newSource(t, Options{Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM})
	s.cfg.RequireExp = false
	s.parser = gojwt.NewParser(s.parserOptions()...)
	noExp := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(func(c gojwt.MapClaims) { delete(c, "exp") }), nil)
	if _, err := s.Identify(cookieRequest(noExp)); err != nil {
		t.Fatalf("no exp with RequireExp off: %v", err)
	}
	expired := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(func(c gojwt.MapClaims) { c["exp"] = testNow.Add(-time.Hour).Unix() }), nil)
	if _, err := s.Identify(cookieRequest(expired)); !errors.Is(err, gojwt.ErrTokenExpired) {
		t.Fatalf("present exp not honoured: %v", err)
	}
}

// TestKeyKinds verifies a token of every supported family with each PEM form,
// and that tokens of another family are refused.
func TestKeyKinds(t *testing.T) {
	k := keys()
	tests := []struct {
		name   string
		cfg    Options
		method gojwt.SigningMethod
		key    any
	}{
		{"HS256", Options{Algorithms: []string{"HS256"}, Secret: k.hmac}, gojwt.SigningMethodHS256, k.hmac},
		{"HS512 long secret", Options{Algorithms: []string{"HS512"}, Secret: bytes.Repeat(k.hmac, 2)}, gojwt.SigningMethodHS512, bytes.Repeat(k.hmac, 2)},
		{"RS256 PKIX", Options{Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM}, gojwt.SigningMethodRS256, k.rsa},
		{"RS256 certificate", Options{Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaCert}, gojwt.SigningMethodRS256, k.rsa},
		{"PS256 PKCS1", Options{Algorithms: []string{"RS256", "PS256"}, PublicKeyPEM: k.rsaPKCS1}, gojwt.SigningMethodPS256, k.rsa},
		{"ES256", Options{Algorithms: []string{"ES256"}, PublicKeyPEM: k.ecPEM}, gojwt.SigningMethodES256, k.ec},
		{"ES384", Options{Algorithms: []string{"ES384"}, PublicKeyPEM: k.ec384PEM}, gojwt.SigningMethodES384, k.ec384},
		{"EdDSA", Options{Algorithms: []string{"EdDSA"}, PublicKeyPEM: k.edPEM}, gojwt.SigningMethodEdDSA, k.ed},
	}
	strangers := []struct {
		method gojwt.SigningMethod
		key    any
	}{
		{gojwt.SigningMethodHS256, k.hmac}, {gojwt.SigningMethodRS256, k.rsa},
		{gojwt.SigningMethodES256, k.ec}, {gojwt.SigningMethodEdDSA, k.ed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, logs := newSource(t, tc.cfg)
			tok := sign(t, tc.method, tc.key, claimsAt(), nil)
			if id, err := s.Identify(cookieRequest(tok)); err != nil || id.Subject != "site:u-123" {
				t.Fatalf("own token: %+v, %v", id, err)
			}
			for _, o := range strangers {
				if slices.Contains(tc.cfg.Algorithms, o.method.Alg()) {
					continue
				}
				tok := sign(t, o.method, o.key, claimsAt(), nil)
				_, err := s.Identify(cookieRequest(tok))
				checkRejected(t, err, nil, tok, logs)
			}
		})
	}
}

func TestNewValidation(t *testing.T) {
	k := keys()
	base := func(m func(*Options)) Options {
		c := Options{Name: "site", Cookie: testCookie, Issuer: testIss, Audience: testAud,
			Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM}
		m(&c)
		return c
	}
	tests := []struct {
		name string
		cfg  Options
		want string // substring of the error
	}{
		{"no algorithms", base(func(c *Options) { c.Algorithms = nil }), "allow-list"},
		{"none", base(func(c *Options) { c.Algorithms = []string{"RS256", "none"} }), `"none"`},
		{"unknown alg", base(func(c *Options) { c.Algorithms = []string{"RS257"} }), "not supported"},
		{"HS with a public key", base(func(c *Options) { c.Algorithms = []string{"HS256"} }), "does not suit"},
		{"HS and RS mixed with a public key", base(func(c *Options) { c.Algorithms = []string{"RS256", "HS256"} }), "does not suit"},
		{"RS with a secret", base(func(c *Options) { c.PublicKeyPEM, c.Secret = nil, k.hmac }), "needs a public key"},
		{"short HS256 secret", base(func(c *Options) { c.Algorithms, c.PublicKeyPEM, c.Secret = []string{"HS256"}, nil, []byte("short") }), "at least 32"},
		{"HS512 secret shorter than 64", base(func(c *Options) { c.Algorithms, c.PublicKeyPEM, c.Secret = []string{"HS512"}, nil, k.hmac }), "at least 64"},
		{"two key kinds", base(func(c *Options) { c.Secret = k.hmac }), "exactly one"},
		{"no key", base(func(c *Options) { c.PublicKeyPEM = nil }), "exactly one"},
		{"ES256 with a P-384 key", base(func(c *Options) { c.Algorithms, c.PublicKeyPEM = []string{"ES256"}, k.ec384PEM }), "does not suit"},
		{"RS256 with an EC key", base(func(c *Options) { c.PublicKeyPEM = k.ecPEM }), "does not suit"},
		{"EdDSA with an RSA key", base(func(c *Options) { c.Algorithms = []string{"EdDSA"} }), "does not suit"},
		{"weak RSA", base(func(c *Options) { c.PublicKeyPEM = k.weakRSAPEM }), "at least 2048"},
		{"private key given", base(func(c *Options) { c.PublicKeyPEM = k.privatePEM }), "only the public key"},
		{"not PEM", base(func(c *Options) { c.PublicKeyPEM = []byte("ssh-rsa AAAA") }), "no PEM block"},
		{"no issuer", base(func(c *Options) { c.Issuer = "" }), "issuer"},
		{"no audience", base(func(c *Options) { c.Audience = "" }), "audience"},
		{"no cookie nor header", base(func(c *Options) { c.Cookie = "" }), "cookie"},
		{"negative leeway", base(func(c *Options) { c.Leeway = -time.Second }), "leeway"},
		{"HS with JWKS", base(func(c *Options) { c.Algorithms, c.PublicKeyPEM, c.JWKSURL = []string{"HS256"}, nil, "https://x/jwks" }), "shared secret"},
		{"relative JWKS URL", base(func(c *Options) { c.PublicKeyPEM, c.JWKSURL = nil, "/jwks.json" }), "absolute"},
		{"ftp JWKS URL", base(func(c *Options) { c.PublicKeyPEM, c.JWKSURL = nil, "ftp://x/jwks.json" }), "absolute"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(t.Context(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// jwksServer serves a JWK Set that tests can rotate or break.
type jwksServer struct {
	*httptest.Server
	mu     sync.Mutex
	body   string
	status int
	hits   atomic.Int64
}

func newJWKSServer(t *testing.T, jwks ...map[string]any) *jwksServer {
	j := &jwksServer{}
	j.set(http.StatusOK, jwks...)
	j.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		j.hits.Add(1)
		j.mu.Lock()
		defer j.mu.Unlock()
		w.WriteHeader(j.status)
		_, _ = io.WriteString(w, j.body)
	}))
	t.Cleanup(j.Close)
	return j
}

func (j *jwksServer) set(status int, jwks ...map[string]any) {
	body, _ := json.Marshal(map[string]any{"keys": jwks})
	j.setRaw(status, string(body))
}

func (j *jwksServer) setRaw(status int, body string) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.status, j.body = status, body
}

func b64u(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func rsaJWK(kid string, k *rsa.PrivateKey) map[string]any {
	return map[string]any{"kty": "RSA", "kid": kid, "use": "sig", "alg": "RS256",
		"n": b64u(k.N.Bytes()), "e": b64u(big.NewInt(int64(k.E)).Bytes())}
}

func ecJWK(kid string, k *ecdsa.PrivateKey) map[string]any {
	p, err := k.PublicKey.Bytes() // 0x04 || X || Y
	if err != nil {
		panic(err)
	}
	n := (len(p) - 1) / 2
	return map[string]any{"kty": "EC", "kid": kid, "crv": "P-256", "x": b64u(p[1 : 1+n]), "y": b64u(p[1+n:])}
}

func edJWK(kid string, k ed25519.PrivateKey) map[string]any {
	return map[string]any{"kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64u(k.Public().(ed25519.PublicKey))}
}

func jwksSource(t *testing.T, j *jwksServer, algs ...string) (*Source, *logBuffer) {
	t.Helper()
	return newSource(t, Options{Algorithms: algs, JWKSURL: j.URL + "/.well-known/jwks.json", HTTPClient: j.Client()})
}

func withKid(kid string) map[string]any { return map[string]any{"kid": kid} }

// checkCannotTell asserts the "cannot tell" answer (5xx, not 401).
func checkCannotTell(t *testing.T, err error) {
	t.Helper()
	if err == nil || errors.Is(err, identity.ErrNotLoggedIn) {
		t.Fatalf("err = %v, want a non-ErrNotLoggedIn error", err)
	}
	if !strings.Contains(err.Error(), "JWKS") {
		t.Errorf("error does not name the JWKS: %v", err)
	}
}

func TestJWKSRotation(t *testing.T) {
	k := keys()
	j := newJWKSServer(t, rsaJWK("k1", k.rsa))
	s, logs := jwksSource(t, j, "RS256", "ES256", "EdDSA")
	if n := j.hits.Load(); n != 1 {
		t.Fatalf("JWKS fetched %d times at start, want 1", n)
	}
	old := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), withKid("k1"))
	if id, err := s.Identify(cookieRequest(old)); err != nil || id.Subject != "site:u-123" {
		t.Fatalf("k1: %+v %v", id, err)
	}
	noKid := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil)
	if _, err := s.Identify(cookieRequest(noKid)); err != nil {
		t.Fatalf("token without kid: %v", err)
	}

	// The website rotates to new keys; k1 is retired.
	j.set(http.StatusOK, ecJWK("k2", k.ec), edJWK("k3", k.ed))
	fresh := sign(t, gojwt.SigningMethodES256, k.ec, claimsAt(), withKid("k2"))
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for range 20 {
		wg.Go(func() {
			_, err := s.Identify(cookieRequest(fresh))
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("new kid after rotation: %v", err)
		}
	}
	if n := j.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (one refresh for the unknown kid)", n)
	}
	ed := sign(t, gojwt.SigningMethodEdDSA, k.ed, claimsAt(), withKid("k3"))
	if _, err := s.Identify(cookieRequest(ed)); err != nil {
		t.Fatalf("k3: %v", err)
	}

	// The retired key and unknown kids are refused (401), and the refresh
	// is rate limited: no further fetch.
	_, err := s.Identify(cookieRequest(old))
	checkRejected(t, err, gojwt.ErrTokenUnverifiable, old, logs)
	bogus := sign(t, gojwt.SigningMethodRS256, k.rsa2, claimsAt(), withKid("nope"))
	_, err = s.Identify(cookieRequest(bogus))
	checkRejected(t, err, gojwt.ErrTokenUnverifiable, bogus, logs)
	if n := j.hits.Load(); n != 2 {
		t.Fatalf("JWKS fetched %d times, want 2 (rate limited)", n)
	}
	// A kid pointing at a key of another type is refused.
	mixed := sign(t, gojwt.SigningMethodES256, k.ec, claimsAt(), withKid("k3"))
	_, err = s.Identify(cookieRequest(mixed))
	checkRejected(t, err, nil, mixed, logs)
}

// handlerTransport serves requests in memory, so a JWKS can be served inside
// a synctest bubble.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	return rec.Result(), nil
}

// TestJWKSRotationBurst: right after a rotation, many visitors present the
// new kid at once while the refresh is still running. All of them must be
// recognised, with one refresh (the rate limiter would refuse a second).
func TestJWKSRotationBurst(t *testing.T) {
	k := keys()
	synctest.Test(t, func(t *testing.T) {
		var (
			mu   sync.Mutex
			body = mustJSON(map[string]any{"keys": []any{rsaJWK("k1", k.rsa)}})
			gate chan struct{}
			hits atomic.Int64
		)
		h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			hits.Add(1)
			mu.Lock()
			b, g := body, gate
			mu.Unlock()
			if g != nil {
				<-g
			}
			_, _ = io.WriteString(w, b)
		})
		s, _ := newSource(t, Options{Algorithms: []string{"RS256", "ES256"}, JWKSURL: "https://www.example.com/jwks.json",
			HTTPClient: &http.Client{Transport: handlerTransport{h}}})

		g := make(chan struct{})
		mu.Lock()
		body, gate = mustJSON(map[string]any{"keys": []any{ecJWK("k2", k.ec)}}), g
		mu.Unlock()
		fresh := sign(t, gojwt.SigningMethodES256, k.ec, claimsAt(), withKid("k2"))
		var wg sync.WaitGroup
		errs := make([]error, 20)
		for i := range errs {
			wg.Go(func() { _, errs[i] = s.Identify(cookieRequest(fresh)) })
		}
		synctest.Wait() // one refresh in flight, everybody waiting
		if n := hits.Load(); n != 2 {
			t.Fatalf("%d JWKS fetches in flight, want 2 (start + one refresh)", n)
		}
		close(g)
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("visitor %d: %v", i, err)
			}
		}
		if n := hits.Load(); n != 2 {
			t.Fatalf("%d JWKS fetches, want 2", n)
		}
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestJWKSKeyConstraints(t *testing.T) {
	k := keys()
	enc := rsaJWK("enc", k.rsa)
	enc["use"] = "enc"
	j := newJWKSServer(t, enc, rsaJWK("rs", k.rsa2))
	s, logs := jwksSource(t, j, "RS256", "PS256")
	for name, tok := range map[string]string{
		"encryption key":               sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), withKid("enc")),
		"encryption key, no kid":       sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil),
		"JWK alg RS256, token PS256":   sign(t, gojwt.SigningMethodPS256, k.rsa2, claimsAt(), withKid("rs")),
		"JWK alg RS256, PS256 no kid":  sign(t, gojwt.SigningMethodPS256, k.rsa2, claimsAt(), nil),
		"HS256 keyed with JWK modulus": sign(t, gojwt.SigningMethodHS256, k.rsa2.N.Bytes(), claimsAt(), withKid("rs")),
	} {
		t.Run(name, func(t *testing.T) {
			_, err := s.Identify(cookieRequest(tok))
			checkRejected(t, err, nil, tok, logs)
		})
	}
}

func TestJWKSDown(t *testing.T) {
	k := keys()
	k1 := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), withKid("k1"))
	noKid := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil)
	tests := []struct {
		name    string
		breakIt func(*jwksServer)
	}{
		{"connection refused", func(j *jwksServer) { j.Close() }},
		{"503", func(j *jwksServer) { j.setRaw(http.StatusServiceUnavailable, "down") }},
		{"garbage", func(j *jwksServer) { j.setRaw(http.StatusOK, "<html>") }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			j := newJWKSServer(t, rsaJWK("k1", k.rsa))
			tc.breakIt(j)
			s, logs := jwksSource(t, j, "RS256")
			if !strings.Contains(logs.String(), "JWKS fetch failed") {
				t.Errorf("startup failure not logged: %s", logs)
			}
			for _, tok := range []string{k1, noKid} {
				_, err := s.Identify(cookieRequest(tok))
				checkCannotTell(t, err)
			}
			// Tokens refused before any key is needed stay 401.
			hs := sign(t, gojwt.SigningMethodHS256, k.rsaPEM, claimsAt(), withKid("k1"))
			_, err := s.Identify(cookieRequest(hs))
			checkRejected(t, err, gojwt.ErrTokenSignatureInvalid, hs, logs)
			if _, err := s.Identify(cookieRequest("garbage.garbage")); !errors.Is(err, identity.ErrNotLoggedIn) {
				t.Errorf("malformed token while JWKS down: %v", err)
			}
		})
	}
}

func TestJWKSOutageKeepsCachedKeys(t *testing.T) {
	k := keys()
	j := newJWKSServer(t, rsaJWK("k1", k.rsa))
	s, _ := jwksSource(t, j, "RS256", "ES256")
	j.setRaw(http.StatusBadGateway, "")
	k1 := sign(t, gojwt.SigningMethodRS256, k.rsa, claimsAt(), withKid("k1"))
	if _, err := s.Identify(cookieRequest(k1)); err != nil {
		t.Fatalf("cached key during outage: %v", err)
	}
	k2 := sign(t, gojwt.SigningMethodES256, k.ec, claimsAt(), withKid("k2"))
	_, err := s.Identify(cookieRequest(k2))
	checkCannotTell(t, err)

	// Recovery: the next permitted refresh finds k2.
	j.set(http.StatusOK, rsaJWK("k1", k.rsa), ecJWK("k2", k.ec))
	s.unknown.SetLimit(rate.Inf)
	if _, err := s.Identify(cookieRequest(k2)); err != nil {
		t.Fatalf("after recovery: %v", err)
	}
}

// FuzzIdentify feeds arbitrary cookie and bearer values: Identify never
// panics, only answers identities or ErrNotLoggedIn for a static key, and
// never logs the token.
func FuzzIdentify(f *testing.F) {
	k := keys()
	seeds := []string{
		sign(f, gojwt.SigningMethodRS256, k.rsa, claimsAt(), nil),
		sign(f, gojwt.SigningMethodRS256, k.rsa, claimsAt(func(c gojwt.MapClaims) { c["exp"] = 1 }), nil),
		sign(f, gojwt.SigningMethodHS256, k.rsaPEM, claimsAt(), nil),
		sign(f, gojwt.SigningMethodNone, gojwt.UnsafeAllowNoneSignatureType, claimsAt(), nil),
		sign(f, gojwt.SigningMethodRS256, k.rsa, claimsAt(func(c gojwt.MapClaims) { c["sub"] = 1.5 }), map[string]any{"kid": 7}),
		"", "a.b.c", "..", "e30.e30.", strings.Repeat("A", MaxTokenSize+1),
	}
	for _, s := range seeds {
		f.Add(s, false)
		f.Add(s, true)
	}
	s, logs := newSource(f, Options{Algorithms: []string{"RS256"}, PublicKeyPEM: k.rsaPEM})
	f.Fuzz(func(t *testing.T, tok string, bearer bool) {
		logs.Reset()
		r := httptest.NewRequest("GET", "/", nil)
		if bearer {
			r.Header.Set("Authorization", "Bearer "+tok)
		} else {
			r.Header.Set("Cookie", testCookie+"="+tok)
		}
		sent, _ := s.token(r)
		id, err := s.Identify(r)
		if err == nil {
			if !strings.HasPrefix(id.Subject, "site:") {
				t.Fatalf("subject %q", id.Subject)
			}
		} else if !errors.Is(err, identity.ErrNotLoggedIn) {
			t.Fatalf("static-key source answered a non-401 error: %v", err)
		}
		if out := logs.String(); len(sent) >= 24 && strings.Count(sent, ".") == 2 && strings.Contains(out, sent) {
			t.Fatalf("token logged: %q", out)
		}
	})
}
