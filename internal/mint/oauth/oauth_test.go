package oauth

import (
	"context"
	"crypto/sha256"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/oauthprovider"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

var alice = identity.Identity{Subject: "local:alice", Source: "local", Username: "alice", Name: "Alice Example",
	Email: "alice@example.test", EmailVerified: true}

type fixture struct {
	emu    *rcemu.Server
	rc     *rocketchat.Client
	minter *Minter
	broker *mint.Broker
	st     store.Store
}

// setup starts rcsso's OAuth provider and an emulator whose Custom OAuth
// service "rcsso" points at it, and a broker minting in mode oauth. No
// Rocket.Chat credentials are given to rcsso.
func setup(t *testing.T, profile string) *fixture {
	t.Helper()
	k := sha256.Sum256([]byte("provider key"))
	ps, _ := sealer.New(k[:])
	prov, err := oauthprovider.New(oauthprovider.Config{ServiceName: "rcsso", ClientID: "rc", ClientSecret: "secret",
		RocketChatURL: "http://chat.invalid", BaseURL: "http://sso.invalid/oauth", Sealer: ps})
	if err != nil {
		t.Fatal(err)
	}
	provSrv := httptest.NewServer(http.StripPrefix("/oauth/", prov.Handler()))
	t.Cleanup(provSrv.Close)
	emu, err := rcemu.New(rcemu.Config{Profile: profile, AdminPassword: "pw", BcryptCost: bcrypt.MinCost,
		OAuthServices: []rcemu.OAuthService{{Name: "rcsso", IdentityURL: provSrv.URL + "/oauth/identity",
			TokenSentVia: "header", UsernameField: "username", MergeUsers: true}}})
	if err != nil {
		t.Fatal(err)
	}
	emuSrv := httptest.NewServer(emu.Handler())
	t.Cleanup(emuSrv.Close)
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: emuSrv.URL})
	if err != nil {
		t.Fatal(err)
	}
	st := memory.New()
	sk := sha256.Sum256([]byte("store key"))
	seal, _ := sealer.New(sk[:])
	m := &Minter{ResumeSession: mint.ResumeSession{RC: rc}, Issuer: prov, ServiceName: "rcsso"}
	b := mint.NewBroker(st, seal, m, Provisioner{Store: st}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: 24 * time.Hour, MinMintInterval: time.Nanosecond}, nil)
	return &fixture{emu: emu, rc: rc, minter: m, broker: b, st: st}
}

