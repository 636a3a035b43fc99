package saml

import (
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/rcsso/rcsso/internal/testing/samltest"
)

// An SP-initiated login through the IdP's login form: the AuthnRequest is
// signed, the IdP's response starts a session with the mapped attributes
// (a group name with a space stays one group), and the browser lands on
// return_to.
func TestSPInitiatedLogin(t *testing.T) {
	rg := newRig(t, rigOptions{})
	resp, _ := rg.get(rg.noFollow(), rg.rc.URL+"/auth/idp/login?return_to="+url.QueryEscape(rg.rc.URL+"/popup"))
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login: %d", resp.StatusCode)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	q := loc.Query()
	if !strings.HasPrefix(loc.String(), rg.idp.LocalURL+"/sso?") || q.Get("SAMLRequest") == "" || q.Get("Signature") == "" || q.Get("SigAlg") != "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" {
		t.Fatalf("AuthnRequest redirect %s", loc)
	}
	if len(q.Get("RelayState")) > 80 {
		t.Fatalf("RelayState has %d bytes; the bindings allow 80", len(q.Get("RelayState")))
	}
	var state *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == "rcsso_saml_idp" {
			state = c
		}
	}
	if state == nil || !state.HttpOnly || state.Path != "/auth/idp/" || state.SameSite != http.SameSiteLaxMode || strings.Contains(state.Value, rg.rc.URL) {
		t.Fatalf("state cookie %+v", state)
	}

	_, page := rg.get(rg.client, loc.String())
	acs, form := rg.idpLogin(page)
	if acs != rg.rc.URL+"/auth/idp/acs" {
		t.Fatalf("IdP posts to %s", acs)
	}
	if raw, _ := base64.StdEncoding.DecodeString(form.Get("SAMLResponse")); !strings.Contains(string(raw), "EncryptedAssertion") || !strings.Contains(string(raw), "aes256-gcm") {
		t.Fatalf("the IdP did not encrypt the assertion to rcsso's certificate (AES-256-GCM): %.400s", raw)
	}
	resp, body := rg.post(rg.client, acs, form)
	if resp.StatusCode != http.StatusOK || body != "popup page" {
		t.Fatalf("ACS ended on %d %q (%s)", resp.StatusCode, body, resp.Request.URL)
	}
	id := rg.whoami()
	if id == nil {
		t.Fatal("no session after the login")
	}
	if id.Subject != aliceSubject || id.Source != "idp" || id.Username != "alice" || id.Name != "Alice Example" || id.Email != "alice@example.com" || id.EmailVerified {
		t.Fatalf("identity %+v", id)
	}
}

