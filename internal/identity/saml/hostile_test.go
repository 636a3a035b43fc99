package saml

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	crewsaml "github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/rcsso/rcsso/internal/testing/samltest"
)

// Each row is a Response someone could post to the ACS; IdP-initiated
// logins are allowed, so every check other than InResponseTo is what
// stands between the row and a session. The first rows are the control:
// what the SAML profile accepts.
func TestACSRefusesHostileResponses(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	other := samltest.Keys(t, "attacker")
	signed := forgeSigned()
	with := func(mod func(*samltest.Forge)) []byte {
		f := forgeSigned()
		f.Attributes = map[string][]string{"uid": {"alice"}}
		mod(&f)
		return rg.forge(f)
	}
	rows := []struct {
		name   string
		xml    []byte
		status int // 0: accepted (a session starts)
		page   string
	}{
		{"valid: assertion and Response signed", rg.forge(signed), 0, ""},
		{"valid: only the assertion signed", with(func(f *samltest.Forge) { f.SignResponse = false }), 0, ""},
		{"valid: only the Response signed", with(func(f *samltest.Forge) { f.SignAssertion = false }), 0, ""},

		{"unsigned", with(func(f *samltest.Forge) { f.SignAssertion, f.SignResponse = false, false }), 400, "not valid"},
		{"signed by another key", with(func(f *samltest.Forge) { f.Keys = &other }), 400, "not valid"},
		{"signed with SHA-1", with(func(f *samltest.Forge) { f.SignatureMethod = dsig.RSASHA1SignatureMethod }), 400, "not valid"},
		{"changed after signing", bytes.ReplaceAll(rg.forge(signed), []byte("alice@example.com"), []byte("mallory@example.com")), 400, "not valid"},
		{"expired", with(func(f *samltest.Forge) { f.Now = time.Now().Add(-time.Hour) }), 400, "not valid"},
		{"not yet valid", with(func(f *samltest.Forge) { f.Now = time.Now().Add(time.Hour) }), 400, "not valid"},
		{"audience another SP", with(func(f *samltest.Forge) { f.Audience = "https://other-sp.example/metadata" }), 400, "not valid"},
		{"recipient another ACS", with(func(f *samltest.Forge) { f.Recipient = "https://other-sp.example/acs" }), 400, "not valid"},
		{"destination another ACS", with(func(f *samltest.Forge) { f.ACS = "https://other-sp.example/acs" }), 400, "not valid"},
		{"issuer another IdP", with(func(f *samltest.Forge) { f.Issuer = "https://other-idp.example/metadata" }), 400, "not valid"},
		{"InResponseTo without a login of this browser", with(func(f *samltest.Forge) { f.InResponseTo = "id-0123" }), 400, "not valid"},
		{"transient NameID as subject", with(func(f *samltest.Forge) { f.NameIDFormat = string(crewsaml.TransientNameIDFormat) }), 502, "usable user id"},
		{"IdP refused", with(func(f *samltest.Forge) { f.Status = crewsaml.StatusResponder }), 502, "did not log you in (Responder)"},
		{"unknown condition", with(func(f *samltest.Forge) {
			f.EditElement = func(a *etree.Element) {
				a.SelectElement("Conditions").CreateElement("ext:Delegation").CreateAttr("xmlns:ext", "urn:example:conditions")
			}
		}), 400, "not valid"},

		{"wrapping: unsigned assertion before the signed one", wrapUnsignedFirst(t, with(func(f *samltest.Forge) { f.SignResponse = false }), rg.forge(forgeUnsignedFor("mallory@example.com"))), 400, "not valid"},
		{"wrapping: signed Response inside an unsigned one", wrapOuterResponse(t, rg.forge(signed), rg.forge(forgeUnsignedFor("mallory@example.com"))), 400, "not valid"},
		{"wrapping: forged assertion with the signed one's ID and signature", wrapSameID(t, with(func(f *samltest.Forge) { f.SignResponse = false })), 400, "not valid"},
		{"XXE", []byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` +
			strings.Replace(string(withoutDecl(rg.forge(signed))), "Alice Example", "&xxe;", 1)), 400, "not valid"},
		{"DTD declared, not used", []byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>` + string(withoutDecl(rg.forge(signed)))), 400, "not valid"},
		{"billion laughs", []byte(billionLaughs + strings.Replace(string(withoutDecl(rg.forge(signed))), "alice@example.com", "&lol9;", 1)), 400, "not valid"},
		{"deep nesting", deepNesting(rg.forge(signed)), 400, "not valid"},
		{"not XML", []byte("SAML? no"), 400, "not valid"},
		{"empty", nil, 400, "not valid"},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			status, body, session := rg.acs(row.xml, "")
			if row.status == 0 {
				if status != http.StatusOK || !session {
					t.Fatalf("refused a valid response: %d %q", status, body)
				}
				return
			}
			if status != row.status || session || !strings.Contains(body, row.page) {
				t.Fatalf("got %d session=%v %q, want %d and %q", status, session, body, row.status, row.page)
			}
		})
	}
}

