package provision_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store/memory"
)

func setup(t *testing.T, profile string) (*provision.Provisioner, *rcemu.Server) {
	return setupWith(t, profile, provision.Config{})
}

func setupWith(t *testing.T, profile string, cfg provision.Config) (*provision.Provisioner, *rcemu.Server) {
	t.Helper()
	emu, err := rcemu.New(rcemu.Config{Profile: profile, AdminPassword: "pw", AdminPAT: "pat", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	p := provision.New(rc, rcadmin.PAT{UserID: emu.AdminID(), AuthToken: "pat"}, memory.New(), cfg, nil)
	return p, emu
}

func TestCreateThenReuseLink(t *testing.T) {
	for _, profile := range []string{"8.x", "7.x", "6.x"} {
		t.Run(profile, func(t *testing.T) {
			p, emu := setup(t, profile)
			id := identity.Identity{Subject: "local:josé", Username: "José Álvarez", Name: "José Álvarez", Email: "jose@example.test", EmailVerified: true}
			l, err := p.Ensure(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			u, ok := emu.UserByUsername(provision.WithSuffix("jose.alvarez", "local:josé")) // lossy: suffixed
			if !ok || u.ID != l.UserID || u.Name != "José Álvarez" || !u.Emails[0].Verified || len(u.Roles) != 1 || u.Roles[0] != "user" {
				t.Fatalf("created %+v (link %+v)", u, l)
			}
			calls := emu.Stats().UsersCreateCalls
			if l2, err := p.Ensure(t.Context(), id); err != nil || l2.UserID != l.UserID || emu.Stats().UsersCreateCalls != calls {
				t.Fatalf("second Ensure: %+v %v, users.create calls %d → %d", l2, err, calls, emu.Stats().UsersCreateCalls)
			}
		})
	}
}

func TestUsernameTakenBySomeoneElseGetsSuffix(t *testing.T) {
	p, emu := setup(t, "8.x")
	if _, err := emu.AddUser(rcemu.NewUser{Username: "alice", Name: "Another Alice", Email: "other@example.test"}); err != nil {
		t.Fatal(err)
	}
	l, err := p.Ensure(t.Context(), identity.Identity{Subject: "local:alice", Username: "alice", Email: "alice@example.test", EmailVerified: true})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(l.Username, "alice-") || l.Username != provision.WithSuffix("alice", "local:alice") {
		t.Fatalf("username %q, want the deterministic suffix", l.Username)
	}
	if emu.UserCount() != 2 {
		t.Fatalf("users = %d", emu.UserCount())
	}
}

// TestSquatterDoesNotTakeTheCleanName: issue 8, item 3. A website user
// whose name only resembles someone else's visits first; the person whose
// name is already a valid Rocket.Chat username still gets it unchanged.
func TestSquatterDoesNotTakeTheCleanName(t *testing.T) {
	p, emu := setup(t, "8.x")
	for i, tc := range []struct{ squatter, stem, real string }{
		{"henry_", "henry", "henry"},
		{"Irene.", "irene", "Irene"},
		{"\uff4aack", "jack", "jack"},           // fullwidth j
		{"\u0430lice", "alice", "alice"},        // Cyrillic а
		{"ADM\u0130N.", "admin", "admin"},       // reserved either way
		{"\u202eecila", "ecila", "ecila"},       // right-to-left override
		{"he\u200bnry.x", "henry.x", "henry.x"}, // zero-width space
	} {
		squatter := identity.Identity{Subject: fmt.Sprintf("local:squatter%d", i), Username: tc.squatter,
			Email: fmt.Sprintf("squatter%d@example.test", i), EmailVerified: true}
		ls, err := p.Ensure(t.Context(), squatter)
		if err != nil {
			t.Fatal(err)
		}
		if want := provision.WithSuffix(tc.stem, squatter.Subject); ls.Username != want {
			t.Errorf("%q visiting first got @%s, want @%s", tc.squatter, ls.Username, want)
		}
		real := identity.Identity{Subject: fmt.Sprintf("local:real%d", i), Username: tc.real,
			Email: fmt.Sprintf("real%d@example.test", i), EmailVerified: true}
		lr, err := p.Ensure(t.Context(), real)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.ToLower(tc.real)
		if tc.real == "admin" {
			want = provision.WithSuffix("admin", real.Subject)
		}
		if lr.Username != want {
			t.Errorf("the real %q visiting after %q got @%s, want @%s", tc.real, tc.squatter, lr.Username, want)
		}
		if u, ok := emu.UserByUsername(want); !ok || u.ID != lr.UserID {
			t.Errorf("Rocket.Chat has @%s as %+v, want the real %q", want, u, tc.real)
		}
	}
}

// TestPreemptedSuffixFallsBackToLongerOne: the 6-character suffix a clean
// name falls back to is 30 bits of a digest anyone can compute, so a
// visitor who controls their own subject can search for one that lands on
// another person's fallback (a lossy name such as "alice._-" keeps the stem
// "alice"). When "alice" and "alice-<6>" are both held by others, the real
// alice gets the 12-character suffix (60 bits), not a 409 and no chat.
func TestPreemptedSuffixFallsBackToLongerOne(t *testing.T) {
	p, emu := setup(t, "8.x")
	id := identity.Identity{Subject: "local:alice", Username: "alice", Email: "alice@example.test", EmailVerified: true}
	for i, name := range []string{"alice", provision.WithSuffix("alice", id.Subject)} {
		if _, err := emu.AddUser(rcemu.NewUser{Username: name, Email: fmt.Sprintf("other%d@example.test", i)}); err != nil {
			t.Fatal(err)
		}
	}
	l, err := p.Ensure(t.Context(), id)
	if err != nil {
		t.Fatalf("alice, with both her usernames pre-empted: %v", err)
	}
	if want := "alice-" + provision.Digest(id.Subject)[:12]; l.Username != want {
		t.Fatalf("username %q, want %q", l.Username, want)
	}
}

// TestSuffixedNameTakenFallsBackOnce: when the suffixed name a lossy name
// maps to belongs to someone else, provisioning falls back to a longer
// suffix, not to the same suffix twice.
func TestSuffixedNameTakenFallsBackOnce(t *testing.T) {
	p, emu := setup(t, "8.x")
	id := identity.Identity{Subject: "local:h2", Username: "henry_", Email: "h2@example.test", EmailVerified: true}
	if _, err := emu.AddUser(rcemu.NewUser{Username: provision.WithSuffix("henry", id.Subject), Email: "other@example.test"}); err != nil {
		t.Fatal(err)
	}
	l, err := p.Ensure(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if want := "henry-" + provision.Digest(id.Subject)[:12]; l.Username != want {
		t.Fatalf("username %q, want %q", l.Username, want)
	}
}

func TestExistingUserWithSameEmailIsAdopted(t *testing.T) {
	// A person who already had a Rocket.Chat account with the website's
	// verified e-mail, on a workspace that opted in (provisioning.adopt:
	// verified-email).
	p, emu := setupWith(t, "8.x", provision.Config{Adopt: provision.AdoptVerifiedEmail})
	uid, err := emu.AddUser(rcemu.NewUser{Username: "bob", Name: "Bob", Email: "Bob@Example.test", Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Ensure(t.Context(), identity.Identity{Subject: "header:bob", Username: "bob", Email: "bob@example.test", EmailVerified: true})
	if err != nil || l.UserID != uid {
		t.Fatalf("link %+v, %v; want adoption of %s", l, err, uid)
	}
	if emu.Stats().UsersCreateCalls != 0 {
		t.Fatal("created a duplicate user")
	}
}

// Attack (issue: account takeover by adoption): with the default policy a
// Rocket.Chat user rcsso did not create is never linked, even when its
// username and verified e-mail match; the person gets a clear conflict.
func TestPreexistingUserNotAdoptedByDefault(t *testing.T) {
	p, emu := setup(t, "8.x")
	uid, err := emu.AddUser(rcemu.NewUser{Username: "bob", Name: "Bob", Email: "bob@example.test", Verified: true})
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Ensure(t.Context(), identity.Identity{Subject: "jwt:bob", Username: "bob", Email: "bob@example.test", EmailVerified: true})
	if l.UserID == uid || !errors.Is(err, provision.ErrConflict) {
		t.Fatalf("Ensure = %+v, %v; want ErrConflict and no link to %s", l, err, uid)
	}
}

// Attack: an address the source vouches for, held unverified by a
// Rocket.Chat user (anybody may type it when registering), is not enough
// even under verified-email.
func TestAdoptionNeedsVerifiedAddressInRocketChat(t *testing.T) {
	p, emu := setupWith(t, "8.x", provision.Config{Adopt: provision.AdoptVerifiedEmail})
	uid, err := emu.AddUser(rcemu.NewUser{Username: "bob", Email: "bob@example.test", Verified: false})
	if err != nil {
		t.Fatal(err)
	}
	l, err := p.Ensure(t.Context(), identity.Identity{Subject: "jwt:bob", Username: "bob", Email: "bob@example.test", EmailVerified: true})
	if l.UserID == uid || err == nil {
		t.Fatalf("Ensure = %+v, %v; want a refusal, not user %s", l, err, uid)
	}
}

// Attack (issue: account takeover by adoption): once carol's Rocket.Chat
// user is linked to her subject, no other subject gets it, whatever
// username case, e-mail (her placeholder, her real address) or adoption
// policy it comes with.
func TestLinkedUserIsNeverHandedToAnotherSubject(t *testing.T) {
	for _, policy := range []provision.AdoptPolicy{provision.AdoptNever, provision.AdoptVerifiedEmail} {
		t.Run(string(policy), func(t *testing.T) {
			p, emu := setupWith(t, "8.x", provision.Config{Adopt: policy})
			carol, err := p.Ensure(t.Context(), identity.Identity{Subject: "header:carol", Source: "header", Username: "carol"})
			if err != nil {
				t.Fatal(err)
			}
			dave, err := p.Ensure(t.Context(), identity.Identity{Subject: "header:dave", Source: "header", Username: "dave", Email: "dave@example.test", EmailVerified: true})
			if err != nil {
				t.Fatal(err)
			}
			placeholder, _ := provision.AccountEmail(identity.Identity{Subject: "header:carol"}, "users.rcsso.invalid")
			attacks := []identity.Identity{
				{Subject: "header:CAROL", Source: "header", Username: "CAROL", Email: placeholder, EmailVerified: true},
				{Subject: "header:CAROL", Source: "header", Username: "CAROL", Email: placeholder},
				{Subject: "header:Dave", Source: "header", Username: "Dave", Email: "dave@example.test", EmailVerified: true},
				{Subject: "jwt:666", Source: "jwt", Username: "dave", Email: "dave@example.test", EmailVerified: true},
				{Subject: "jwt:667", Source: "jwt", Username: "dаve", Email: "dave@example.test", EmailVerified: true}, // Cyrillic а
			}
			for _, a := range attacks {
				l, err := p.Ensure(t.Context(), a)
				if l.UserID == carol.UserID || l.UserID == dave.UserID {
					t.Fatalf("%+v got a victim's Rocket.Chat user %s", a, l.UserID)
				}
				if !errors.Is(err, provision.ErrConflict) {
					t.Errorf("%s: Ensure = %+v, %v; want ErrConflict", a.Subject, l, err)
				}
			}
			if n := emu.UserCount(); n != 2 { // carol, dave (the count leaves the admin out)
				t.Errorf("%d Rocket.Chat users, want 2 (no half-created attacker accounts)", n)
			}
		})
	}
}

// A users.create that timed out but succeeded is rcsso's own creation: the
// retry links it, under the default policy too (store.Link.CreatingUsername).
func TestRetryAfterCreateTimeoutLinksOwnCreation(t *testing.T) {
	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	var lose atomic.Bool
	lose.Store(true)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/users.create" && lose.Swap(false) {
			// Rocket.Chat creates the user; the answer never arrives.
			emu.Handler().ServeHTTP(httptest.NewRecorder(), r)
			http.Error(w, "upstream timed out", http.StatusGatewayTimeout)
			return
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: srv.URL})
	st := memory.New()
	p := provision.New(rc, rcadmin.PAT{UserID: emu.AdminID(), AuthToken: "pat"}, st, provision.Config{}, nil)
	id := identity.Identity{Subject: "local:gina", Username: "gina", Email: "gina@example.test", EmailVerified: true}
	if _, err := p.Ensure(t.Context(), id); err == nil {
		t.Fatal("first Ensure succeeded although users.create's answer was lost")
	}
	pending, err := st.GetLink(t.Context(), id.Subject)
	if err != nil || pending.CreatingUsername != "gina" || pending.UserID != "" {
		t.Fatalf("pending link = %+v, %v", pending, err)
	}
	l, err := p.Ensure(t.Context(), id)
	u, _ := emu.UserByUsername("gina")
	if err != nil || l.UserID != u.ID || l.CreatingUsername != "" {
		t.Fatalf("retry = %+v, %v; want the user created by the lost call, %s", l, err, u.ID)
	}
	if emu.UserCount() != 1 {
		t.Fatalf("%d users, want gina only", emu.UserCount())
	}
}

// Attack: an e-mail in the placeholder domain is refused from every
// source, vouched for or not.
func TestPlaceholderDomainEmailRefused(t *testing.T) {
	p, emu := setup(t, "8.x")
	for _, verified := range []bool{true, false} {
		_, err := p.Ensure(t.Context(), identity.Identity{Subject: "jwt:x", Username: "x", Email: "abc@USERS.rcsso.invalid", EmailVerified: verified})
		if !errors.Is(err, provision.ErrReservedEmail) {
			t.Fatalf("verified=%v: Ensure = %v, want ErrReservedEmail", verified, err)
		}
	}
	if emu.UserCount() != 0 {
		t.Fatal("a user was created")
	}
}

func TestUnverifiedEmailNeverAdopts(t *testing.T) {
	p, emu := setup(t, "8.x")
	if _, err := emu.AddUser(rcemu.NewUser{Username: "carol", Email: "carol@example.test"}); err != nil {
		t.Fatal(err)
	}
	// Someone registers "carol" on the website with Carol's e-mail, unverified.
	l, err := p.Ensure(t.Context(), identity.Identity{Subject: "jwt:x1", Username: "carol", Email: "carol@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := emu.UserByUsername("carol")
	if l.UserID == u.ID {
		t.Fatal("took over an existing account on an unverified e-mail")
	}
}

func TestEmailOfAnotherUserIsAConflict(t *testing.T) {
	p, emu := setup(t, "8.x")
	if _, err := emu.AddUser(rcemu.NewUser{Username: "dave.r", Email: "dave@example.test"}); err != nil {
		t.Fatal(err)
	}
	_, err := p.Ensure(t.Context(), identity.Identity{Subject: "local:dave", Username: "dave", Email: "dave@example.test", EmailVerified: true})
	if !errors.Is(err, provision.ErrConflict) {
		t.Fatalf("want ErrConflict, got %v", err)
	}
	if emu.UserCount() != 1 {
		t.Fatal("half-created user left behind")
	}
}

func TestProfileSync(t *testing.T) {
	now := time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)
	p, emu := setupWith(t, "8.x", provision.Config{Now: func() time.Time { return now }})
	id := identity.Identity{Subject: "oidc:42", Username: "erin", Name: "Erin", Email: "erin@example.test", EmailVerified: true,
		AvatarURL: "https://img.example.test/erin.png", Roles: []string{"moderator"}}
	if _, err := p.Ensure(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	u, _ := emu.UserByUsername("erin")
	if u.AvatarURL != id.AvatarURL || !slices.Contains(u.Roles, "moderator") || !slices.Contains(u.Roles, "user") {
		t.Fatalf("created without avatar/roles: %+v", u)
	}
	// Unchanged profile: no write at all.
	if done, err := p.Sync(t.Context(), id); !done || err != nil || emu.Stats().UsersUpdateCalls != 0 {
		t.Fatalf("unchanged sync: %v %v, users.update calls %d", done, err, emu.Stats().UsersUpdateCalls)
	}
	id.Name, id.Email, id.Roles = "Erin Example", "erin@new.example.test", []string{}
	// Within the interval: nothing yet.
	if done, _ := p.Sync(t.Context(), id); done || emu.Stats().UsersUpdateCalls != 0 {
		t.Fatal("synced within the per-user interval")
	}
	now = now.Add(time.Minute)
	if done, err := p.Sync(t.Context(), id); !done || err != nil {
		t.Fatalf("sync: %v %v", done, err)
	}
	u, _ = emu.UserByUsername("erin")
	if u.Name != "Erin Example" || u.Emails[0].Address != "erin@new.example.test" || !u.Emails[0].Verified || slices.Contains(u.Roles, "moderator") {
		t.Fatalf("after sync: %+v", u)
	}
	if emu.Stats().UsersUpdateCalls != 1 || emu.Stats().SetAvatarCalls != 1 {
		t.Fatalf("writes: update %d, setAvatar %d; want 1 and 1 (avatar unchanged)", emu.Stats().UsersUpdateCalls, emu.Stats().SetAvatarCalls)
	}
	now = now.Add(time.Hour)
	if done, _ := p.Sync(t.Context(), id); !done || emu.Stats().UsersUpdateCalls != 1 {
		t.Fatal("wrote again although nothing changed")
	}
}

func TestDeprovision(t *testing.T) {
	p, emu := setup(t, "8.x")
	id := identity.Identity{Subject: "local:gone", Username: "gone", Email: "gone@example.test", EmailVerified: true}
	if _, err := p.Ensure(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Deprovision(t.Context(), id.Subject, false); err != nil {
		t.Fatal(err)
	}
	if u, _ := emu.UserByUsername("gone"); u.Active {
		t.Fatal("still active after deactivation")
	}
	if _, err := p.Deprovision(t.Context(), id.Subject, true); err != nil {
		t.Fatal(err)
	}
	if _, ok := emu.UserByUsername("gone"); ok {
		t.Fatal("still present after deletion")
	}
	if _, err := p.Deprovision(t.Context(), id.Subject, true); !errors.Is(err, provision.ErrUnknownSubject) {
		t.Fatalf("deprovisioning twice: %v", err)
	}
}
