package saml

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/testing/samltest"
)

// The SP metadata names the entity ID, the ACS (HTTP-POST only), single
// logout with three bindings, one certificate for signing and encryption,
// the NameID format, and says requests are signed and assertions must be.
func TestSPMetadata(t *testing.T) {
	rg := newRig(t, rigOptions{})
	resp, body := rg.get(rg.client, rg.rc.URL+"/auth/idp/metadata")
	if ct := resp.Header.Get("Content-Type"); ct != "application/samlmetadata+xml" {
		t.Fatalf("Content-Type %q", ct)
	}
	ed := parseSPMetadata(t, []byte(body))
	if ed.EntityID != rg.rc.URL+"/auth/idp/metadata" || len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("metadata %+v", ed)
	}
	d := ed.SPSSODescriptors[0]
	if len(d.AssertionConsumerServices) != 1 || d.AssertionConsumerServices[0].Binding != crewsaml.HTTPPostBinding || d.AssertionConsumerServices[0].Location != rg.rc.URL+"/auth/idp/acs" {
		t.Fatalf("ACS %+v", d.AssertionConsumerServices)
	}
	var bindings []string
	for _, e := range d.SingleLogoutServices {
		if e.Location != rg.rc.URL+"/auth/idp/slo" {
			t.Fatalf("SLO %+v", e)
		}
		bindings = append(bindings, e.Binding)
	}
	if strings.Join(bindings, " ") != crewsaml.HTTPRedirectBinding+" "+crewsaml.HTTPPostBinding+" "+crewsaml.SOAPBinding {
		t.Fatalf("SLO bindings %v", bindings)
	}
	if d.AuthnRequestsSigned == nil || !*d.AuthnRequestsSigned || d.WantAssertionsSigned == nil || !*d.WantAssertionsSigned || len(d.KeyDescriptors) != 2 {
		t.Fatalf("descriptor %+v", d)
	}
	if len(d.NameIDFormats) != 1 || d.NameIDFormats[0] != crewsaml.EmailAddressNameIDFormat {
		t.Fatalf("NameID formats %v", d.NameIDFormats)
	}
}

// Routes answer only their methods; HEAD only on the metadata.
func TestRoutesAndMethods(t *testing.T) {
	rg := newRig(t, rigOptions{})
	for _, c := range []struct {
		method, path string
		want         int
	}{
		{"HEAD", "metadata", 200},
		{"HEAD", "login", 405},
		{"POST", "login", 405},
		{"GET", "acs", 405},
		{"PUT", "slo", 405},
		{"GET", "nope", 404},
	} {
		req, _ := http.NewRequest(c.method, rg.rc.URL+"/auth/idp/"+c.path, nil)
		resp, err := rg.noFollow().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s %s: %d (Cache-Control %q), want %d", c.method, c.path, resp.StatusCode, resp.Header.Get("Cache-Control"), c.want)
		}
	}
}

// With Secure cookies (an https public_url) the state cookie is
// SameSite=None, so that the IdP's cross-site POST to the ACS carries it.
func TestStateCookieCrossSite(t *testing.T) {
	rg := newRig(t, rigOptions{mod: func(o *Options) { o.SecureCookies = true }})
	resp, _ := rg.get(rg.noFollow(), rg.rc.URL+"/auth/idp/login")
	for _, c := range resp.Cookies() {
		if c.Name == "rcsso_saml_idp" {
			if !c.Secure || c.SameSite != http.SameSiteNoneMode || !c.HttpOnly {
				t.Fatalf("state cookie %+v", c)
			}
			return
		}
	}
	t.Fatal("no state cookie")
}

// metadataServer serves the IdP's metadata, or what body says.
func metadataServer(t *testing.T, idp *samltest.IdP) (*httptest.Server, *atomic.Pointer[[]byte], *atomic.Int64) {
	t.Helper()
	var body atomic.Pointer[[]byte]
	var hits atomic.Int64
	good := idp.Metadata(t)
	body.Store(&good)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write(*body.Load())
	}))
	t.Cleanup(srv.Close)
	return srv, &body, &hits
}