// The 2018 comment truncation attack (CVE-2017-11427 and others): the IdP
// signs a NameID for an account the attacker registered,
// "alice@example.com.evil.test"; a comment inserted after
// "alice@example.com" leaves the exclusive-canonical form, and so the
// signature, unchanged, while a naive reader takes the first text node.
// Such a response gives the registered account, never alice.
func TestACSCommentInSignedNameID(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	f := forgeSigned()
	f.NameID = "alice@example.com.evil.test"
	xml := bytes.Replace(rg.forge(f), []byte("alice@example.com.evil.test</saml:NameID>"), []byte("alice@example.com<!---->.evil.test</saml:NameID>"), 1)
	if !bytes.Contains(xml, []byte("<!---->")) {
		t.Fatal("no NameID to inject into")
	}
	id, err := rg.src.consume(t.Context(), url.Values{"SAMLResponse": {b64(xml)}}, nil)
	if err == nil && id.Subject != "idp:alice@example.com.evil.test" {
		t.Fatalf("subject %q", id.Subject)
	}
}

// The same valid response works once: every later post is refused, also
// on another rcsso instance on the same store.
func TestACSRefusesReplay(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	resp := rg.forge(forgeSigned())
	if status, body, ok := rg.acs(resp, ""); status != http.StatusOK || !ok {
		t.Fatalf("first use: %d %q", status, body)
	}
	if status, body, ok := rg.acs(resp, ""); status != http.StatusBadRequest || ok || !strings.Contains(body, "already used") {
		t.Fatalf("replay: %d %q", status, body)
	}
	twin, err := New(context.Background(), rg.src.cfg) // a second instance on the same store
	if err != nil {
		t.Fatal(err)
	}
	if _, err := twin.consume(t.Context(), url.Values{"SAMLResponse": {b64(resp)}}, nil); !errors.Is(err, crewsaml.ErrAssertionReplayed) {
		t.Fatalf("replay on another instance: %v", err)
	}
}

type failingOnce struct{}

func (failingOnce) UseOnce(context.Context, string, time.Time) (bool, error) {
	return false, errors.New("store down")
}

// When the store cannot record the assertion, the login fails with 503 (not
// "invalid response", and no session).
func TestACSStoreDown(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true, mod: func(o *Options) { o.Once = failingOnce{} }})
	status, body, ok := rg.acs(rg.forge(forgeSigned()), "")
	if status != http.StatusServiceUnavailable || ok || !strings.Contains(body, "cannot record") {
		t.Fatalf("got %d %q", status, body)
	}
}

// Bindings and forms the ACS does not take: artifact (which would make rcsso
// call out), SimpleSign, two responses, bad base64, a body over the bound.
func TestACSRefusesOtherBindingsAndBadForms(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	valid := b64(rg.forge(forgeSigned()))
	rows := []struct {
		name   string
		form   url.Values
		status int
	}{
		{"artifact", url.Values{"SAMLart": {"AAQAAMFbLinlXaCM+FIxiDwGOLAy2T71gbpO7ZhNzAgEANlB90ECfpNEVLg="}}, 400},
		{"SimpleSign", url.Values{"SAMLResponse": {valid}, "SigAlg": {dsig.RSASHA256SignatureMethod}, "Signature": {"AAAA"}}, 400},
		{"two responses", url.Values{"SAMLResponse": {valid, valid}}, 400},
		{"no response", url.Values{"RelayState": {"x"}}, 400},
		{"bad base64", url.Values{"SAMLResponse": {"!!!"}}, 400},
		{"too large", url.Values{"SAMLResponse": {strings.Repeat("A", maxACSBody)}}, 413},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			status, body, session := rg.acsForm(row.form)
			if status != row.status || session {
				t.Fatalf("got %d session=%v %q", status, session, body)
			}
		})
	}
}

