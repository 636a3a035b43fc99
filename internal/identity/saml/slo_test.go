package saml

import (
	"bytes"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	crewsaml "github.com/crewjam/saml"

	"github.com/rcsso/rcsso/internal/testing/samltest"
)

// loggedIn logs alice in through the IdP in the rig's browser.
func (rg *rig) loggedIn() {
	rg.t.Helper()
	acs, form := rg.responseForm(rg.rc.URL + "/popup")
	rg.post(rg.client, acs, form)
	if rg.whoami() == nil {
		rg.t.Fatal("no session")
	}
}

func (rg *rig) sloURL() string { return rg.rc.URL + "/auth/idp/slo" }

// A LogoutRequest the IdP sends from its server (SOAP binding) ends every
// session of the subject it names, and gets a signed LogoutResponse.
func TestSingleLogoutSOAP(t *testing.T) {
	rg := newRig(t, rigOptions{})
	rg.loggedIn()
	lr := rg.idp.LogoutRequest(rg.sloURL(), alice.Email, time.Now())
	kp := rg.idp.Keys
	body := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
		string(withoutDecl(samltest.SignEnveloped(t, &kp, lr))) + `</soapenv:Body></soapenv:Envelope>`
	resp, err := http.Post(rg.sloURL(), "text/xml", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer bytes.Buffer
	_, _ = answer.ReadFrom(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.Contains(answer.String(), "LogoutResponse") || !strings.Contains(answer.String(), crewsaml.StatusSuccess) ||
		!strings.Contains(answer.String(), "SignatureValue") || !strings.Contains(answer.String(), lr.ID) {
		t.Fatalf("SOAP answer %d %s", resp.StatusCode, answer.String())
	}
	if rg.whoami() != nil {
		t.Fatal("session survived")
	}
	if got := rg.loggedOutSubjects(); !slices.Equal(got, []string{aliceSubject}) {
		t.Fatalf("OnLogout got %v", got)
	}
}

// A LogoutRequest through the browser with the HTTP-POST binding (enveloped
// signature) is answered by a self-posting form to the IdP, under a CSP
// that lets only that form's script run and post only to the IdP.
func TestSingleLogoutPOST(t *testing.T) {
	rg := newRig(t, rigOptions{})
	rg.loggedIn()
	kp := rg.idp.Keys
	lr := rg.idp.LogoutRequest(rg.sloURL(), alice.Email, time.Now())
	resp, body := rg.post(rg.client, rg.sloURL(), url.Values{"SAMLRequest": {b64(samltest.SignEnveloped(t, &kp, lr))}, "RelayState": {"idp-state"}})
	action, form, ok := samltest.ParseForm(body)
	if resp.StatusCode != http.StatusOK || !ok || action != rg.idp.LocalURL+"/slo" || form.Get("RelayState") != "idp-state" || form.Get("SAMLResponse") == "" {
		t.Fatalf("answer %d %q", resp.StatusCode, body)
	}
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'nonce-") || !strings.Contains(csp, "form-action "+rg.idp.LocalURL+";") {
		t.Fatalf("CSP %q", csp)
	}
	if rg.whoami() != nil {
		t.Fatal("session survived")
	}
}

// LogoutRequests rcsso must refuse, without ending any session and without
// a LogoutResponse: anyone could otherwise log anyone out.
func TestSingleLogoutRefusesHostileRequests(t *testing.T) {
	rg := newRig(t, rigOptions{})
	rg.loggedIn()
	kp, other := rg.idp.Keys, samltest.Keys(t, "attacker")
	now := time.Now()
	fresh := func() *crewsaml.LogoutRequest { return rg.idp.LogoutRequest(rg.sloURL(), alice.Email, now) }
	replayed := samltest.RedirectURL(t, &kp, fresh(), "")
	resp, _ := rg.get(rg.noFollow(), replayed) // its first use ends the session…
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("first use of the request: %d", resp.StatusCode)
	}
	rg.loggedIn() // …log in again

	wrongDest := fresh()
	wrongDest.Destination = "https://other-sp.example/slo"
	wrongIssuer := fresh()
	wrongIssuer.Issuer.Value = "https://other-idp.example/metadata"
	expired := rg.idp.LogoutRequest(rg.sloURL(), alice.Email, now.Add(-time.Hour))
	rows := []struct {
		name string
		do   func() *http.Response
	}{
		{"redirect, unsigned", func() *http.Response {
			r, _ := rg.get(rg.noFollow(), samltest.RedirectURL(t, nil, fresh(), ""))
			return r
		}},
		{"redirect, another key", func() *http.Response {
			r, _ := rg.get(rg.noFollow(), samltest.RedirectURL(t, &other, fresh(), ""))
			return r
		}},
		{"redirect, replayed", func() *http.Response { r, _ := rg.get(rg.noFollow(), replayed); return r }},
		{"redirect, another destination", func() *http.Response {
			u := samltest.RedirectURL(t, &kp, wrongDest, "")
			r, _ := rg.get(rg.noFollow(), rg.sloURL()+u[strings.Index(u, "?"):])
			return r
		}},
		{"redirect, another issuer", func() *http.Response {
			r, _ := rg.get(rg.noFollow(), samltest.RedirectURL(t, &kp, wrongIssuer, ""))
			return r
		}},
		{"redirect, expired", func() *http.Response {
			r, _ := rg.get(rg.noFollow(), samltest.RedirectURL(t, &kp, expired, ""))
			return r
		}},
		{"redirect, DTD", func() *http.Response {
			x := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "x">]>` + string(withoutDecl(samltest.Serialize(t, fresh().Element())))
			r, _ := rg.get(rg.noFollow(), samltest.RedirectURLOf(t, &kp, rg.sloURL(), []byte(x), ""))
			return r
		}},
		{"POST, unsigned", func() *http.Response {
			r, _ := rg.post(rg.noFollow(), rg.sloURL(), url.Values{"SAMLRequest": {b64(samltest.SignEnveloped(t, nil, fresh()))}})
			return r
		}},
		{"POST, another key", func() *http.Response {
			r, _ := rg.post(rg.noFollow(), rg.sloURL(), url.Values{"SAMLRequest": {b64(samltest.SignEnveloped(t, &other, fresh()))}})
			return r
		}},
		{"POST, DTD", func() *http.Response {
			x := `<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x "x">]>` + string(withoutDecl(samltest.SignEnveloped(t, &kp, fresh())))
			r, _ := rg.post(rg.noFollow(), rg.sloURL(), url.Values{"SAMLRequest": {base64.StdEncoding.EncodeToString([]byte(x))}})
			return r
		}},
		{"POST, too large", func() *http.Response {
			r, _ := rg.post(rg.noFollow(), rg.sloURL(), url.Values{"SAMLRequest": {strings.Repeat("A", maxSLOBody)}})
			return r
		}},
		{"SOAP, unsigned", func() *http.Response {
			body := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
				string(withoutDecl(samltest.SignEnveloped(t, nil, fresh()))) + `</soapenv:Body></soapenv:Envelope>`
			r, err := http.Post(rg.sloURL(), "text/xml", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			return r
		}},
		{"a LogoutResponse nobody asked for", func() *http.Response {
			r, _ := rg.get(rg.noFollow(), rg.sloURL()+"?SAMLResponse=AAAA")
			return r
		}},
	}
	for _, row := range rows {
		t.Run(row.name, func(t *testing.T) {
			resp := row.do()
			if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusOK {
				t.Fatalf("answered %d (%s)", resp.StatusCode, resp.Header.Get("Location"))
			}
			if rg.whoami() == nil {
				t.Fatal("the session was ended")
			}
		})
	}
	if got := rg.loggedOutSubjects(); len(got) != 1 {
		t.Fatalf("OnLogout got %v, want only the first, valid request's", got)
	}
}

// When the subject is an attribute, a LogoutRequest through the browser
// still ends that browser's session; through SOAP it cannot be mapped, and
// the answer says PartialLogout.
func TestSingleLogoutAttributeSubject(t *testing.T) {
	rg := newRig(t, rigOptions{mod: func(o *Options) { o.Mapping.Subject = "uid" }})
	rg.loggedIn()
	if id := rg.whoami(); id.Subject != "idp:alice" {
		t.Fatalf("subject %q", id.Subject)
	}
	kp := rg.idp.Keys
	soap := `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>` +
		string(withoutDecl(samltest.SignEnveloped(t, &kp, rg.idp.LogoutRequest(rg.sloURL(), alice.Email, time.Now())))) + `</soapenv:Body></soapenv:Envelope>`
	resp, err := http.Post(rg.sloURL(), "text/xml", strings.NewReader(soap))
	if err != nil {
		t.Fatal(err)
	}
	var answer bytes.Buffer
	_, _ = answer.ReadFrom(resp.Body)
	resp.Body.Close()
	if !strings.Contains(answer.String(), crewsaml.StatusPartialLogout) || rg.whoami() == nil {
		t.Fatalf("SOAP answer %s", answer.String())
	}
	resp, _ = rg.get(rg.noFollow(), samltest.RedirectURL(t, &kp, rg.idp.LogoutRequest(rg.sloURL(), alice.Email, time.Now()), ""))
	if resp.StatusCode != http.StatusFound || rg.whoami() != nil {
		t.Fatalf("front-channel logout: %d, session left: %v", resp.StatusCode, rg.whoami() != nil)
	}
	if got := rg.loggedOutSubjects(); !slices.Equal(got, []string{"idp:alice"}) {
		t.Fatalf("OnLogout got %v", got)
	}
}