// A failed reading of the metadata keeps the previous one (logins go on);
// the next is due a minute later. A signature that does not verify (the
// IdP rotated its key) also makes a reading due within a minute; the new
// key is then used.
func TestMetadataRefresh(t *testing.T) {
	idp := samltest.Start(t, "127.0.0.1")
	srv, body, hits := metadataServer(t, idp)
	start := time.Now()
	clock := dsig.NewFakeClockAt(start)
	sp := samltest.Keys(t, "test-sp")
	s, err := New(context.Background(), Options{Name: "idp", BaseURL: "https://rcsso.example", IDPMetadataURL: srv.URL, Key: sp.Key, Certificate: sp.Cert,
		NameIDFormat: crewsaml.EmailAddressNameIDFormat, AllowIDPInitiated: true, Sessions: newRigSessions(), Once: newOnce(), StateKey: testKey(),
		Logger: quietLogger(), Clock: clock})
	if err != nil {
		t.Fatal(err)
	}
	s.refreshDone = make(chan struct{}, 1)
	garbage := []byte("<html>maintenance</html>")
	body.Store(&garbage)
	if err := s.Refresh(t.Context()); err == nil {
		t.Fatal("garbage metadata accepted")
	}
	if got := time.Unix(0, s.nextLoad.Load()); !got.Equal(start.Add(metadataRetry)) {
		t.Fatalf("next reading at %v, want a minute later", got)
	}
	forge := func(kp samltest.KeyPair) url.Values {
		f := forgeSigned()
		f.Keys, f.Now, f.Audience, f.ACS = &kp, start, s.EntityID(), "https://rcsso.example/auth/idp/acs"
		f.NameID = alice.Email
		return url.Values{"SAMLResponse": {b64(idp.Forge(t, f))}}
	}
	if _, err := s.consume(t.Context(), forge(idp.Keys), nil); err != nil {
		t.Fatalf("login with the kept metadata: %v", err)
	}

	// The IdP rotates its key; its metadata names the new certificate.
	rotated := samltest.Keys(t, "rotated-idp")
	idp.Server.IDP.Key, idp.Server.IDP.Certificate = rotated.Key, rotated.Cert
	newMeta := idp.Metadata(t)
	body.Store(&newMeta)
	s.install(s.sp.Load().IDPMetadata) // as if just read: next reading in an hour
	if _, err := s.consume(t.Context(), forge(rotated), nil); err == nil {
		t.Fatal("a signature by a key not in the metadata was accepted")
	}
	before := hits.Load()
	clock = dsig.NewFakeClockAt(start.Add(metadataRetry))
	s.cfg.Clock = clock
	s.serviceProvider() // a request a minute later starts the reading
	<-s.refreshDone
	if hits.Load() != before+1 {
		t.Fatalf("metadata read %d times, want once", hits.Load()-before)
	}
	if _, err := s.consume(t.Context(), forge(rotated), nil); err != nil {
		t.Fatalf("login with the rotated key after the refresh: %v", err)
	}
}

