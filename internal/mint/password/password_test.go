package password_test

import (
	"fmt"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/password"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

func setup(t *testing.T, twoFactor bool) (*mint.Broker, *rcemuServer, store.Store) {
	t.Helper()
	emu := newEmu(t, twoFactor)
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: srv.URL})
	seal, _ := sealer.New(make([]byte, 32))
	st := memory.New()
	prov := provision.New(rc, rcadmin.PAT{UserID: emu.AdminID(), AuthToken: "pat"}, st, provision.Config{PasswordSealer: seal}, nil)
	b := mint.NewBroker(st, seal, &password.Minter{ResumeSession: mint.ResumeSession{RC: rc}, Sealer: seal}, prov, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	return b, emu, st
}

func TestPasswordMode(t *testing.T) {
	// With Rocket.Chat's default two-factor settings on: the unverified
	// e-mail keeps e-mail 2FA from blocking the password login.
	b, emu, st := setup(t, true)
	id := identity.Identity{Subject: "local:rita", Username: "rita", Email: "rita@example.test", EmailVerified: true}
	tok, err := b.Token(t.Context(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := emu.UserByUsername("rita")
	if tok.UserID != u.ID || u.ResumeTokens != 1 {
		t.Fatalf("token %+v for %+v", tok, u)
	}
	l, _ := st.GetLink(t.Context(), id.Subject)
	if len(l.Secret) == 0 {
		t.Fatal("no sealed password kept")
	}
	// Each person has their own password: a second person's differs.
	id2 := identity.Identity{Subject: "local:sam", Username: "sam"}
	if _, err := b.Token(t.Context(), id2, false); err != nil {
		t.Fatal(err)
	}
	l2, _ := st.GetLink(t.Context(), id2.Subject)
	if string(l2.Secret) == string(l.Secret) {
		t.Fatal("two people share a sealed password")
	}
	// Reuse: no second login.
	before := emu.Stats().LoginCalls
	for range 50 {
		if _, err := b.Token(t.Context(), id, false); err != nil {
			t.Fatal(err)
		}
	}
	if emu.Stats().LoginCalls != before {
		t.Fatal("page views logged in again")
	}
}

// Rocket.Chat limits /api/v1/login to 10 calls a minute per IP: the 11th
// new person within the minute gets a clear rate-limit error, not a wrong
// answer, and a retry after the window works.
func TestPasswordModeLoginRateLimit(t *testing.T) {
	b, _, _ := setup(t, false)
	var limited error
	for i := range 12 {
		_, err := b.Token(t.Context(), identity.Identity{Subject: fmt.Sprint("local:p", i), Username: fmt.Sprint("p", i)}, false)
		if err != nil {
			limited = err
			break
		}
	}
	if limited == nil {
		t.Fatal("12 password logins within a minute were not rate limited")
	}
	if d, ok := rocketchat.IsRateLimited(limited); !ok || d <= 0 {
		t.Fatalf("want a rate-limit error with a retry time, got %v", limited)
	}
}