// The identity the ACS maps carries the groups attribute's values as they
// are, one group each.
func TestLoginMapsGroups(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	id, err := rg.src.consume(t.Context(), url.Values{"SAMLResponse": {b64(rg.forge(forgeGroups()))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(id.Groups, []string{"staff", "chat users"}) || id.Username != "alice" {
		t.Fatalf("identity %+v", id)
	}
}

// A response for another login of this browser (RelayState of an older
// state cookie) is refused: the InResponseTo does not match.
func TestSPInitiatedResponseForAnotherLogin(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	acs, first := rg.responseForm(rg.rc.URL + "/popup")
	rg.responseForm(rg.rc.URL + "/popup") // a second login replaces the state cookie
	resp, _ := rg.post(rg.client, acs, first)
	if resp.StatusCode != http.StatusBadRequest || rg.whoami() != nil {
		t.Fatalf("a response to the earlier login gave %d", resp.StatusCode)
	}
}

// A response whose assertion does not answer the AuthnRequest (no
// InResponseTo) is refused when this browser started a login: InResponseTo
// may be absent only for an IdP-initiated login.
func TestSPInitiatedWithoutInResponseTo(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	acs, form := rg.responseForm(rg.rc.URL + "/popup")
	form.Set("SAMLResponse", b64(rg.forge(forgeSigned()))) // signed, valid, but InResponseTo ""
	resp, _ := rg.post(rg.client, acs, form)
	if resp.StatusCode != http.StatusBadRequest || rg.whoami() != nil {
		t.Fatalf("got %d", resp.StatusCode)
	}
}

// An IdP-initiated login (samlidp's shortcut) starts a session and sends the
// browser to the RelayState when allow_idp_initiated is on.
func TestIdPInitiatedLogin(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	_, page := rg.get(rg.client, rg.idp.LocalURL+"/login/rcsso")
	acs, form := rg.idpLogin(page)
	if form.Get("RelayState") != rg.rc.URL+"/popup" {
		t.Fatalf("RelayState %q", form.Get("RelayState"))
	}
	resp, body := rg.post(rg.client, acs, form)
	if resp.StatusCode != http.StatusOK || body != "popup page" {
		t.Fatalf("ACS ended on %d %q", resp.StatusCode, body)
	}
	if id := rg.whoami(); id == nil || id.Subject != aliceSubject {
		t.Fatalf("identity %+v", id)
	}
}

// Without allow_idp_initiated, the same response is refused.
func TestIdPInitiatedLoginRefusedByDefault(t *testing.T) {
	rg := newRig(t, rigOptions{})
	_, page := rg.get(rg.client, rg.idp.LocalURL+"/login/rcsso")
	acs, form := rg.idpLogin(page)
	resp, body := rg.post(rg.client, acs, form)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "not started here") || rg.whoami() != nil {
		t.Fatalf("ACS gave %d %q", resp.StatusCode, body)
	}
}

// An IdP-initiated RelayState that SafeReturnTo refuses is not followed.
func TestIdPInitiatedRelayStateFiltered(t *testing.T) {
	rg := newRig(t, rigOptions{idpInitiated: true})
	status, body, session := rg.acs(rg.forge(forgeSigned()), "https://evil.example/")
	if status != http.StatusOK || !strings.Contains(body, "You are logged in") || !session {
		t.Fatalf("got %d %q session=%v", status, body, session)
	}
}

// The IdP's single logout (samlidp's /logout: a LogoutRequest through the
// browser, HTTP-Redirect) ends rcsso's session and the chat session
// (OnLogout), and the IdP accepts rcsso's signed LogoutResponse.
func TestSingleLogoutFromIdP(t *testing.T) {
	rg := newRig(t, rigOptions{})
	acs, form := rg.responseForm(rg.rc.URL + "/popup")
	rg.post(rg.client, acs, form)
	if rg.whoami() == nil {
		t.Fatal("no session")
	}
	var sawSLO bool
	c := &http.Client{Jar: rg.jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if req.URL.Path == "/auth/idp/slo" {
			sawSLO = req.URL.Query().Get("SAMLRequest") != ""
		}
		return nil
	}}
	resp, body := rg.get(c, rg.idp.LocalURL+"/logout")
	if !sawSLO || resp.StatusCode != http.StatusOK || !strings.Contains(body, "You have been logged out") || strings.Contains(body, "could not be confirmed") {
		t.Fatalf("IdP logout ended on %d %q (LogoutRequest seen: %v)", resp.StatusCode, body, sawSLO)
	}
	if rg.whoami() != nil {
		t.Fatal("rcsso session survived the single logout")
	}
	if got := rg.loggedOutSubjects(); !slices.Equal(got, []string{aliceSubject}) {
		t.Fatalf("OnLogout got %v", got)
	}
}

// forgeSigned is a valid IdP-initiated response for alice, signed twice.
func forgeSigned() samltest.Forge {
	return samltest.Forge{SignAssertion: true, SignResponse: true,
		Attributes: map[string][]string{"uid": {"alice"}, "cn": {"Alice Example"}, "mail": {"alice@example.com"}}}
}

func forgeGroups() samltest.Forge {
	f := forgeSigned()
	f.Attributes["eduPersonAffiliation"] = []string{"staff", "chat users"}
	return f
}