// Metadata rcsso cannot use is refused at start, naming what is wrong.
func TestMetadataRefused(t *testing.T) {
	idp := samltest.Start(t, "127.0.0.1")
	good := string(idp.Metadata(t))
	sp := samltest.Keys(t, "test-sp")
	for _, c := range []struct {
		name, doc, want string
	}{
		{"not metadata", "<html/>", "IdP metadata"},
		{"an SP's metadata", strings.ReplaceAll(good, "IDPSSODescriptor", "SPSSODescriptor"), "IDPSSODescriptor"},
		{"javascript SSO", strings.Replace(good, idp.URL+"/sso", "javascript:alert(1)", -1), "javascript"},
		{"no signing key", removeKeyDescriptors(good), "no signing certificate"},
		{"too large", good + strings.Repeat(" ", maxMetadata), "larger than"},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "idp.xml")
			if err := os.WriteFile(p, []byte(c.doc), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := New(context.Background(), Options{Name: "idp", BaseURL: "https://rcsso.example", IDPMetadataFile: p, Key: sp.Key, Certificate: sp.Cert,
				Sessions: newRigSessions(), Once: newOnce(), StateKey: testKey()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}

func removeKeyDescriptors(doc string) string {
	for {
		i := strings.Index(doc, "<KeyDescriptor")
		if i < 0 {
			return doc
		}
		j := strings.Index(doc[i:], "</KeyDescriptor>")
		doc = doc[:i] + doc[i+j+len("</KeyDescriptor>"):]
	}
}

// A metadata URL redirecting to plain http elsewhere is not followed.
func TestMetadataRedirectToHTTPRefused(t *testing.T) {
	if err := checkMetadataRedirect(httptest.NewRequest("GET", "http://idp.example/metadata", nil), nil); err == nil {
		t.Fatal("redirect to plain http accepted")
	}
	if err := checkMetadataRedirect(httptest.NewRequest("GET", "https://idp.example/metadata", nil), nil); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	idp := samltest.Start(t, "127.0.0.1")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	sp, other := samltest.Keys(t, "test-sp"), samltest.Keys(t, "attacker")
	keyFile, certFile, otherCert := write("sp.key", sp.KeyPEM), write("sp.crt", sp.CertPEM), write("other.crt", other.CertPEM)
	metaFile := writeIdPMetadata(t, idp)
	valid := func() *Config {
		return &Config{IDPMetadataFile: metaFile, KeyFile: keyFile, CertificateFile: certFile}
	}
	b := config.Block{Path: "identity[0]"}
	if err := valid().Validate(b); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no metadata", func(c *Config) { c.IDPMetadataFile = "" }, "identity[0].idp_metadata_url: give the IdP's metadata URL"},
		{"both metadata", func(c *Config) { c.IDPMetadataURL = "https://idp.example/metadata" }, "both set"},
		{"plain http metadata", func(c *Config) { c.IDPMetadataFile, c.IDPMetadataURL = "", "http://idp.example/metadata" }, "must be an https URL"},
		{"no key", func(c *Config) { c.KeyFile = "" }, "identity[0].key_file: the SP needs an RSA key"},
		{"key and certificate do not match", func(c *Config) { c.CertificateFile = otherCert }, "identity[0].key_file: tls: private key does not match public key"},
		{"unknown NameID format", func(c *Config) { c.NameIDFormat = "nickname" }, "identity[0].name_id_format: unknown format"},
		{"transient NameID as subject", func(c *Config) { c.NameIDFormat = "transient" }, "cannot be the subject"},
		{"refresh too often", func(c *Config) { c.IDPMetadataRefresh = time.Second }, "identity[0].idp_metadata_refresh"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := valid()
			c.mod(cfg)
			err := cfg.Validate(b)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
	cfg := valid()
	cfg.NameIDFormat, cfg.Claims.Subject = "transient", "uid"
	if err := cfg.Validate(b); err != nil {
		t.Fatalf("transient NameID with an attribute subject: %v", err)
	}
}

// Config.Open builds a working source: ACS and entity ID below public_url.
func TestConfigOpen(t *testing.T) {
	idp := samltest.Start(t, "127.0.0.1")
	dir := t.TempDir()
	sp := samltest.Keys(t, "test-sp")
	_ = os.WriteFile(filepath.Join(dir, "k"), sp.KeyPEM, 0o600)
	_ = os.WriteFile(filepath.Join(dir, "c"), sp.CertPEM, 0o600)
	cfg := &Config{IDPMetadataURL: idp.MetadataURL(), KeyFile: filepath.Join(dir, "k"), CertificateFile: filepath.Join(dir, "c"), Label: "Log in with Example SSO"}
	if err := cfg.Validate(config.Block{Path: "identity[0]"}); err != nil {
		t.Fatal(err)
	}
	pub, _ := url.Parse("https://sso.example.com/base/")
	src, err := cfg.Open(context.Background(), identity.Deps{Name: "corp", Store: newOnce(), Sessions: newRigSessions(), PublicURL: pub,
		Key: func(string) []byte { return testKey() }, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s := src.(*Source)
	if s.EntityID() != "https://sso.example.com/base/auth/corp/metadata" || s.acsURL.String() != "https://sso.example.com/base/auth/corp/acs" ||
		s.LoginLabel() != "Log in with Example SSO" || s.cookiePath != "/base/auth/corp/" {
		t.Fatalf("source %s %s %q %s", s.EntityID(), s.acsURL.String(), s.LoginLabel(), s.cookiePath)
	}
}

// The state cookie: sealed, bound to the source, expiring; never panics.
func TestStateCodec(t *testing.T) {
	c, _ := newStateCodec(testKey(), "idp")
	other, _ := newStateCodec(testKey(), "other")
	now := time.Now()
	st := loginState{State: "s", RequestID: "id-1", ReturnTo: "https://rcsso.example/popup-done", IssuedAt: now.Unix()}
	v, err := c.encode(st)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := c.decode(v, now); err != nil || got != st {
		t.Fatalf("decode: %+v %v", got, err)
	}
	tampered := []byte(v)
	tampered[len(tampered)/2] ^= 1
	for name, fn := range map[string]func() error{
		"other source": func() error { _, err := other.decode(v, now); return err },
		"expired":      func() error { _, err := c.decode(v, now.Add(StateTTL+time.Second)); return err },
		"tampered":     func() error { _, err := c.decode(string(tampered), now); return err },
		"newline":      func() error { _, err := c.decode(v[:4]+"\n"+v[4:], now); return err },
		"empty":        func() error { _, err := c.decode("", now); return err },
		"huge":         func() error { _, err := c.decode(strings.Repeat("A", maxStateCookie+1), now); return err },
	} {
		if err := fn(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if !bytes.Contains([]byte(v), []byte("")) || strings.Contains(v, "rcsso.example") {
		t.Fatal("the return_to is readable in the cookie")
	}
}
