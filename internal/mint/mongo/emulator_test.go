package mongo

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/testing/mongotest"
)

const emuPAT = "emulator-admin-pat-0123456789abcdefghijklmn"

// emulator starts rcemu on the same MongoDB database as the returned
// Users: what rcsso writes, the emulator's REST API and web client read.
func emulator(t *testing.T, cfg rcemu.Config) (*rcemu.Server, string, *Users) {
	t.Helper()
	uri := mongotest.Start(t)
	cfg.MongoURL = uri
	cfg.AdminPassword = "admin-pw"
	cfg.AdminPAT = emuPAT
	cfg.BcryptCost = bcrypt.MinCost
	cfg.DisableRateLimit = true
	s, err := rcemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts.URL, connect(t, uri)
}

// call does a JSON request and returns the status and decoded body.
func call(t *testing.T, method, url string, hdr map[string]string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	} else {
		rd = bytes.NewReader(nil)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

func me(t *testing.T, base string, tok mint.Token) int {
	t.Helper()
	st, _ := call(t, http.MethodGet, base+"/api/v1/me", map[string]string{"X-User-Id": tok.UserID, "X-Auth-Token": tok.Value}, nil)
	return st
}

// TestEmulatorUsesMintedTokens: users provisioned and tokens minted by this
// package log in to the emulator in MongoDB mode — resume tokens through
// /api/v1/login {resume} and X-Auth-Token, iframe tokens through
// /api/v1/login {iframe, token} and the web client's DDP login.
func TestEmulatorUsesMintedTokens(t *testing.T) {
	s, base, u := emulator(t, rcemu.Config{})
	l, err := newProv(t, u, nil).Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	if snap, ok := s.UserByUsername("jane.doe"); !ok || snap.ID != l.UserID || snap.Email2FA || !snap.Active {
		t.Fatalf("emulator sees %+v, %v", snap, ok)
	}

	rm := &ResumeMinter{Users: u}
	tok, err := rm.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	st, body := call(t, http.MethodPost, base+"/api/v1/login", nil, map[string]any{"resume": tok.Value})
	data, _ := body["data"].(map[string]any)
	if st != http.StatusOK || data["userId"] != l.UserID || data["authToken"] != tok.Value {
		t.Fatalf("resume login: %d %v", st, body)
	}
	if st := me(t, base, tok); st != http.StatusOK {
		t.Fatalf("/me with the minted token: %d", st)
	}
	if err := rm.Revoke(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if st := me(t, base, tok); st != http.StatusUnauthorized {
		t.Fatalf("/me after Revoke: %d", st)
	}

	im := &IframeMinter{Users: u}
	itok, err := im.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	st, body = call(t, http.MethodPost, base+"/api/v1/login", nil, map[string]any{"iframe": true, "token": itok.Value})
	data, _ = body["data"].(map[string]any)
	if st != http.StatusOK || data["userId"] != l.UserID {
		t.Fatalf("iframe login: %d %v", st, body)
	}
	st, body = call(t, http.MethodPost, base+"/_emu/ddp-login", nil, map[string]any{"iframe": true, "token": itok.Value})
	if st != http.StatusOK || body["id"] != l.UserID || body["type"] != "iframe" {
		t.Fatalf("DDP iframe login: %d %v", st, body)
	}
	if err := im.Revoke(t.Context(), itok); err != nil {
		t.Fatal(err)
	}
	if st, _ := call(t, http.MethodPost, base+"/api/v1/login", nil, map[string]any{"iframe": true, "token": itok.Value}); st != http.StatusUnauthorized {
		t.Fatalf("iframe login after Revoke: %d", st)
	}

	// The cap, as the emulator counts it.
	for range 51 {
		if _, err := rm.Mint(t.Context(), mint.Request{Identity: jane(), Link: l}); err != nil {
			t.Fatal(err)
		}
	}
	if snap, _ := s.UserByID(l.UserID); snap.ResumeTokens != 50 {
		t.Fatalf("emulator counts %d resume tokens, want 50", snap.ResumeTokens)
	}
}

// TestEmulatorCreatedUserAdopted: with provisioning.adopt verified-email, a
// user created through the emulator's users.create is found by e-mail and
// linked, not duplicated.
func TestEmulatorCreatedUserAdopted(t *testing.T) {
	s, base, u := emulator(t, rcemu.Config{})
	admin := map[string]string{"X-User-Id": s.AdminID(), "X-Auth-Token": emuPAT}
	st, body := call(t, http.MethodPost, base+"/api/v1/users.create", admin, map[string]any{
		"username": "jd", "email": "JANE@example.com", "password": "pw", "name": "Jane", "verified": true})
	if st != http.StatusOK {
		t.Fatalf("users.create: %d %v", st, body)
	}
	id := body["user"].(map[string]any)["_id"]
	l, err := NewProvisioner(u, memory.New(), ProvisionerOptions{Adopt: provision.AdoptVerifiedEmail}, nil).Ensure(t.Context(), jane())
	if err != nil || l.UserID != id || l.Username != "jd" {
		t.Fatalf("Ensure = %+v, %v; want user %v", l, err, id)
	}
	if s.UserCount() != 1 {
		t.Fatalf("UserCount = %d", s.UserCount())
	}
}

// TestEmulatorEmail2FA: a user Rocket.Chat opted in to e-mail 2FA cannot
// finish an iframe-token login (totp-required), which is why IframeMinter
// refuses such users (spec §2.1).
func TestEmulatorEmail2FA(t *testing.T) {
	s, base, u := emulator(t, rcemu.Config{TwoFactor: true})
	admin := map[string]string{"X-User-Id": s.AdminID(), "X-Auth-Token": emuPAT}
	st, body := call(t, http.MethodPost, base+"/api/v1/users.create", admin, map[string]any{
		"username": "sam", "email": "sam@example.com", "password": "pw", "name": "Sam", "verified": true})
	if st != http.StatusOK {
		t.Fatalf("users.create: %d %v", st, body)
	}
	id := identity.Identity{Subject: "s:sam", Username: "sam", Email: "sam@example.com", EmailVerified: true}
	l, err := NewProvisioner(u, memory.New(), ProvisionerOptions{Adopt: provision.AdoptVerifiedEmail}, nil).Ensure(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := (&IframeMinter{Users: u}).Mint(t.Context(), mint.Request{Identity: id, Link: l}); !errors.Is(err, ErrEmail2FA) {
		t.Fatalf("Mint = %v, want ErrEmail2FA", err)
	}
	tok, err := (&IframeMinter{Users: u, SkipEmail2FACheck: true}).Mint(t.Context(), mint.Request{Identity: id, Link: l})
	if err != nil {
		t.Fatal(err)
	}
	st, body = call(t, http.MethodPost, base+"/_emu/ddp-login", nil, map[string]any{"iframe": true, "token": tok.Value})
	if st != http.StatusBadRequest || body["error"] != "totp-required" {
		t.Fatalf("DDP iframe login of an e-mail-2FA user: %d %v", st, body)
	}
	// A resume token is exempt from 2FA.
	rt, err := (&ResumeMinter{Users: u}).Mint(t.Context(), mint.Request{Identity: id, Link: l})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := call(t, http.MethodPost, base+"/api/v1/login", nil, map[string]any{"resume": rt.Value}); st != http.StatusOK {
		t.Fatalf("resume login of an e-mail-2FA user: %d", st)
	}
	// A user this package provisions has no e-mail 2FA, even here.
	nl, err := newProv(t, u, nil).Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	it, err := (&IframeMinter{Users: u}).Mint(t.Context(), mint.Request{Identity: jane(), Link: nl})
	if err != nil {
		t.Fatal(err)
	}
	if st, body := call(t, http.MethodPost, base+"/_emu/ddp-login", nil, map[string]any{"iframe": true, "token": it.Value}); st != http.StatusOK {
		t.Fatalf("DDP iframe login of a provisioned user: %d %v", st, body)
	}
}
