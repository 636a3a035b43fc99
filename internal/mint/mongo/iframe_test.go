package mongo

import (
	"errors"
	"regexp"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

var iframeRe = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)

func iframeToken(t *testing.T, u *Users, id string) (string, bool) {
	t.Helper()
	return doc(t, u, id).Lookup("services", "iframe", "token").StringValueOK()
}

func TestIframeMint(t *testing.T) {
	u, l := provisioned(t)
	m := &IframeMinter{Users: u}
	a, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	if a.Kind != mint.IframeToken || a.UserID != l.UserID || !iframeRe.MatchString(a.Value) {
		t.Fatalf("token = {Kind %q, UserID %q, %d chars}", a.Kind, a.UserID, len(a.Value))
	}
	if got, _ := iframeToken(t, u, l.UserID); got != a.Value {
		t.Fatal("services.iframe.token is not the minted value")
	}
	if err := m.Validate(t.Context(), a); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	// A new mint replaces the value: the old one is rejected.
	b, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	if b.Value == a.Value {
		t.Fatal("two mints gave the same value")
	}
	if err := m.Validate(t.Context(), a); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("Validate(replaced) = %v", err)
	}
	// Revoking the stale value leaves the current one alone.
	if err := m.Revoke(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if got, _ := iframeToken(t, u, l.UserID); got != b.Value {
		t.Fatal("revoking a stale value unset the current one")
	}
	if err := m.Revoke(t.Context(), b); err != nil {
		t.Fatal(err)
	}
	if _, ok := iframeToken(t, u, l.UserID); ok {
		t.Fatal("services.iframe.token still set after Revoke")
	}
	if err := m.Validate(t.Context(), b); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("Validate(revoked) = %v", err)
	}
	if err := m.Validate(t.Context(), mint.Token{UserID: l.UserID}); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("Validate(empty) = %v", err)
	}
	_, err = m.Mint(t.Context(), mint.Request{Link: store.Link{UserID: "NOSUCHUSER0000000"}})
	if !errors.Is(err, ErrNoUser) {
		t.Fatalf("Mint(unknown user) = %v", err)
	}
}

// TestIframeEmail2FA: users Rocket.Chat opted in to e-mail 2FA cannot log
// in with an iframe token (spec §2.1): Mint says so, unless the settings
// turn e-mail 2FA off or the check is skipped.
func TestIframeEmail2FA(t *testing.T) {
	u := newUsers(t)
	insertRC(t, u, "RCUSER00000000001", "jane", "jane@example.com", bson.D{
		{Key: "password", Value: bson.D{{Key: "bcrypt", Value: "$2b$10$x"}}},
		{Key: "email2fa", Value: bson.D{{Key: "enabled", Value: true}, {Key: "changedAt", Value: time.Now()}}},
	})
	req := mint.Request{Identity: jane(), Link: store.Link{Subject: "local:jane", UserID: "RCUSER00000000001"}}
	m := &IframeMinter{Users: u}
	if _, err := m.Mint(t.Context(), req); !errors.Is(err, ErrEmail2FA) || !contains(err, "mongo-iframe: user RCUSER00000000001") {
		t.Fatalf("Mint = %v, want ErrEmail2FA", err)
	}
	if _, ok := iframeToken(t, u, "RCUSER00000000001"); ok {
		t.Fatal("iframe token written for a user who cannot use it")
	}
	skip := &IframeMinter{Users: u, SkipEmail2FACheck: true}
	if _, err := skip.Mint(t.Context(), req); err != nil {
		t.Fatalf("Mint with SkipEmail2FACheck: %v", err)
	}
	settings := u.coll.Database().Collection("rocketchat_settings")
	if _, err := settings.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "Accounts_TwoFactorAuthentication_By_Email_Enabled"}, {Key: "value", Value: false}}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Mint(t.Context(), req); err != nil {
		t.Fatalf("Mint with e-mail 2FA off: %v", err)
	}
}

// TestBrokerWithMongo runs the Broker over the Mongo provisioner and both
// minters: the API URL answer kinds and reuse.
func TestBrokerWithMongo(t *testing.T) {
	u := newUsers(t)
	seal, err := sealer.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		m    mint.Minter
		kind mint.Kind
	}{{&ResumeMinter{Users: u}, mint.LoginToken}, {&IframeMinter{Users: u}, mint.IframeToken}} {
		st := memory.New()
		b := mint.NewBroker(st, seal, tc.m, NewProvisioner(u, st, ProvisionerOptions{}, nil), mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: 24 * time.Hour}, nil)
		id := identity.Identity{Subject: "s:" + string(tc.kind), Username: "user-" + string(tc.kind), Email: string(tc.kind) + "@example.com", EmailVerified: true}
		t1, err := b.Token(t.Context(), id, false)
		if err != nil {
			t.Fatal(err)
		}
		t2, err := b.Token(t.Context(), id, true)
		if err != nil {
			t.Fatal(err)
		}
		if t1.Kind != tc.kind || t2 != t1 || b.Stats().Minted != 1 {
			t.Fatalf("%s: tokens %v / %v, stats %+v", tc.kind, t1.Kind, t2.Kind, b.Stats())
		}
	}
}
