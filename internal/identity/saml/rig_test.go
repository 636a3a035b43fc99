package saml

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/testing/samltest"
	"github.com/rcsso/rcsso/internal/websession"
)

// alice is the IdP's account; her NameID is her e-mail address.
var alice = samltest.User{Name: "alice", Password: "alice-password", Email: "alice@example.com", CommonName: "Alice Example",
	Groups: []string{"staff", "chat users"}}

const aliceSubject = "idp:alice@example.com"

// rig is rcsso (this source behind an httptest server, its sessions on a
// memory store) plus a samltest IdP that knows it.
type rig struct {
	t      *testing.T
	idp    *samltest.IdP
	src    *Source
	rc     *httptest.Server
	store  *memory.Store
	jar    http.CookieJar
	client *http.Client // a browser: cookie jar, follows redirects

	mu        sync.Mutex
	loggedOut []string
}

type rigOptions struct {
	idpInitiated bool
	mod          func(*Options)
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testKey() []byte { return bytes.Repeat([]byte{7}, 32) }

func newRig(t *testing.T, o rigOptions) *rig {
	t.Helper()
	rg := &rig{t: t, idp: samltest.Start(t, "127.0.0.1"), store: memory.New()}
	rg.idp.AddUser(t, alice)
	var h http.Handler = http.NotFoundHandler()
	rg.rc = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, r) }))
	t.Cleanup(rg.rc.Close)
	sp := samltest.Keys(t, "test-sp")
	opts := Options{
		Name:              "idp",
		BaseURL:           rg.rc.URL,
		IDPMetadataURL:    rg.idp.MetadataURL(),
		Key:               sp.Key,
		Certificate:       sp.Cert,
		NameIDFormat:      crewsaml.EmailAddressNameIDFormat,
		AllowIDPInitiated: o.idpInitiated,
		Mapping:           claims.Mapping{Name: "cn", Groups: "eduPersonAffiliation"},
		Sessions:          websession.New(rg.store, websession.Options{CookieName: "rcsso_session", TTL: time.Hour, SameSite: http.SameSiteLaxMode}),
		Once:              rg.store,
		StateKey:          testKey(),
		SafeReturnTo: func(s string) string {
			if strings.HasPrefix(s, rg.rc.URL+"/") {
				return s
			}
			return ""
		},
		OnLogout: func(_ context.Context, subject string) error {
			rg.mu.Lock()
			defer rg.mu.Unlock()
			rg.loggedOut = append(rg.loggedOut, subject)
			return nil
		},
		Logger: quietLogger(),
	}
	if o.mod != nil {
		o.mod(&opts)
	}
	var err error
	rg.src, err = New(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/auth/idp/", http.StripPrefix("/auth/idp/", rg.src.Handler()))
	mux.HandleFunc("/popup", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "popup page") })
	mux.HandleFunc("/whoami", func(w http.ResponseWriter, r *http.Request) {
		id, err := rg.src.Identify(r)
		switch {
		case errors.Is(err, identity.ErrNotLoggedIn):
			http.Error(w, "not logged in", http.StatusUnauthorized)
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			_ = json.NewEncoder(w).Encode(id)
		}
	})
	h = mux
	rg.jar, _ = cookiejar.New(nil)
	rg.client = &http.Client{Jar: rg.jar}
	rg.idp.AddServiceProvider(t, "rcsso", rg.spMetadata())
	rg.idp.AddShortcut(t, "rcsso", rg.src.EntityID(), rg.rc.URL+"/popup")
	return rg
}

func (rg *rig) spMetadata() []byte {
	rg.t.Helper()
	resp, body := rg.get(rg.client, rg.rc.URL+"/auth/idp/metadata")
	if resp.StatusCode != http.StatusOK {
		rg.t.Fatalf("metadata: %d", resp.StatusCode)
	}
	return []byte(body)
}