func TestFirstLoginCreatesOnceThenReuses(t *testing.T) {
	for _, profile := range []string{"8.x", "7.x", "6.x"} {
		t.Run(profile, func(t *testing.T) {
			f := setup(t, profile)
			before := f.emu.UserCount()
			var wg sync.WaitGroup
			toks := make([]mint.Token, 20)
			errs := make([]error, 20)
			for i := range toks {
				wg.Go(func() { toks[i], errs[i] = f.broker.Token(t.Context(), alice, false) })
			}
			wg.Wait()
			for i := range toks {
				if errs[i] != nil {
					t.Fatalf("mint %d: %v", i, errs[i])
				}
				if toks[i] != toks[0] {
					t.Fatalf("mint %d got another token: %+v vs %+v", i, toks[i], toks[0])
				}
			}
			tok := toks[0]
			if tok.Kind != mint.LoginToken || tok.UserID == "" || len(tok.Value) < 40 {
				t.Fatalf("token %+v", tok)
			}
			if n := f.emu.UserCount() - before; n != 1 {
				t.Fatalf("%d users created, want 1", n)
			}
			if got := f.emu.Stats().LoginCalls; got != 1 {
				t.Fatalf("POST /api/v1/login calls = %d, want 1", got)
			}
			u, ok := f.emu.UserByID(tok.UserID)
			if !ok || u.Username != "alice" || u.Name != "Alice Example" || len(u.Emails) != 1 || u.Emails[0].Address != "alice@example.test" ||
				f.emu.OAuthID(tok.UserID, "rcsso") != "local:alice" {
				t.Fatalf("Rocket.Chat user %+v (found %v)", u, ok)
			}
			link, err := f.st.GetLink(t.Context(), alice.Subject)
			if err != nil || link.UserID != tok.UserID {
				t.Fatalf("link %+v, %v; want user id %s recorded", link, err, tok.UserID)
			}
			if err := f.minter.Validate(t.Context(), tok); err != nil {
				t.Fatalf("fresh token does not validate: %v", err)
			}

			// A second login (cached token forgotten) reuses the user.
			if _, err := f.broker.Forget(t.Context(), alice.Subject, false); err != nil {
				t.Fatal(err)
			}
			tok2, err := f.broker.Token(t.Context(), alice, false)
			if err != nil {
				t.Fatal(err)
			}
			if tok2.UserID != tok.UserID || tok2.Value == tok.Value || f.emu.UserCount()-before != 1 {
				t.Fatalf("second login: %+v (users +%d)", tok2, f.emu.UserCount()-before)
			}
			if u, _ := f.emu.UserByID(tok.UserID); u.ResumeTokens != 2 {
				t.Fatalf("resume tokens = %d, want 2", u.ResumeTokens)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	f := setup(t, "8.x")
	tok, err := f.broker.Token(t.Context(), alice, false)
	if err != nil {
		t.Fatal(err)
	}
	if had, err := f.broker.Forget(t.Context(), alice.Subject, true); err != nil || !had {
		t.Fatalf("Forget = %v, %v", had, err)
	}
	if err := f.minter.Validate(t.Context(), tok); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("revoked token: %v, want ErrRejected", err)
	}
	if u, _ := f.emu.UserByID(tok.UserID); u.ResumeTokens != 0 {
		t.Fatalf("resume tokens after revoke = %d", u.ResumeTokens)
	}
	if err := f.minter.Revoke(t.Context(), tok); err != nil {
		t.Fatalf("revoking twice must be safe: %v", err)
	}
}

func TestMintErrors(t *testing.T) {
	f := setup(t, "7.x")
	m := *f.minter
	m.ServiceName = "unknown"
	_, err := m.Mint(t.Context(), mint.Request{Identity: alice})
	if !rocketchat.IsUnauthorized(err) {
		t.Fatalf("unknown service: %v, want a 401", err)
	}
	// A token the identity route does not accept (issued by another
	// provider) is refused by Rocket.Chat.
	k := sha256.Sum256([]byte("other key"))
	os, _ := sealer.New(k[:])
	other, _ := oauthprovider.New(oauthprovider.Config{ServiceName: "rcsso", ClientID: "rc", ClientSecret: "secret",
		RocketChatURL: "http://chat.invalid", BaseURL: "http://sso.invalid/oauth", Sealer: os})
	m = *f.minter
	m.Issuer = other
	if _, err := m.Mint(t.Context(), mint.Request{Identity: alice}); !rocketchat.IsUnauthorized(err) {
		t.Fatalf("foreign token: %v, want a 401", err)
	}
	if _, err := f.minter.Mint(t.Context(), mint.Request{}); err == nil {
		t.Fatal("minted for an empty identity")
	}
	if n := f.emu.UserCount(); n != 0 {
		t.Fatalf("users created by failed logins: %d", n)
	}
}

func TestProvisionerEnsure(t *testing.T) {
	st := memory.New()
	p := Provisioner{Store: st}
	l, err := p.Ensure(context.Background(), alice)
	if err != nil || l.Subject != alice.Subject || l.UserID != "" || l.Username != "" {
		t.Fatalf("no link yet: %+v, %v", l, err)
	}
	if _, err := st.UpdateLink(context.Background(), alice.Subject, func(l *store.Link) error {
		l.UserID, l.Username = "u1", "alice"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if l, err := p.Ensure(context.Background(), alice); err != nil || l.UserID != "u1" || l.Subject != alice.Subject {
		t.Fatalf("stored link: %+v, %v", l, err)
	}
}
