package createtoken

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

func setup(t *testing.T, cfg rcemu.Config, secret string) (*Minter, *rcemu.Server, store.Link) {
	t.Helper()
	cfg.AdminPassword, cfg.AdminPAT, cfg.BcryptCost = "pw", "pat", bcrypt.MinCost
	emu, err := rcemu.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: srv.URL})
	uid, err := emu.AddUser(rcemu.NewUser{Username: "alice", Email: "alice@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	return &Minter{ResumeSession: mint.ResumeSession{RC: rc}, Admin: rcadmin.PAT{UserID: emu.AdminID(), AuthToken: "pat"}, Secret: secret}, emu, store.Link{Subject: "local:alice", UserID: uid}
}

func TestMintValidateRevoke(t *testing.T) {
	cases := []struct {
		name   string
		cfg    rcemu.Config
		secret string
	}{
		{"8.x with secret", rcemu.Config{Profile: "8.x", CreateTokensSecret: "s"}, "s"},
		{"7.x env flavour", rcemu.Config{Profile: "7.x", CreateTokensForUsers: true}, ""},
		{"6.x env flavour", rcemu.Config{Profile: "6.x", CreateTokensForUsers: true}, ""},
		{"7.13 tokens bug retried", rcemu.Config{Profile: "7.x", CreateTokensForUsers: true, Bug40598: true}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, _, link := setup(t, c.cfg, c.secret)
			tok, err := m.Mint(t.Context(), mint.Request{Link: link})
			if err != nil {
				t.Fatal(err)
			}
			if tok.Kind != mint.LoginToken || tok.UserID != link.UserID || len(tok.Value) < 40 {
				t.Fatalf("token %+v", tok)
			}
			if err := m.Validate(t.Context(), tok); err != nil {
				t.Fatalf("fresh token does not validate: %v", err)
			}
			if err := m.Revoke(t.Context(), tok); err != nil {
				t.Fatal(err)
			}
			if err := m.Validate(t.Context(), tok); !errors.Is(err, mint.ErrRejected) {
				t.Fatalf("revoked token: %v, want ErrRejected", err)
			}
			if err := m.Revoke(t.Context(), tok); err != nil {
				t.Fatalf("revoking twice must be safe: %v", err)
			}
		})
	}
}

func TestMisconfigurationIsAClearError(t *testing.T) {
	for name, c := range map[string]struct {
		cfg    rcemu.Config
		secret string
	}{
		"8.x wrong secret":          {rcemu.Config{Profile: "8.x", CreateTokensSecret: "right"}, "wrong"},
		"7.x without env":           {rcemu.Config{Profile: "7.x"}, ""},
		"8.x server without secret": {rcemu.Config{Profile: "8.x"}, "anything"},
	} {
		t.Run(name, func(t *testing.T) {
			m, emu, link := setup(t, c.cfg, c.secret)
			_, err := m.Mint(t.Context(), mint.Request{Link: link})
			if err == nil || !strings.Contains(err.Error(), "error-not-authorized") {
				t.Fatalf("want a Not authorized error, got %v", err)
			}
			if strings.Contains(err.Error(), c.secret) && c.secret != "" {
				t.Fatal("the secret leaked into the error")
			}
			if u, _ := emu.UserByUsername("alice"); u.ResumeTokens != 0 {
				t.Fatal("a token was created anyway")
			}
		})
	}
}