func (rg *rig) get(c *http.Client, u string) (*http.Response, string) {
	rg.t.Helper()
	resp, err := c.Get(u)
	if err != nil {
		rg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (rg *rig) post(c *http.Client, u string, form url.Values) (*http.Response, string) {
	rg.t.Helper()
	resp, err := c.PostForm(u, form)
	if err != nil {
		rg.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// noFollow is the browser that stops at the first redirect.
func (rg *rig) noFollow() *http.Client {
	return &http.Client{Jar: rg.jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// idpLogin submits the IdP's login form page as alice and returns the IdP's
// answer: the auto-posting form with the SAMLResponse.
func (rg *rig) idpLogin(page string) (acs string, form url.Values) {
	rg.t.Helper()
	action, f, ok := samltest.ParseForm(page)
	if !ok {
		rg.t.Fatalf("no login form at the IdP: %.300s", page)
	}
	f.Set("user", alice.Name)
	f.Set("password", alice.Password)
	if !strings.HasPrefix(action, "http") {
		action = rg.idp.LocalURL + action
	}
	resp, body := rg.post(rg.client, action, f)
	if resp.StatusCode != http.StatusOK {
		rg.t.Fatalf("IdP login: %d %.300s", resp.StatusCode, body)
	}
	acs, form, ok = samltest.ParseForm(body)
	if !ok || form.Get("SAMLResponse") == "" {
		rg.t.Fatalf("no response form from the IdP: %.300s", body)
	}
	return acs, form
}

// responseForm runs an SP-initiated login up to the IdP's response form
// (the browser's state cookie is in the jar).
func (rg *rig) responseForm(returnTo string) (acs string, form url.Values) {
	rg.t.Helper()
	resp, page := rg.get(rg.client, rg.rc.URL+"/auth/idp/login?return_to="+url.QueryEscape(returnTo))
	if resp.StatusCode != http.StatusOK {
		rg.t.Fatalf("login: %d %.300s", resp.StatusCode, page)
	}
	if acs, form, ok := samltest.ParseForm(page); ok && form.Get("SAMLResponse") != "" {
		return acs, form // the IdP session was there already
	}
	return rg.idpLogin(page)
}

// whoami returns the identity rcsso recognises in the browser, or nil.
func (rg *rig) whoami() *identity.Identity {
	rg.t.Helper()
	resp, body := rg.get(rg.client, rg.rc.URL+"/whoami")
	if resp.StatusCode == http.StatusUnauthorized {
		return nil
	}
	var id identity.Identity
	if err := json.Unmarshal([]byte(body), &id); err != nil {
		rg.t.Fatalf("whoami: %d %s", resp.StatusCode, body)
	}
	return &id
}

// acs posts a Response to the ACS from a fresh browser (no state cookie)
// and returns the status, body and whether that browser got a session.
func (rg *rig) acs(responseXML []byte, relayState string) (int, string, bool) {
	rg.t.Helper()
	return rg.acsForm(url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(responseXML)}, "RelayState": {relayState}})
}

func (rg *rig) acsForm(form url.Values) (int, string, bool) {
	rg.t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, body := rg.post(c, rg.rc.URL+"/auth/idp/acs", form)
	u, _ := url.Parse(rg.rc.URL)
	return resp.StatusCode, body, len(jar.Cookies(u)) > 0 && rg.hasSession(jar)
}

func (rg *rig) hasSession(jar http.CookieJar) bool {
	c := &http.Client{Jar: jar}
	resp, _ := rg.get(c, rg.rc.URL+"/whoami")
	return resp.StatusCode == http.StatusOK
}

// forge returns a Response for this rig's SP as the IdP would sign it
// (assertion and Response signed), changed by f.
func (rg *rig) forge(f samltest.Forge) []byte {
	rg.t.Helper()
	if f.Audience == "" {
		f.Audience = rg.src.EntityID()
	}
	if f.ACS == "" {
		f.ACS = rg.rc.URL + "/auth/idp/acs"
	}
	if f.NameID == "" {
		f.NameID = alice.Email
	}
	return rg.idp.Forge(rg.t, f)
}

func (rg *rig) loggedOutSubjects() []string {
	rg.mu.Lock()
	defer rg.mu.Unlock()
	return append([]string(nil), rg.loggedOut...)
}

// writeIdPMetadata writes the IdP's metadata to a file and returns its path.
func writeIdPMetadata(t testing.TB, idp *samltest.IdP) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "idp.xml")
	if err := os.WriteFile(p, idp.Metadata(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func parseSPMetadata(t *testing.T, b []byte) crewsaml.EntityDescriptor {
	t.Helper()
	var ed crewsaml.EntityDescriptor
	if err := xml.Unmarshal(b, &ed); err != nil {
		t.Fatal(err)
	}
	return ed
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

func newOnce() *memory.Store { return memory.New() }

func newRigSessions() *websession.Manager {
	return websession.New(memory.New(), websession.Options{CookieName: "rcsso_session", TTL: time.Hour, SameSite: http.SameSiteLaxMode})
}
