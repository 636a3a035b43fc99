package mint_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/createtoken"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

// Finding 6 (lost update): a background profile sync that was waiting on
// Rocket.Chat while the person logged out of the chat wrote its stale copy
// of the link back, erasing the "logged out of the chat" marker, and the
// API URL logged the person straight back in. Each writer now changes only
// its own fields inside the store (UpdateLink).
func TestProfileSyncKeepsChatLogoutMarker(t *testing.T) {
	emu, err := rcemu.New(rcemu.Config{Profile: "8.x", AdminPassword: "pw", AdminPAT: "pat", CreateTokensSecret: "s", BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	var hold atomic.Bool
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/api/v1/users.update" && hold.Load() {
			arrived <- struct{}{}
			<-release
		}
		emu.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	rc, _ := rocketchat.New(rocketchat.Options{BaseURL: srv.URL})
	admin := rcadmin.PAT{UserID: emu.AdminID(), AuthToken: "pat"}
	st := memory.New()
	now := time.Now()
	prov := provision.New(rc, admin, st, provision.Config{Now: func() time.Time { return now }}, nil)
	seal, _ := sealer.New(make([]byte, 32))
	minter := &createtoken.Minter{ResumeSession: mint.ResumeSession{RC: rc}, Admin: admin, Secret: "s"}
	b := mint.NewBroker(st, seal, minter, prov, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: 24 * time.Hour}, nil)

	id := identity.Identity{Subject: "oidc:erin", Source: "oidc", Username: "erin", Name: "Erin", Email: "erin@example.test", EmailVerified: true}
	tok, err := b.Token(t.Context(), id, false)
	if err != nil {
		t.Fatal(err)
	}
	// A minute later the website renames Erin; the next API URL call starts
	// a background sync, which waits on users.update.
	now = now.Add(2 * time.Minute)
	id.Name = "Erin Example"
	hold.Store(true)
	if _, err := b.Token(t.Context(), id, false); err != nil {
		t.Fatal(err)
	}
	<-arrived
	// Meanwhile Erin logs out in the chat (Rocket.Chat deletes the token),
	// and the IFrame URL, re-validating, records the chat-side logout.
	if err := (mint.ResumeSession{RC: rc}).Revoke(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Token(t.Context(), id, true); !errors.Is(err, mint.ErrChatLoggedOut) {
		t.Fatalf("IFrame URL after a chat logout: %v, want ErrChatLoggedOut", err)
	}
	close(release)
	b.WaitSync()
	if u, _ := emu.UserByUsername("erin"); u.Name != "Erin Example" {
		t.Fatalf("the sync did not finish: name %q", u.Name)
	}
	// The API URL must still not log Erin straight back in.
	if got, err := b.Token(t.Context(), id, false); !errors.Is(err, mint.ErrChatLoggedOut) {
		t.Fatalf("API URL after the sync = %+v, %v; want ErrChatLoggedOut (marker lost)", got.UserID, err)
	}
}

// Finding 7 (leases): after kill -9 mid-provisioning, each affected
// person's next visit waited for the dead holder's 45 s lease and failed
// with 504 after the 30 s mint timeout. The lease now lives a third of the
// mint timeout unless its holder renews it.
func TestCrashedLeaseHolderCostsNo504(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New()
		seal, _ := sealer.New(make([]byte, 32))
		m := &fakeMinter{valid: map[string]bool{}}
		b := mint.NewBroker(st, seal, m, &fakeProv{st: st}, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour, MintTimeout: 30 * time.Second}, nil)
		// Another rcsso took alice's lease and died.
		if _, ok, err := st.TryLock(t.Context(), "mint:"+alice.Subject, b.LeaseTTL()); err != nil || !ok {
			t.Fatalf("TryLock: %v %v", ok, err)
		}
		start := time.Now()
		tok, err := b.Token(t.Context(), alice, false)
		if err != nil {
			t.Fatalf("visit after the holder crashed: %v (after %s)", err, time.Since(start))
		}
		if waited := time.Since(start); waited > b.LeaseTTL()+time.Second || tok.Value == "" {
			t.Fatalf("waited %s for a dead holder (lease %s)", waited, b.LeaseTTL())
		}
	})
}

