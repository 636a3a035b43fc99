package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
)

// exportBulk is how many extra sessions, links and tokens testExport
// writes, so that backends reading in pages (Redis SCAN) turn several.
const exportBulk = 150

// testExport: Export yields every account, unexpired session, link and
// cached token once, kind by kind, field for field as Get* returns them,
// and nothing short-lived; nil functions skip a kind; a function's error
// stops it; a done ctx fails it.
func testExport(t *testing.T, s store.Store) {
	ex, ok := s.(store.Exporter)
	if !ok {
		t.Skip("store has no Exporter capability")
	}
	ctx := context.Background()

	calls := 0
	count := store.Visitor{
		Account: func(store.Account) error { calls++; return nil },
		Session: func(store.Session) error { calls++; return nil },
		Link:    func(store.Link) error { calls++; return nil },
		Token:   func(store.Token) error { calls++; return nil },
	}
	noErr(t, "Export(empty store)", ex.Export(ctx, count))
	if calls != 0 {
		t.Fatalf("Export of an empty store made %d calls", calls)
	}

	// Subjects with bytes a key pattern could misread.
	const odd = `oidc:a*b?[c]\d`
	n := now()
	exp := n.Add(time.Hour)
	all := make([]byte, 256)
	for i := range all {
		all[i] = byte(i)
	}

	wantAccounts := map[string]store.Account{}
	for _, name := range []string{"Alice", "bob", "zed*[x]"} {
		a := account(name)
		noErr(t, "CreateAccount", s.CreateAccount(ctx, a))
		a.Username = strings.ToLower(name)
		wantAccounts[a.Username] = a
	}

	full := session("h-full", "local:alice", exp)
	full.EmailVerified, full.AvatarURL, full.Roles = true, "https://img.example.org/a.png", []string{"admin", "user"}
	none := session("h-none", odd, exp)
	none.Roles = []string{}
	plain := session("h-plain", "local:bob", exp)
	wantSessions := map[string]store.Session{}
	for _, sess := range []store.Session{full, none, plain} {
		noErr(t, "PutSession", s.PutSession(ctx, sess))
		wantSessions[sess.IDHash] = sess
	}

	wantLinks := map[string]store.Link{}
	fullLink := store.Link{
		Subject: "local:alice", UserID: "rc-alice", Username: "alice", ProfileHash: "ph1",
		ProfileSyncedAt: n.Add(-time.Hour), LastMintAt: n.Add(-time.Minute), CreatingUsername: "alice.2",
		CreatingAt: n.Add(-2 * time.Minute), DeactivatedAt: n.Add(-3 * time.Minute),
		ChatLoggedOutAt: n.Add(-4 * time.Minute), Secret: []byte{0, 1, 0xff, 0x80, 0},
		Rooms: store.RoomsState{UserID: "rc-alice", Added: []string{"c:r1:sales", "t:t1:Sales"}, Pending: []string{"p:g1:leads"},
			Hash: "h", SyncedAt: n.Add(-5 * time.Minute)},
	}
	creating := store.Link{Subject: odd, Username: "odd", Secret: []byte("sealed"), CreatingUsername: "odd", CreatingAt: n}
	bare := store.Link{Subject: "local:bob", UserID: "rc-bob"}
	for _, l := range []store.Link{fullLink, creating, bare} {
		noErr(t, "UpdateLink", putLink(ctx, s, l))
		wantLinks[l.Subject] = l
	}

	wantTokens := map[string]store.Token{}
	for _, tok := range []store.Token{token("local:alice", "rc-alice", all), token(odd, "rc-odd", []byte{0})} {
		noErr(t, "PutToken", s.PutToken(ctx, tok))
		wantTokens[tok.Subject] = tok
	}

	for i := range exportBulk {
		subject := fmt.Sprintf("bulk:%03d", i)
		sess := session(fmt.Sprintf("h-bulk-%03d", i), subject, exp)
		noErr(t, "PutSession(bulk)", s.PutSession(ctx, sess))
		wantSessions[sess.IDHash] = sess
		l := store.Link{Subject: subject, UserID: "rc-" + subject, Username: fmt.Sprintf("bulk%03d", i)}
		noErr(t, "UpdateLink(bulk)", putLink(ctx, s, l))
		wantLinks[subject] = l
		tok := token(subject, l.UserID, []byte{byte(i), 0, 0xff})
		noErr(t, "PutToken(bulk)", s.PutToken(ctx, tok))
		wantTokens[subject] = tok
	}

	// Short-lived records are not exported.
	noErr(t, "PutCode", s.PutCode(ctx, store.Code{Hash: "code", Subject: "local:alice", Origin: "https://www.example.org", ExpiresAt: n.Add(time.Minute)}))
	_, err := s.UseOnce(ctx, "once", n.Add(time.Minute))
	noErr(t, "UseOnce", err)
	_, _, err = s.Count(ctx, "count", 1, time.Minute)
	noErr(t, "Count", err)
	if l, ok := s.(store.Locker); ok {
		_, _, err := l.TryLock(ctx, "lease", time.Minute)
		noErr(t, "TryLock", err)
	}

	// A session that expires after every other write, so that no later
	// PutSession purges it: the store may still hold it, Export must not
	// yield it.
	noErr(t, "PutSession(expiring)", s.PutSession(ctx, session("h-expiring", "local:alice", time.Now().Add(150*time.Millisecond))))
	for deadline := time.Now().Add(5 * time.Second); ; {
		_, err := s.GetSession(ctx, "h-expiring")
		if errors.Is(err, store.ErrNotFound) {
			break
		}
		noErr(t, "GetSession(expiring)", err)
		if time.Now().After(deadline) {
			t.Fatal("a session 150 ms from expiry was still returned after 5 s")
		}
		time.Sleep(10 * time.Millisecond) // polling GetSession until the session expires
	}

	var (
		kinds    []string // kind of each call, in order
		accounts = map[string]store.Account{}
		sessions = map[string]store.Session{}
		links    = map[string]store.Link{}
		tokens   = map[string]store.Token{}
	)
	dup := func(kind, key string, seen bool) {
		if seen {
			t.Errorf("Export yielded %s %q twice", kind, key)
		}
	}
	noErr(t, "Export", ex.Export(ctx, store.Visitor{
		Account: func(a store.Account) error {
			_, seen := accounts[a.Username]
			dup("account", a.Username, seen)
			accounts[a.Username], kinds = a, append(kinds, "account")
			return nil
		},
		Session: func(sess store.Session) error {
			_, seen := sessions[sess.IDHash]
			dup("session", sess.IDHash, seen)
			sessions[sess.IDHash], kinds = sess, append(kinds, "session")
			return nil
		},
		Link: func(l store.Link) error {
			_, seen := links[l.Subject]
			dup("link", l.Subject, seen)
			links[l.Subject], kinds = l, append(kinds, "link")
			// The record is the caller's: changing it changes nothing stored.
			if len(l.Secret) > 0 {
				l.Secret[0] ^= 0xff
			}
			return nil
		},
		Token: func(tok store.Token) error {
			_, seen := tokens[tok.Subject]
			dup("token", tok.Subject, seen)
			tokens[tok.Subject], kinds = tok, append(kinds, "token")
			if len(tok.Ciphertext) > 0 {
				tok.Ciphertext[0] ^= 0xff
			}
			return nil
		},
	}))

	order := []string{"account", "session", "link", "token"}
	if !slices.IsSortedFunc(kinds, func(a, b string) int { return slices.Index(order, a) - slices.Index(order, b) }) {
		t.Errorf("Export did not yield kind by kind (accounts, sessions, links, tokens)")
	}
	sameKeys(t, "accounts", accounts, wantAccounts)
	sameKeys(t, "sessions (unexpired only)", sessions, wantSessions)
	sameKeys(t, "links", links, wantLinks)
	sameKeys(t, "tokens", tokens, wantTokens)

	for name, want := range wantAccounts {
		got, ok := accounts[name]
		if !ok {
			continue
		}
		checkAccount(t, got, want)
		stored, err := s.GetAccount(ctx, name)
		noErr(t, "GetAccount", err)
		checkAccount(t, got, stored)
	}
	for id, want := range wantSessions {
		got, ok := sessions[id]
		if !ok {
			continue
		}
		checkSession(t, got, want)
		if got.EmailVerified != want.EmailVerified || got.AvatarURL != want.AvatarURL ||
			(got.Roles == nil) != (want.Roles == nil) || !slices.Equal(got.Roles, want.Roles) {
			t.Errorf("exported session %s profile = %v %q %#v, want %v %q %#v", id,
				got.EmailVerified, got.AvatarURL, got.Roles, want.EmailVerified, want.AvatarURL, want.Roles)
		}
	}
	for subject, want := range wantLinks {
		got, ok := links[subject]
		if !ok {
			continue
		}
		stored, err := s.GetLink(ctx, subject)
		noErr(t, "GetLink", err)
		checkLink(t, stored, want) // the exported copy's change did not reach the store
		if len(got.Secret) > 0 {
			got.Secret[0] ^= 0xff // undo the visitor's change
		}
		checkLink(t, got, want)
		if !got.UpdatedAt.Equal(stored.UpdatedAt) {
			t.Errorf("exported link %q UpdatedAt = %v, stored %v", subject, got.UpdatedAt, stored.UpdatedAt)
		}
	}
	for subject, want := range wantTokens {
		got, ok := tokens[subject]
		if !ok {
			continue
		}
		stored, err := s.GetToken(ctx, subject)
		noErr(t, "GetToken", err)
		checkToken(t, stored, want)
		if len(got.Ciphertext) > 0 {
			got.Ciphertext[0] ^= 0xff
		}
		checkToken(t, got, want)
	}

	// nil functions skip their kind.
	onlyLinks := 0
	noErr(t, "Export(links only)", ex.Export(ctx, store.Visitor{Link: func(store.Link) error { onlyLinks++; return nil }}))
	if onlyLinks != len(wantLinks) {
		t.Errorf("Export(links only) yielded %d links, want %d", onlyLinks, len(wantLinks))
	}

	// A function's error stops the enumeration and comes back as is.
	errStop := errors.New("stop here")
	calls = 0
	stop := store.Visitor{
		Account: count.Account,
		Session: func(store.Session) error { calls++; return errStop },
		Link:    count.Link,
		Token:   count.Token,
	}
	if err := ex.Export(ctx, stop); !errors.Is(err, errStop) {
		t.Errorf("Export with a failing function = %v, want its error", err)
	}
	if calls != len(wantAccounts)+1 {
		t.Errorf("Export went on after a function failed: %d calls, want %d", calls, len(wantAccounts)+1)
	}

	// A done ctx fails it before any record.
	done, cancel := context.WithCancel(ctx)
	cancel()
	calls = 0
	if err := ex.Export(done, count); !errors.Is(err, context.Canceled) {
		t.Errorf("Export(done ctx) = %v, want context.Canceled", err)
	}
	if calls != 0 {
		t.Errorf("Export(done ctx) made %d calls", calls)
	}

	// Exporting changed nothing.
	if _, err := s.GetSession(ctx, "h-full"); err != nil {
		t.Errorf("GetSession after Export: %v", err)
	}
	if tok, err := s.GetToken(ctx, "local:alice"); err != nil || !bytes.Equal(tok.Ciphertext, all) {
		t.Errorf("GetToken after Export = %x, %v", tok.Ciphertext, err)
	}
}

// sameKeys reports keys one map has and the other lacks.
func sameKeys[V any](t *testing.T, what string, got, want map[string]V) {
	t.Helper()
	for k := range want {
		if _, ok := got[k]; !ok {
			t.Errorf("Export missed %s %q", what, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("Export yielded %s %q, which should not be there", what, k)
		}
	}
}
