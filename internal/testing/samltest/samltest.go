// Package samltest gives tests a SAML 2.0 identity provider (IdP): the
// samlidp server of github.com/crewjam/saml (login form, HTTP-Redirect and
// HTTP-POST bindings, IdP-initiated logins through shortcuts, single logout
// propagated to every service provider of a session) on a loopback port,
// with users, service providers and shortcuts added in Go, plus Forge, which
// builds responses signed (or not) with the IdP's key for hostile-input
// tests. Test support only; production code never imports it.
package samltest

import (
	"bytes"
	"compress/flate"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"embed"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"html"
	"html/template"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"
	"golang.org/x/crypto/bcrypt"
)

// KeyPair is an RSA key and a self-signed certificate for it, also in PEM.
type KeyPair struct {
	Key     *rsa.PrivateKey
	Cert    *x509.Certificate
	KeyPEM  []byte // PKCS #8 "PRIVATE KEY"
	CertPEM []byte // "CERTIFICATE"
}

var (
	keysMu sync.Mutex
	keys   = map[string]KeyPair{}
)

// fixedKeys are the key pairs of the test IdP and SP, made once with
// openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=<name>:
// generating RSA keys at every start of a fuzzing worker, whose crypto is
// instrumented, takes many seconds. Test keys, protecting nothing.
//
//go:embed testdata/*.key testdata/*.crt
var fixedKeys embed.FS