// A live holder renews its lease while Rocket.Chat is slow, so a second
// rcsso does not take over and mint twice.
func TestLiveLeaseHolderRenews(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New()
		seal, _ := sealer.New(make([]byte, 32))
		slow := &slowMinter{fakeMinter: fakeMinter{valid: map[string]bool{}}, delay: 25 * time.Second}
		cfg := mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour, MintTimeout: 30 * time.Second}
		b1 := mint.NewBroker(st, seal, slow, &fakeProv{st: st}, cfg, nil)
		b2 := mint.NewBroker(st, seal, slow, &fakeProv{st: st}, cfg, nil)
		var wg sync.WaitGroup
		for _, b := range []*mint.Broker{b1, b2} {
			wg.Go(func() {
				if _, err := b.Token(t.Context(), alice, false); err != nil {
					t.Error(err)
				}
			})
			synctest.Wait()
		}
		wg.Wait()
		if n := slow.mints.Load(); n != 1 {
			t.Fatalf("%d mints by two rcsso processes, want 1", n)
		}
	})
}

type slowMinter struct {
	fakeMinter
	delay time.Duration
}

func (m *slowMinter) Mint(ctx context.Context, req mint.Request) (mint.Token, error) {
	select {
	case <-time.After(m.delay):
	case <-ctx.Done():
		return mint.Token{}, ctx.Err()
	}
	return m.fakeMinter.Mint(ctx, req)
}

// A logout (Forget) on one instance while another instance is minting for
// the same person: the logout waits for the mint to finish and then ends
// that session, so the new token is not left behind in the store.
func TestForgetWaitsForAMintInProgress(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New()
		seal, _ := sealer.New(make([]byte, 32))
		slow := &slowMinter{fakeMinter: fakeMinter{valid: map[string]bool{}}, delay: 5 * time.Second}
		cfg := mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour, MintTimeout: 30 * time.Second}
		a := mint.NewBroker(st, seal, slow, &fakeProv{st: st}, cfg, nil)
		b := mint.NewBroker(st, seal, slow, &fakeProv{st: st}, cfg, nil)
		minted := make(chan mint.Token, 1)
		go func() {
			tok, err := a.Token(t.Context(), alice, false)
			if err != nil {
				t.Error(err)
			}
			minted <- tok
		}()
		synctest.Wait() // A holds the lease and waits on Rocket.Chat
		if _, err := b.Forget(t.Context(), alice.Subject, true); err != nil {
			t.Fatal(err)
		}
		tok := <-minted
		if _, err := st.GetToken(t.Context(), alice.Subject); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the token minted during the logout is still cached (err %v)", err)
		}
		if slow.fakeMinter.Validate(t.Context(), tok) == nil {
			t.Fatal("the session minted during the logout was not ended")
		}
	})
}

// blockedSync is a provisioner whose profile sync waits for release.
type blockedSync struct {
	fakeProv
	release chan struct{}
}

func (p *blockedSync) ProfileDigest(identity.Identity) string { return "changed" }
func (p *blockedSync) Sync(ctx context.Context, _ identity.Identity) (bool, error) {
	select {
	case <-p.release:
		return true, nil
	case <-ctx.Done():
		return false, ctx.Err()
	}
}

// Drain waits for a background sync in flight and gives up when its
// context ends (shutdown is bounded).
func TestDrainWaitsForBackgroundSyncsWithinItsContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New()
		seal, _ := sealer.New(make([]byte, 32))
		p := &blockedSync{fakeProv: fakeProv{st: st}, release: make(chan struct{})}
		b := mint.NewBroker(st, seal, &fakeMinter{valid: map[string]bool{}}, p, mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour, MintTimeout: 30 * time.Second}, nil)
		if _, err := b.Token(t.Context(), alice, false); err != nil {
			t.Fatal(err)
		}
		synctest.Wait() // the profile sync waits for release
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		start := time.Now()
		if err := b.Drain(ctx); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) != 5*time.Second {
			t.Fatalf("Drain with a sync that does not end: %v after %v", err, time.Since(start))
		}
		drained := make(chan error, 1)
		go func() { drained <- b.Drain(t.Context()) }()
		synctest.Wait()
		select {
		case err := <-drained:
			t.Fatalf("Drain returned (%v) while a sync was in flight", err)
		default:
		}
		close(p.release)
		if err := <-drained; err != nil {
			t.Fatal(err)
		}
	})
}