// forgeUnsignedFor is an unsigned response for another person.
func forgeUnsignedFor(nameID string) samltest.Forge {
	return samltest.Forge{NameID: nameID, Attributes: map[string][]string{"uid": {"mallory"}}}
}

func parseDoc(t testing.TB, b []byte) *etree.Document {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(b); err != nil {
		t.Fatal(err)
	}
	return doc
}

func docBytes(t testing.TB, doc *etree.Document) []byte {
	t.Helper()
	b, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func assertionOf(t testing.TB, doc *etree.Document) *etree.Element {
	t.Helper()
	a := doc.Root().SelectElement("Assertion")
	if a == nil {
		t.Fatal("no Assertion")
	}
	return a
}

// wrapUnsignedFirst puts evil's unsigned assertion before the signed one of
// good (whose Response is unsigned).
func wrapUnsignedFirst(t testing.TB, good, evil []byte) []byte {
	doc := parseDoc(t, good)
	ea := assertionOf(t, parseDoc(t, evil)).Copy()
	ga := assertionOf(t, doc)
	doc.Root().InsertChildAt(ga.Index(), ea)
	return docBytes(t, doc)
}

// wrapOuterResponse puts the signed Response good inside evil's unsigned
// Response, whose own assertion is for someone else.
func wrapOuterResponse(t testing.TB, good, evil []byte) []byte {
	doc := parseDoc(t, evil)
	ext := doc.Root().CreateElement("samlp:Extensions")
	ext.AddChild(parseDoc(t, good).Root().Copy())
	return docBytes(t, doc)
}

// wrapSameID replaces the signed assertion by a copy for mallory with the
// same ID, carrying the original signature, and the original inside its
// Advice.
func wrapSameID(t testing.TB, good []byte) []byte {
	doc := parseDoc(t, good)
	ga := assertionOf(t, doc)
	evil := ga.Copy()
	for _, n := range evil.FindElements(".//NameID") {
		n.SetText("mallory@example.com")
	}
	advice := etree.NewElement("saml:Advice")
	advice.AddChild(ga.Copy())
	evil.AddChild(advice)
	doc.Root().RemoveChild(ga)
	doc.Root().AddChild(evil)
	return docBytes(t, doc)
}

func withoutDecl(b []byte) []byte {
	if i := bytes.Index(b, []byte("?>")); bytes.HasPrefix(b, []byte("<?xml")) && i > 0 {
		return b[i+2:]
	}
	return b
}

const billionLaughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
	`<!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">` +
	`<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;"><!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">` +
	`<!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;"><!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">` +
	`<!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;"><!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">` +
	`<!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">]>`

// deepNesting puts 20,000 nested elements into the signed response.
func deepNesting(b []byte) []byte {
	const n = 20000
	deep := strings.Repeat("<x>", n) + strings.Repeat("</x>", n)
	return bytes.Replace(b, []byte("</samlp:Response>"), []byte(deep+"</samlp:Response>"), 1)
}

// While every slot for checking SAML messages is taken, a response waits,
// and gives up with 503 when its request ends: posters of large messages
// cannot make rcsso parse more than a few at once.
func TestACSBusy(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	for range cap(rg.src.slots) {
		rg.src.slots <- struct{}{}
	}
	form := url.Values{"SAMLResponse": {b64(rg.forge(forgeSigned()))}}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/acs", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	rg.src.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "busy") {
		t.Fatalf("got %d %q", rec.Code, rec.Body)
	}
	for range cap(rg.src.slots) {
		<-rg.src.slots
	}
	if status, body, ok := rg.acs(rg.forge(forgeSigned()), ""); status != http.StatusOK || !ok {
		t.Fatalf("after the slots freed: %d %q", status, body)
	}
}