// Keys returns the 2048-bit RSA key pair named name: test-idp and test-sp
// from testdata, any other generated once per test binary, with a
// certificate whose subject is CN=name, valid from an hour ago for ten
// years.
func Keys(t testing.TB, name string) KeyPair {
	t.Helper()
	keysMu.Lock()
	defer keysMu.Unlock()
	if kp, ok := keys[name]; ok {
		return kp
	}
	if keyPEM, err := fixedKeys.ReadFile("testdata/" + name + ".key"); err == nil {
		certPEM, err := fixedKeys.ReadFile("testdata/" + name + ".crt")
		if err != nil {
			t.Fatal(err)
		}
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			t.Fatal(err)
		}
		cert, err := x509.ParseCertificate(pair.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		kp := KeyPair{Key: pair.PrivateKey.(*rsa.PrivateKey), Cert: cert, KeyPEM: keyPEM, CertPEM: certPEM}
		keys[name] = kp
		return kp
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(10, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	kp := KeyPair{Key: key, Cert: cert,
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}),
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
	keys[name] = kp
	return kp
}

// IdP is a running test identity provider.
type IdP struct {
	// URL is the base URL browsers use, e.g. http://idp.example.test:PORT:
	// the metadata names its endpoints below it.
	URL string
	// LocalURL is the same server as http://127.0.0.1:PORT, for Go clients
	// that cannot resolve URL's host.
	LocalURL string
	// Server is the samlidp server.
	Server *samlidp.Server
	// Keys sign the IdP's assertions, responses and logout messages.
	Keys KeyPair
}

// Start starts an IdP on a loopback port; browsers reach it as
// http://host:PORT (host "127.0.0.1" for Go clients only). It stops when
// the test ends.
func Start(t testing.TB, host string) *IdP { return start(t, host, false) }

// StartTLS starts an IdP that browsers reach as https://host:PORT
// (httptest's certificate: the browser must ignore certificate errors),
// and Go clients as plain http on another loopback port, LocalURL.
func StartTLS(t testing.TB, host string) *IdP { return start(t, host, true) }

func start(t testing.TB, host string, useTLS bool) *IdP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	browserLn := ln
	if useTLS {
		if browserLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	_, port, _ := net.SplitHostPort(browserLn.Addr().String())
	kp := Keys(t, "test-idp")
	scheme := "http"
	if useTLS {
		scheme = "https"
	}
	u, _ := url.Parse(scheme + "://" + host + ":" + port)
	srv, err := samlidp.New(samlidp.Options{
		URL:         *u,
		Key:         kp.Key,
		Certificate: kp.Cert,
		Store:       &samlidp.MemoryStore{},
		Logger:      log.New(testWriter{t}, "samlidp: ", 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	i := &IdP{URL: u.String(), LocalURL: "http://" + ln.Addr().String(), Server: srv, Keys: kp}
	hs := &http.Server{Handler: i.handler(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	t.Cleanup(func() { _ = hs.Close() })
	if useTLS {
		ts := httptest.NewUnstartedServer(i.handler())
		ts.Listener = browserLn
		ts.StartTLS()
		t.Cleanup(ts.Close)
	}
	return i
}

// handler is samlidp's, except that a browser without a session that
// arrives at /sso (SP-initiated) or /login/<shortcut> (IdP-initiated) gets
// a login form that creates the session and then resumes that same request,
// as IdPs such as Keycloak do. (samlidp's own form re-posts an
// HTTP-Redirect AuthnRequest without its query string signature, which it
// then refuses, and ends an IdP-initiated login on a JSON page.)
func (i *IdP) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /samltest/login", i.loginSubmit)
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && (r.URL.Path == "/sso" || strings.HasPrefix(r.URL.Path, "/login/")) && !i.hasSession(r) {
			i.loginPage(w, r.URL.RequestURI(), "")
			return
		}
		i.Server.ServeHTTP(w, r)
	}))
	return mux
}

func (i *IdP) hasSession(r *http.Request) bool {
	c, err := r.Cookie("session")
	if err != nil {
		return false
	}
	var s saml.Session
	return i.Server.Store.Get("/sessions/"+c.Value, &s) == nil
}

var loginPage = template.Must(template.New("login").Parse(`<!doctype html>
<html><head><title>Test IdP login</title></head><body><p>{{.Toast}}</p>
<form id="samltest-login" method="post" action="/samltest/login">
<input id="user" type="text" name="user" value="" />
<input id="password" type="password" name="password" value="" />
<input type="hidden" name="next" value="{{.Next}}" />
<input id="samltest-submit" type="submit" value="Log in" />
</form></body></html>
`))

func (i *IdP) loginPage(w http.ResponseWriter, next, toast string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginPage.Execute(w, struct{ Next, Toast string }{next, toast})
}

// loginSubmit checks the credentials with samlidp's POST /login, keeps the
// session cookie it sets, and sends the browser back to next (a path).
func (i *IdP) loginSubmit(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	next := r.PostForm.Get("next")
	if !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		http.Error(w, "bad next", http.StatusBadRequest)
		return
	}
	form := url.Values{"user": {r.PostForm.Get("user")}, "password": {r.PostForm.Get("password")}}
	req := httptest.NewRequest(http.MethodPost, "/login", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	i.Server.ServeHTTP(rec, req)
	cookies := rec.Result().Cookies()
	if rec.Code != http.StatusOK || len(cookies) == 0 {
		i.loginPage(w, next, "Invalid username or password")
		return
	}
	for _, c := range cookies {
		http.SetCookie(w, c)
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// EntityID is the IdP's entity ID (its metadata URL), the Issuer of what
// it signs.
func (i *IdP) EntityID() string { return i.URL + "/metadata" }

// MetadataURL is where a Go client reads the IdP's metadata.
func (i *IdP) MetadataURL() string { return i.LocalURL + "/metadata" }

// Metadata returns the IdP's metadata XML.
func (i *IdP) Metadata(t testing.TB) []byte {
	t.Helper()
	b, err := xml.MarshalIndent(i.Server.IDP.Metadata(), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// User is an account at the IdP. The assertion's NameID is Email (format
// emailAddress); attributes uid (Name), cn (CommonName), mail (Email) and
// eduPersonAffiliation (Groups, one value each) by their friendly names.
type User struct {
	Name, Password, Email, CommonName string
	Groups                            []string
}

// AddUser creates or replaces an account.
func (i *IdP) AddUser(t testing.TB, u User) {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(u.Password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	err = i.Server.Store.Put("/users/"+u.Name, samlidp.User{Name: u.Name, HashedPassword: hash, Email: u.Email,
		CommonName: u.CommonName, Groups: u.Groups})
	if err != nil {
		t.Fatal(err)
	}
}

// AddServiceProvider registers a service provider from its metadata XML
// under id.
func (i *IdP) AddServiceProvider(t testing.TB, id string, metadata []byte) {
	t.Helper()
	i.admin(t, "/services/"+id, metadata)
}

// AddShortcut adds an IdP-initiated login: a browser at URL/login/<name>
// is logged in (after the login form, without a session) and sent to the
// service provider spEntityID with relayState.
func (i *IdP) AddShortcut(t testing.TB, name, spEntityID, relayState string) {
	t.Helper()
	b, _ := json.Marshal(samlidp.Shortcut{Name: name, ServiceProviderID: spEntityID, RelayState: &relayState})
	i.admin(t, "/shortcuts/"+name, b)
}

func (i *IdP) admin(t testing.TB, path string, body []byte) {
	t.Helper()
	rec := httptest.NewRecorder()
	i.Server.ServeHTTP(rec, httptest.NewRequest(http.MethodPut, path, bytes.NewReader(body)))
	if rec.Code/100 != 2 {
		t.Fatalf("samlidp PUT %s: %d %s", path, rec.Code, rec.Body)
	}
}

// Forge describes a Response to build and sign with the IdP's key (or
// another one) whatever the SAML rules say, for tests of what a service
// provider refuses. Zero fields take the defaults of a valid response.
type Forge struct {
	// Audience is the service provider's entity ID (the
	// AudienceRestriction); ACS its assertion consumer service URL (the
	// Response's Destination and the bearer confirmation's Recipient).
	Audience, ACS string
	// Recipient replaces ACS in the bearer confirmation when set.
	Recipient string
	// InResponseTo names the AuthnRequest answered ("" for IdP-initiated).
	InResponseTo string
	// NameID and its Format (default emailAddress).
	NameID, NameIDFormat string
	// Attributes by Name.
	Attributes map[string][]string
	// Now is the IdP's clock (default time.Now()): IssueInstant; the
	// assertion is valid from Now-1m to Now+5m.
	Now time.Time
	// Issuer replaces the IdP's entity ID.
	Issuer string
	// AssertionID replaces the random assertion ID.
	AssertionID string
	// SignAssertion and SignResponse choose what carries a signature.
	SignAssertion, SignResponse bool
	// Keys replace the IdP's signing key and certificate.
	Keys *KeyPair
	// SignatureMethod replaces RSA-SHA256 (with its digest).
	SignatureMethod string
	// Status replaces the Success status code.
	Status string
	// Edit, when set, changes the assertion before it is signed;
	// EditElement then changes its XML.
	Edit        func(*saml.Assertion)
	EditElement func(*etree.Element)
}

// Forge builds the Response f describes and returns its XML.
func (i *IdP) Forge(t testing.TB, f Forge) []byte {
	t.Helper()
	now := f.Now
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Millisecond)
	issuer := f.Issuer
	if issuer == "" {
		issuer = i.EntityID()
	}
	recipient := f.Recipient
	if recipient == "" {
		recipient = f.ACS
	}
	format := f.NameIDFormat
	if format == "" {
		format = string(saml.EmailAddressNameIDFormat)
	}
	id := f.AssertionID
	if id == "" {
		id = RandomID()
	}
	kp := i.Keys
	if f.Keys != nil {
		kp = *f.Keys
	}
	var attrs []saml.Attribute
	for name, values := range f.Attributes {
		a := saml.Attribute{Name: name, NameFormat: "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"}
		for _, v := range values {
			a.Values = append(a.Values, saml.AttributeValue{Type: "xs:string", Value: v})
		}
		attrs = append(attrs, a)
	}
	a := &saml.Assertion{
		ID: id, IssueInstant: now, Version: "2.0",
		Issuer: saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: issuer},
		Subject: &saml.Subject{
			NameID: &saml.NameID{Format: format, Value: f.NameID},
			SubjectConfirmations: []saml.SubjectConfirmation{{
				Method: "urn:oasis:names:tc:SAML:2.0:cm:bearer",
				SubjectConfirmationData: &saml.SubjectConfirmationData{
					InResponseTo: f.InResponseTo, NotOnOrAfter: now.Add(5 * time.Minute), Recipient: recipient,
				},
			}},
		},
		Conditions: &saml.Conditions{
			NotBefore: now.Add(-time.Minute), NotOnOrAfter: now.Add(5 * time.Minute),
			AudienceRestrictions: []saml.AudienceRestriction{{Audience: saml.Audience{Value: f.Audience}}},
		},
		AuthnStatements: []saml.AuthnStatement{{
			AuthnInstant: now, SessionIndex: "session-" + id,
			AuthnContext: saml.AuthnContext{AuthnContextClassRef: &saml.AuthnContextClassRef{
				Value: "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"}},
		}},
		AttributeStatements: []saml.AttributeStatement{{Attributes: attrs}},
	}
	if f.Edit != nil {
		f.Edit(a)
	}
	assertionEl := a.Element()
	if f.EditElement != nil {
		f.EditElement(assertionEl)
	}
	if f.SignAssertion {
		sig := signature(t, kp, f.SignatureMethod, assertionEl)
		// Signature goes after Issuer (saml-core §2.3.3).
		assertionEl.InsertChildAt(assertionEl.SelectElement("Issuer").Index()+1, sig)
	}
	resp := &saml.Response{
		ID: RandomID(), InResponseTo: f.InResponseTo, Destination: f.ACS, IssueInstant: now, Version: "2.0",
		Issuer: &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: issuer},
		Status: saml.Status{StatusCode: saml.StatusCode{Value: saml.StatusSuccess}},
	}
	if f.Status != "" {
		resp.Status.StatusCode.Value = f.Status
	}
	respEl := resp.Element()
	respEl.AddChild(assertionEl)
	if f.SignResponse {
		resp.Signature = signature(t, kp, f.SignatureMethod, respEl)
		respEl = resp.Element()
		respEl.AddChild(assertionEl)
	}
	return Serialize(t, respEl)
}

// signature returns an enveloped signature of el (which must carry its ID
// attribute) made with kp, RSA-SHA256 (or method) over exclusive canonical
// XML, as crewjam/saml's IdentityProvider signs.
func signature(t testing.TB, kp KeyPair, method string, el *etree.Element) *etree.Element {
	t.Helper()
	ctx := SigningContext(kp)
	if method != "" {
		if err := ctx.SetSignatureMethod(method); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := ctx.SignEnveloped(el)
	if err != nil {
		t.Fatal(err)
	}
	return signed.ChildElements()[len(signed.ChildElements())-1]
}

// SigningContext signs as the IdP does: RSA-SHA256, exclusive C14N.
func SigningContext(kp KeyPair) *dsig.SigningContext {
	ctx := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{
		Certificate: [][]byte{kp.Cert.Raw}, PrivateKey: kp.Key, Leaf: kp.Cert}))
	ctx.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
	_ = ctx.SetSignatureMethod(dsig.RSASHA256SignatureMethod)
	return ctx
}

// Serialize writes el as an XML document.
func Serialize(t testing.TB, el *etree.Element) []byte {
	t.Helper()
	doc := etree.NewDocument()
	doc.SetRoot(el)
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// LogoutRequest builds a LogoutRequest from the IdP for nameID, addressed
// to destination (the service provider's single logout URL), issued now.
// Sign it with SignEnveloped (HTTP-POST) or RedirectURL (HTTP-Redirect).
func (i *IdP) LogoutRequest(destination, nameID string, now time.Time) *saml.LogoutRequest {
	return &saml.LogoutRequest{
		ID: RandomID(), Version: "2.0", IssueInstant: now.UTC().Truncate(time.Millisecond), Destination: destination,
		Issuer: &saml.Issuer{Format: "urn:oasis:names:tc:SAML:2.0:nameid-format:entity", Value: i.EntityID()},
		NameID: &saml.NameID{Format: string(saml.EmailAddressNameIDFormat), Value: nameID},
	}
}

// SignEnveloped returns the XML of r with an enveloped signature by kp (nil:
// unsigned).
func SignEnveloped(t testing.TB, kp *KeyPair, r *saml.LogoutRequest) []byte {
	t.Helper()
	el := r.Element()
	if kp != nil {
		r.Signature = signature(t, *kp, "", el)
		el = r.Element()
	}
	return Serialize(t, el)
}

// RedirectURL returns r with the HTTP-Redirect binding (DEFLATE, base64,
// a query string signature by kp with RSA-SHA256; kp nil: unsigned).
func RedirectURL(t testing.TB, kp *KeyPair, r *saml.LogoutRequest, relayState string) string {
	t.Helper()
	return RedirectURLOf(t, kp, r.Destination, Serialize(t, r.Element()), relayState)
}

// RedirectURLOf is RedirectURL for a SAMLRequest given as XML, sent to
// destination.
func RedirectURLOf(t testing.TB, kp *KeyPair, destination string, xml []byte, relayState string) string {
	t.Helper()
	var buf bytes.Buffer
	w, _ := flate.NewWriter(&buf, flate.BestCompression)
	_, _ = w.Write(xml)
	_ = w.Close()
	q := "SAMLRequest=" + url.QueryEscape(base64.StdEncoding.EncodeToString(buf.Bytes()))
	if relayState != "" {
		q += "&RelayState=" + url.QueryEscape(relayState)
	}
	if kp != nil {
		q += "&SigAlg=" + url.QueryEscape(dsig.RSASHA256SignatureMethod)
		sum := sha256.Sum256([]byte(q))
		sig, err := rsa.SignPKCS1v15(nil, kp.Key, crypto.SHA256, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		q += "&Signature=" + url.QueryEscape(base64.StdEncoding.EncodeToString(sig))
	}
	return destination + "?" + q
}

// RandomID is an xs:ID value: "id-" and 40 hex digits.
func RandomID() string {
	b := make([]byte, 20)
	_, _ = rand.Read(b)
	return fmt.Sprintf("id-%x", b)
}

var (
	formAction = regexp.MustCompile(`<form[^>]*action="([^"]*)"`)
	formInput  = regexp.MustCompile(`<input[^>]*name="([^"]*)"[^>]*value="([^"]*)"`)
)

// ParseForm reads an HTML page holding one form (an IdP's auto-posting
// response form, its login form) and returns the form's action and its
// input values, unescaped.
func ParseForm(page string) (action string, values url.Values, ok bool) {
	m := formAction.FindStringSubmatch(page)
	if m == nil {
		return "", nil, false
	}
	values = url.Values{}
	for _, in := range formInput.FindAllStringSubmatch(page, -1) {
		values.Add(html.UnescapeString(in[1]), html.UnescapeString(in[2]))
	}
	return html.UnescapeString(m[1]), values, true
}
