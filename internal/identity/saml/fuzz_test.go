package saml

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	dsig "github.com/russellhaering/goxmldsig"

	crewsaml "github.com/crewjam/saml"

	"github.com/rcsso/rcsso/internal/testing/samltest"
)

// fuzzSource is a source whose clock stands still at now, reading the
// IdP's metadata from a file, with IdP-initiated logins allowed.
func fuzzSource(f testing.TB, idp *samltest.IdP, now time.Time) *Source {
	f.Helper()
	sp := samltest.Keys(f, "test-sp")
	s, err := New(context.Background(), Options{Name: "idp", BaseURL: "https://rcsso.example", IDPMetadataFile: writeIdPMetadata(f, idp),
		Key: sp.Key, Certificate: sp.Cert, NameIDFormat: crewsaml.EmailAddressNameIDFormat, AllowIDPInitiated: true,
		Sessions: newRigSessions(), Once: newOnce(), StateKey: testKey(), Logger: quietLogger(), Clock: dsig.NewFakeClockAt(now),
		SafeReturnTo: func(string) string { return "" }})
	if err != nil {
		f.Fatal(err)
	}
	return s
}

// FuzzConsume feeds the ACS's parser (consume: base64 form value → XML →
// signature → conditions → claims) mutated responses. Whatever it is given
// it must not panic, and a response it accepts can only be for the one
// person the IdP signed a response for: no mutation of signed XML may
// change whom it logs in.
func FuzzConsume(f *testing.F) {
	idp := samltest.Start(f, "127.0.0.1")
	now := time.Now().UTC().Truncate(time.Second)
	s := fuzzSource(f, idp, now)
	forge := func(mod func(*samltest.Forge)) []byte {
		fg := forgeSigned()
		fg.Now, fg.Audience, fg.ACS, fg.NameID = now, s.EntityID(), "https://rcsso.example/auth/idp/acs", alice.Email
		if mod != nil {
			mod(&fg)
		}
		return idp.Forge(f, fg)
	}
	valid := forge(nil)
	if _, err := fuzzSource(f, idp, now).consume(context.Background(), url.Values{"SAMLResponse": {b64(valid)}}, nil); err != nil {
		f.Fatalf("the valid seed is refused: %v", err) // the property below would prove nothing
	}
	f.Add(valid, false)
	f.Add(forge(func(fg *samltest.Forge) { fg.InResponseTo = "id-fuzz" }), true)
	f.Add(forge(func(fg *samltest.Forge) { fg.SignResponse = false }), false)
	f.Add(forge(func(fg *samltest.Forge) { fg.SignAssertion, fg.SignResponse = false, false }), false)
	f.Add(wrapUnsignedFirst(f, forge(func(fg *samltest.Forge) { fg.SignResponse = false }), forge(func(fg *samltest.Forge) {
		fg.SignAssertion, fg.SignResponse, fg.NameID = false, false, "mallory@example.com"
	})), false)
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "a">]><r>&a;</r>`), false)
	f.Add([]byte("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"), false)
	f.Add([]byte{}, false)
	st := &loginState{State: "s", RequestID: "id-fuzz", IssuedAt: now.Unix()}
	f.Fuzz(func(t *testing.T, xml []byte, spInitiated bool) {
		var state *loginState
		if spInitiated {
			state = st
		}
		id, err := s.consume(context.Background(), url.Values{"SAMLResponse": {b64(xml)}}, state)
		if err == nil && id.Subject != aliceSubject {
			t.Fatalf("accepted a response for %q", id.Subject)
		}
		if err != nil && errors.Is(err, errStore) {
			t.Fatalf("store error from a memory store: %v", err)
		}
	})
}

// FuzzSingleLogout posts mutated LogoutRequests (HTTP-POST binding) to the
// single logout service. It must not panic, and must answer with a
// LogoutResponse (a 200 form) only for a request signed by the IdP.
func FuzzSingleLogout(f *testing.F) {
	idp := samltest.Start(f, "127.0.0.1")
	now := time.Now().UTC().Truncate(time.Second)
	s := fuzzSource(f, idp, now)
	kp := idp.Keys
	dest := "https://rcsso.example/auth/idp/slo"
	f.Add(samltest.SignEnveloped(f, &kp, idp.LogoutRequest(dest, alice.Email, now)))
	f.Add(samltest.SignEnveloped(f, nil, idp.LogoutRequest(dest, alice.Email, now)))
	f.Add([]byte(`<samlp:LogoutRequest xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" ID="x" Version="2.0"/>`))
	f.Add([]byte("not xml"))
	h := s.Handler()
	f.Fuzz(func(t *testing.T, xml []byte) {
		form := url.Values{"SAMLRequest": {b64(xml)}}
		req := httptest.NewRequest(http.MethodPost, "/slo", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code == http.StatusOK && !strings.Contains(string(xml), "SignatureValue") {
			t.Fatalf("answered an unsigned request: %d", rec.Code)
		}
	})
}
