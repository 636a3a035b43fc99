package mint_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

type fakeProv struct {
	calls atomic.Int64
	st    store.Store
}

func (p *fakeProv) Ensure(ctx context.Context, id identity.Identity) (store.Link, error) {
	if l, err := p.st.GetLink(ctx, id.Subject); err == nil {
		return l, nil
	}
	p.calls.Add(1)
	return p.st.UpdateLink(ctx, id.Subject, func(l *store.Link) error {
		l.UserID = "U-" + id.Subject
		return nil
	})
}

type fakeMinter struct {
	mints     atomic.Int64
	revoked   atomic.Int64
	mu        sync.Mutex
	valid     map[string]bool
	validErr  error
	validates atomic.Int64
}

func (m *fakeMinter) Mint(_ context.Context, req mint.Request) (mint.Token, error) {
	l := req.Link
	n := m.mints.Add(1)
	v := fmt.Sprintf("tok-%d", n)
	m.mu.Lock()
	m.valid[v] = true
	m.mu.Unlock()
	return mint.Token{Value: v, Kind: mint.LoginToken, UserID: l.UserID}, nil
}

func (m *fakeMinter) Validate(_ context.Context, t mint.Token) error {
	m.validates.Add(1)
	if m.validErr != nil {
		return m.validErr
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.valid[t.Value] {
		return mint.ErrRejected
	}
	return nil
}

func (m *fakeMinter) Revoke(_ context.Context, t mint.Token) error {
	m.revoked.Add(1)
	m.mu.Lock()
	delete(m.valid, t.Value)
	m.mu.Unlock()
	return nil
}

func newBroker(t *testing.T, revalidate time.Duration) (*mint.Broker, *fakeMinter, *fakeProv, store.Store) {
	t.Helper()
	st := memory.New()
	s, err := sealer.New(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	m := &fakeMinter{valid: map[string]bool{}}
	p := &fakeProv{st: st}
	b := mint.NewBroker(st, s, m, p, mint.BrokerConfig{RevalidateAfter: revalidate, TTL: 24 * time.Hour}, nil)
	return b, m, p, st
}

var alice = identity.Identity{Subject: "local:alice", Username: "alice"}

func TestConcurrentFirstRequestsMintOnce(t *testing.T) {
	b, m, p, _ := newBroker(t, time.Hour)
	var wg sync.WaitGroup
	tokens := make([]string, 50)
	for i := range tokens {
		wg.Go(func() {
			tok, err := b.Token(t.Context(), alice, false)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = tok.Value
		})
	}
	wg.Wait()
	if m.mints.Load() != 1 || p.calls.Load() != 1 {
		t.Fatalf("mints = %d, provisions = %d; want 1 and 1", m.mints.Load(), p.calls.Load())
	}
	for _, v := range tokens {
		if v != tokens[0] {
			t.Fatalf("different tokens handed out: %q vs %q", v, tokens[0])
		}
	}
}

func TestReuseAndRemintOnRejection(t *testing.T) {
	b, m, _, _ := newBroker(t, time.Hour)
	first, _ := b.Token(t.Context(), alice, false)
	for range 1000 {
		tok, err := b.Token(t.Context(), alice, false)
		if err != nil || tok.Value != first.Value {
			t.Fatalf("page view got %q, %v", tok.Value, err)
		}
	}
	if m.mints.Load() != 1 || m.validates.Load() != 0 {
		t.Fatalf("1000 page views: mints = %d, validations = %d; want 1, 0", m.mints.Load(), m.validates.Load())
	}
	// Rocket.Chat forgets the token (its user logged out everywhere).
	m.mu.Lock()
	delete(m.valid, first.Value)
	m.mu.Unlock()
	// The person logged out on the Rocket.Chat side: no automatic re-login.
	if _, err := b.Token(t.Context(), alice, true); !errors.Is(err, mint.ErrChatLoggedOut) {
		t.Fatalf("after a chat-side logout: %v, want ErrChatLoggedOut", err)
	}
	for range 3 {
		if _, err := b.Token(t.Context(), alice, false); !errors.Is(err, mint.ErrChatLoggedOut) || m.mints.Load() != 1 {
			t.Fatalf("page view after chat logout: %v, mints %d", err, m.mints.Load())
		}
	}
	// A new website login (later auth time) or an explicit resume brings the chat back.
	later := alice
	later.AuthTime = time.Now().Add(time.Second)
	tok, err := b.Token(t.Context(), later, false)
	if err != nil || tok.Value == first.Value || m.mints.Load() != 2 {
		t.Fatalf("after a new website login got %q (mints %d), %v", tok.Value, m.mints.Load(), err)
	}
}

func TestResumeAfterChatLogout(t *testing.T) {
	b, m, _, _ := newBroker(t, time.Hour)
	first, _ := b.Token(t.Context(), alice, false)
	m.mu.Lock()
	delete(m.valid, first.Value)
	m.mu.Unlock()
	if _, err := b.Token(t.Context(), alice, true); !errors.Is(err, mint.ErrChatLoggedOut) {
		t.Fatal(err)
	}
	tok, err := b.Resume(t.Context(), alice)
	if err != nil || tok.Value == first.Value {
		t.Fatalf("Resume: %q %v", tok.Value, err)
	}
}

func TestMinMintInterval(t *testing.T) {
	b, m, _, st := newBroker(t, time.Hour)
	_, _ = b.Token(t.Context(), alice, false)
	// The cached token disappears (e.g. another process dropped it): a new
	// mint right away would churn Rocket.Chat's token list.
	_ = st.DeleteToken(t.Context(), alice.Subject)
	_, err := b.Token(t.Context(), alice, false)
	var te *mint.ThrottledError
	if !errors.As(err, &te) || te.RetryAfter <= 0 || m.mints.Load() != 1 {
		t.Fatalf("second mint within the interval: %v (mints %d)", err, m.mints.Load())
	}
}

func TestRateLimitedValidationReusesToken(t *testing.T) {
	b, m, _, _ := newBroker(t, time.Hour)
	first, _ := b.Token(t.Context(), alice, false)
	m.validErr = &rocketchat.Error{Status: 429, ErrorType: "error-too-many-requests", RetryAfter: time.Second}
	tok, err := b.Token(t.Context(), alice, true)
	if err != nil || tok.Value != first.Value || m.mints.Load() != 1 {
		t.Fatalf("got %q, %v, mints %d", tok.Value, err, m.mints.Load())
	}
	m.validErr = &rocketchat.Error{Status: 503}
	if _, err := b.Token(t.Context(), alice, true); err == nil {
		t.Fatal("an unreachable Rocket.Chat during validation must be an error, not a silent re-mint")
	}
	if m.mints.Load() != 1 {
		t.Fatalf("minted while Rocket.Chat was down: %d", m.mints.Load())
	}
}

func TestForgetRevokes(t *testing.T) {
	b, m, _, st := newBroker(t, time.Hour)
	_, _ = b.Token(t.Context(), alice, false)
	had, err := b.Forget(t.Context(), alice.Subject, true)
	if err != nil || !had || m.revoked.Load() != 1 {
		t.Fatalf("Forget = %v, %v; revoked %d", had, err, m.revoked.Load())
	}
	if _, err := st.GetToken(t.Context(), alice.Subject); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("token still cached: %v", err)
	}
}

func TestTokenEncryptedAtRest(t *testing.T) {
	b, _, _, st := newBroker(t, time.Hour)
	tok, _ := b.Token(t.Context(), alice, false)
	rec, err := st.GetToken(t.Context(), alice.Subject)
	if err != nil {
		t.Fatal(err)
	}
	if string(rec.Ciphertext) == tok.Value || len(rec.Ciphertext) < len(tok.Value)+16 {
		t.Fatal("token stored in the clear")
	}
}

func BenchmarkCachedToken(b *testing.B) {
	br, _, _, _ := newBroker(&testing.T{}, time.Hour)
	ctx := context.Background()
	_, _ = br.Token(ctx, alice, false)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Token(ctx, alice, false); err != nil {
			b.Fatal(err)
		}
	}
}
