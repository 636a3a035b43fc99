// Package storetest is the conformance suite every store.Store backend must
// pass. A backend's test calls Run with a constructor for fresh, empty stores:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
//	}
//
// The suite defines the contract beyond what the interface's doc comments
// can say: exact error values, case folding, ordering, expiry, time precision,
// copy semantics, context cancellation and concurrent use (run it with -race).
package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
)

// Run runs the conformance subtests against stores made by newStore. Each
// subtest calls newStore once and expects an empty store; Run closes the
// store when the subtest ends (newStore need not register a Close cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"Ping", testPing},
		{"AccountCRUD", testAccountCRUD},
		{"AccountCaseInsensitive", testAccountCaseInsensitive},
		{"AccountList", testAccountList},
		{"SessionCRUD", testSessionCRUD},
		{"SessionProfile", testSessionProfile},
		{"SessionExpiry", testSessionExpiry},
		{"SessionDeleteBySubject", testSessionDeleteBySubject},
		{"LinkCRUD", testLinkCRUD},
		{"TokenCRUD", testTokenCRUD},
		{"TokenCiphertextBytes", testTokenCiphertextBytes},
		{"KeysCaseSensitive", testKeysCaseSensitive},
		{"TimeRoundTrip", testTimeRoundTrip},
		{"Copies", testCopies},
		{"ContextCanceled", testContextCanceled},
		{"ConcurrentTokens", testConcurrentTokens},
		{"Locker", testLocker},
		{"Codes", testCodes},
		{"LinkUpdate", testLinkUpdate},
		{"LinkOneSubjectPerUser", testLinkOneSubjectPerUser},
		{"LinkUpdateRace", testLinkUpdateRace},
		{"LinkRooms", testLinkRooms},
		{"UseOnce", testUseOnce},
		{"LockerRenew", testLockerRenew},
		{"Count", testCount},
		{"ChangeFeed", testChangeFeed},
		{"Export", testExport},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			t.Cleanup(func() {
				if err := s.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			tc.fn(t, s)
		})
	}
}

// now is the current time, millisecond-aligned.
func now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }

// fixed is a reference time for fields whose value does not matter to a test
// but must compare equal when a helper builds the same record twice.
var fixed = time.Date(2025, 1, 2, 3, 4, 5, 6_000_000, time.UTC)

func wantErr(t *testing.T, op string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", op, err, target)
	}
}

func noErr(t *testing.T, op string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", op, err)
	}
}

func sameTime(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}

func checkTime(t *testing.T, field string, got, want time.Time) {
	t.Helper()
	if !sameTime(got, want) {
		t.Errorf("%s = %v, want %v (to the millisecond)", field, got, want)
	}
	if want.IsZero() {
		if !got.IsZero() {
			t.Errorf("%s = %v, want zero time", field, got)
		}
	} else if got.Location() != time.UTC {
		t.Errorf("%s location = %v, want UTC", field, got.Location())
	}
}

func checkAccount(t *testing.T, got, want store.Account) {
	t.Helper()
	if got.Username != want.Username || got.PasswordHash != want.PasswordHash ||
		got.Name != want.Name || got.Email != want.Email {
		t.Errorf("account = %+v, want %+v", got, want)
	}
	checkTime(t, "Account.CreatedAt", got.CreatedAt, want.CreatedAt)
}

func checkSession(t *testing.T, got, want store.Session) {
	t.Helper()
	if got.IDHash != want.IDHash || got.Subject != want.Subject || got.Source != want.Source ||
		got.Username != want.Username || got.Name != want.Name || got.Email != want.Email {
		t.Errorf("session = %+v, want %+v", got, want)
	}
	checkTime(t, "Session.CreatedAt", got.CreatedAt, want.CreatedAt)
	checkTime(t, "Session.ExpiresAt", got.ExpiresAt, want.ExpiresAt)
}

func checkLink(t *testing.T, got, want store.Link) {
	t.Helper()
	if got.Subject != want.Subject || got.UserID != want.UserID ||
		got.Username != want.Username || got.ProfileHash != want.ProfileHash {
		t.Errorf("link = %+v, want %+v", got, want)
	}
	if got.CreatingUsername != want.CreatingUsername {
		t.Errorf("Link.CreatingUsername = %q, want %q", got.CreatingUsername, want.CreatingUsername)
	}
	if d := time.Since(got.UpdatedAt); d < -time.Second || d > time.Minute || got.UpdatedAt.Location() != time.UTC {
		t.Errorf("Link.UpdatedAt = %v, want the time of the last write, in UTC", got.UpdatedAt)
	}
	if !bytes.Equal(got.Secret, want.Secret) {
		t.Errorf("Link.Secret = %x, want %x", got.Secret, want.Secret)
	}
	checkRooms(t, got.Rooms, want.Rooms)
	for _, f := range []struct {
		name      string
		got, want time.Time
	}{
		{"ChatLoggedOutAt", got.ChatLoggedOutAt, want.ChatLoggedOutAt},
		{"ProfileSyncedAt", got.ProfileSyncedAt, want.ProfileSyncedAt},
		{"LastMintAt", got.LastMintAt, want.LastMintAt},
		{"CreatingAt", got.CreatingAt, want.CreatingAt},
		{"DeactivatedAt", got.DeactivatedAt, want.DeactivatedAt},
	} {
		if f.got.IsZero() != f.want.IsZero() {
			t.Errorf("Link.%s = %v, want %v", f.name, f.got, f.want)
		} else if !f.want.IsZero() {
			checkTime(t, "Link."+f.name, f.got, f.want)
		}
	}
}

// putLink writes l whole through UpdateLink.
func putLink(ctx context.Context, s store.Store, l store.Link) error {
	_, err := s.UpdateLink(ctx, l.Subject, func(old *store.Link) error {
		*old = l
		return nil
	})
	return err
}

func checkToken(t *testing.T, got, want store.Token) {
	t.Helper()
	if got.Subject != want.Subject || got.UserID != want.UserID || !bytes.Equal(got.Ciphertext, want.Ciphertext) {
		t.Errorf("token = {%q %q %x}, want {%q %q %x}",
			got.Subject, got.UserID, got.Ciphertext, want.Subject, want.UserID, want.Ciphertext)
	}
	checkTime(t, "Token.MintedAt", got.MintedAt, want.MintedAt)
	checkTime(t, "Token.ValidatedAt", got.ValidatedAt, want.ValidatedAt)
}

func account(username string) store.Account {
	return store.Account{
		Username:     username,
		PasswordHash: "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
		Name:         "Name of " + username,
		Email:        username + "@example.org",
		CreatedAt:    fixed,
	}
}

func session(idHash, subject string, expiresAt time.Time) store.Session {
	return store.Session{
		IDHash:    idHash,
		Subject:   subject,
		Source:    "local",
		Username:  "alice",
		Name:      "Alice A.",
		Email:     "alice@example.org",
		CreatedAt: fixed,
		ExpiresAt: expiresAt,
	}
}

func token(subject, userID string, ct []byte) store.Token {
	return store.Token{
		Subject:     subject,
		UserID:      userID,
		Ciphertext:  ct,
		MintedAt:    fixed,
		ValidatedAt: fixed.Add(time.Minute),
	}
}

func testPing(t *testing.T, s store.Store) {
	noErr(t, "Ping", s.Ping(context.Background()))
}

func testAccountCRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetAccount(ctx, "alice")
	wantErr(t, "GetAccount(absent)", err, store.ErrNotFound)
	wantErr(t, "DeleteAccount(absent)", s.DeleteAccount(ctx, "alice"), store.ErrNotFound)

	a := account("alice")
	noErr(t, "CreateAccount", s.CreateAccount(ctx, a))
	got, err := s.GetAccount(ctx, "alice")
	noErr(t, "GetAccount", err)
	checkAccount(t, got, a)

	// Create never replaces.
	b := account("alice")
	b.PasswordHash = "other"
	wantErr(t, "CreateAccount(dup)", s.CreateAccount(ctx, b), store.ErrConflict)
	got, err = s.GetAccount(ctx, "alice")
	noErr(t, "GetAccount", err)
	checkAccount(t, got, a)

	noErr(t, "DeleteAccount", s.DeleteAccount(ctx, "alice"))
	_, err = s.GetAccount(ctx, "alice")
	wantErr(t, "GetAccount(deleted)", err, store.ErrNotFound)
	wantErr(t, "DeleteAccount(deleted)", s.DeleteAccount(ctx, "alice"), store.ErrNotFound)

	// The name is free again.
	noErr(t, "CreateAccount(again)", s.CreateAccount(ctx, b))
}

func testAccountCaseInsensitive(t *testing.T, s store.Store) {
	ctx := context.Background()
	a := account("Alice")
	noErr(t, "CreateAccount", s.CreateAccount(ctx, a))
	want := a
	want.Username = "alice"
	for _, name := range []string{"alice", "Alice", "ALICE", "aLiCe"} {
		got, err := s.GetAccount(ctx, name)
		noErr(t, "GetAccount("+name+")", err)
		checkAccount(t, got, want)
	}
	wantErr(t, "CreateAccount(ALICE)", s.CreateAccount(ctx, account("ALICE")), store.ErrConflict)
	wantErr(t, "CreateAccount(alice)", s.CreateAccount(ctx, account("alice")), store.ErrConflict)
	list, err := s.ListAccounts(ctx)
	noErr(t, "ListAccounts", err)
	if len(list) != 1 || list[0].Username != "alice" {
		t.Fatalf("ListAccounts = %+v, want one account \"alice\"", list)
	}
	noErr(t, "DeleteAccount(ALICE)", s.DeleteAccount(ctx, "ALICE"))
	_, err = s.GetAccount(ctx, "alice")
	wantErr(t, "GetAccount(deleted)", err, store.ErrNotFound)
}

func testAccountList(t *testing.T, s store.Store) {
	ctx := context.Background()
	list, err := s.ListAccounts(ctx)
	noErr(t, "ListAccounts(empty)", err)
	if len(list) != 0 {
		t.Fatalf("ListAccounts(empty) = %+v, want none", list)
	}
	for _, name := range []string{"dave", "Bob", "carol", "alice", "bob2", "Zed"} {
		noErr(t, "CreateAccount("+name+")", s.CreateAccount(ctx, account(name)))
	}
	list, err = s.ListAccounts(ctx)
	noErr(t, "ListAccounts", err)
	want := []string{"alice", "bob", "bob2", "carol", "dave", "zed"}
	var got []string
	for _, a := range list {
		got = append(got, a.Username)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("ListAccounts usernames = %q, want %q", got, want)
	}
	for _, a := range list {
		w := account(a.Username)
		w.Name, w.Email = a.Name, a.Email // original case lives in Name/Email
		checkAccount(t, a, w)
	}
	noErr(t, "DeleteAccount", s.DeleteAccount(ctx, "carol"))
	list, err = s.ListAccounts(ctx)
	noErr(t, "ListAccounts", err)
	if len(list) != 5 {
		t.Fatalf("ListAccounts after delete: %d accounts, want 5", len(list))
	}
}

func testSessionCRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetSession(ctx, "h1")
	wantErr(t, "GetSession(absent)", err, store.ErrNotFound)
	noErr(t, "DeleteSession(absent)", s.DeleteSession(ctx, "h1"))

	a := session("h1", "local:alice", now().Add(time.Hour))
	noErr(t, "PutSession", s.PutSession(ctx, a))
	got, err := s.GetSession(ctx, "h1")
	noErr(t, "GetSession", err)
	checkSession(t, got, a)

	// Put replaces.
	b := a
	b.Subject, b.Source, b.Username, b.Name, b.Email = "oidc:123", "oidc", "bob", "Bob", "bob@example.org"
	b.CreatedAt, b.ExpiresAt = now(), now().Add(2*time.Hour)
	noErr(t, "PutSession(replace)", s.PutSession(ctx, b))
	got, err = s.GetSession(ctx, "h1")
	noErr(t, "GetSession", err)
	checkSession(t, got, b)

	noErr(t, "PutSession(h2)", s.PutSession(ctx, session("h2", "local:alice", now().Add(time.Hour))))
	noErr(t, "DeleteSession", s.DeleteSession(ctx, "h1"))
	_, err = s.GetSession(ctx, "h1")
	wantErr(t, "GetSession(deleted)", err, store.ErrNotFound)
	noErr(t, "DeleteSession(deleted)", s.DeleteSession(ctx, "h1"))
	_, err = s.GetSession(ctx, "h2")
	noErr(t, "GetSession(h2)", err)
}

// testSessionProfile: the optional profile fields round-trip, and nil
// Roles (not managed) stays distinct from an empty list (no roles).
func testSessionProfile(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Hour)
	full := session("h-full", "oidc:1", exp)
	full.EmailVerified, full.AvatarURL, full.Roles = true, "https://img.example.org/a.png", []string{"moderator", "user"}
	full.Groups = []string{"staff", "cn=chat admins,ou=groups,dc=example,dc=org", "a&b=c"}
	none := session("h-none", "oidc:2", exp)
	none.Roles, none.Groups = []string{}, []string{}
	plain := session("h-plain", "oidc:3", exp)
	for _, in := range []store.Session{full, none, plain} {
		noErr(t, "PutSession", s.PutSession(ctx, in))
		got, err := s.GetSession(ctx, in.IDHash)
		noErr(t, "GetSession", err)
		if got.EmailVerified != in.EmailVerified || got.AvatarURL != in.AvatarURL || (got.Roles == nil) != (in.Roles == nil) || !slices.Equal(got.Roles, in.Roles) ||
			(got.Groups == nil) != (in.Groups == nil) || !slices.Equal(got.Groups, in.Groups) {
			t.Fatalf("profile round trip: put %+v, got %+v", in, got)
		}
	}
}

func testSessionExpiry(t *testing.T, s store.Store) {
	ctx := context.Background()
	// Millisecond-aligned so that ExpiresAt == now at most, never after it.
	n := now()
	cases := []struct {
		id      string
		expires time.Time
		live    bool
	}{
		{"past", n.Add(-time.Hour), false},
		{"just-past", n.Add(-time.Millisecond), false},
		{"now", n, false}, // ExpiresAt <= now: expired
		{"epoch", time.Unix(0, 0), false},
		{"zero", time.Time{}, false},
		{"future", n.Add(time.Hour), true},
		{"far-future", n.AddDate(50, 0, 0), true},
	}
	for _, c := range cases {
		noErr(t, "PutSession("+c.id+")", s.PutSession(ctx, session(c.id, "local:alice", c.expires)))
	}
	for _, c := range cases {
		got, err := s.GetSession(ctx, c.id)
		if c.live {
			noErr(t, "GetSession("+c.id+")", err)
			checkSession(t, got, session(c.id, "local:alice", c.expires))
		} else {
			wantErr(t, "GetSession("+c.id+")", err, store.ErrNotFound)
		}
	}
	// Refreshing an expired session by Put makes it live again.
	noErr(t, "PutSession(refresh)", s.PutSession(ctx, session("past", "local:alice", n.Add(time.Hour))))
	_, err := s.GetSession(ctx, "past")
	noErr(t, "GetSession(refreshed)", err)
}

func testSessionDeleteBySubject(t *testing.T, s store.Store) {
	ctx := context.Background()
	n, err := s.DeleteSessionsBySubject(ctx, "local:alice")
	noErr(t, "DeleteSessionsBySubject(none)", err)
	if n != 0 {
		t.Fatalf("DeleteSessionsBySubject(none) = %d, want 0", n)
	}
	exp := now().Add(time.Hour)
	for _, id := range []string{"a1", "a2", "a3"} {
		noErr(t, "PutSession", s.PutSession(ctx, session(id, "local:alice", exp)))
	}
	noErr(t, "PutSession", s.PutSession(ctx, session("b1", "local:bob", exp)))
	noErr(t, "PutSession", s.PutSession(ctx, session("c1", "local:Alice", exp)))

	n, err = s.DeleteSessionsBySubject(ctx, "local:alice")
	noErr(t, "DeleteSessionsBySubject", err)
	if n != 3 {
		t.Fatalf("DeleteSessionsBySubject = %d, want 3", n)
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		_, err := s.GetSession(ctx, id)
		wantErr(t, "GetSession("+id+")", err, store.ErrNotFound)
	}
	for _, id := range []string{"b1", "c1"} {
		_, err := s.GetSession(ctx, id)
		noErr(t, "GetSession("+id+")", err)
	}
	n, err = s.DeleteSessionsBySubject(ctx, "local:alice")
	noErr(t, "DeleteSessionsBySubject(again)", err)
	if n != 0 {
		t.Fatalf("DeleteSessionsBySubject(again) = %d, want 0", n)
	}
}

func testLinkCRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetLink(ctx, "local:alice")
	wantErr(t, "GetLink(absent)", err, store.ErrNotFound)

	a := store.Link{Subject: "local:alice", UserID: "aBcDeFgHiJkLmNoPq", Username: "alice", ProfileHash: "h1", UpdatedAt: now()}
	noErr(t, "PutLink", putLink(ctx, s, a))
	got, err := s.GetLink(ctx, "local:alice")
	noErr(t, "GetLink", err)
	checkLink(t, got, a)

	b := a
	b.UserID, b.Username, b.ProfileHash, b.UpdatedAt = "zYxWvUtSrQpOnMlKj", "alice.2", "h2", now().Add(time.Minute)
	b.ChatLoggedOutAt = now().Add(2 * time.Minute)
	b.ProfileSyncedAt, b.LastMintAt = now().Add(-time.Minute), now().Add(-2*time.Minute)
	b.CreatingUsername, b.CreatingAt = "alice.2", now().Add(-3*time.Minute)
	b.DeactivatedAt = now().Add(-4 * time.Minute)
	b.Secret = []byte{0, 1, 2, 0xff}
	noErr(t, "PutLink(replace)", putLink(ctx, s, b))
	got, err = s.GetLink(ctx, "local:alice")
	noErr(t, "GetLink", err)
	checkLink(t, got, b)

	c := store.Link{Subject: "local:bob", UserID: "u2", Username: "bob", UpdatedAt: now()}
	noErr(t, "PutLink(bob)", putLink(ctx, s, c))
	got, err = s.GetLink(ctx, "local:alice")
	noErr(t, "GetLink", err)
	checkLink(t, got, b)

	noErr(t, "DeleteLink", s.DeleteLink(ctx, "local:alice"))
	_, err = s.GetLink(ctx, "local:alice")
	wantErr(t, "GetLink(deleted)", err, store.ErrNotFound)
	noErr(t, "DeleteLink(absent)", s.DeleteLink(ctx, "local:alice"))
	got, err = s.GetLink(ctx, "local:bob")
	noErr(t, "GetLink(bob)", err)
	checkLink(t, got, c)
}

func testTokenCRUD(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.GetToken(ctx, "local:alice")
	wantErr(t, "GetToken(absent)", err, store.ErrNotFound)
	noErr(t, "DeleteToken(absent)", s.DeleteToken(ctx, "local:alice"))

	a := token("local:alice", "u1", []byte("ciphertext-1"))
	noErr(t, "PutToken", s.PutToken(ctx, a))
	got, err := s.GetToken(ctx, "local:alice")
	noErr(t, "GetToken", err)
	checkToken(t, got, a)

	b := token("local:alice", "u1b", []byte("ciphertext-2, longer than the first"))
	b.MintedAt = now().Add(time.Second)
	noErr(t, "PutToken(replace)", s.PutToken(ctx, b))
	got, err = s.GetToken(ctx, "local:alice")
	noErr(t, "GetToken", err)
	checkToken(t, got, b)

	c := token("local:bob", "u2", []byte("ciphertext-3"))
	noErr(t, "PutToken(bob)", s.PutToken(ctx, c))

	noErr(t, "DeleteToken", s.DeleteToken(ctx, "local:alice"))
	_, err = s.GetToken(ctx, "local:alice")
	wantErr(t, "GetToken(deleted)", err, store.ErrNotFound)
	noErr(t, "DeleteToken(deleted)", s.DeleteToken(ctx, "local:alice"))
	got, err = s.GetToken(ctx, "local:bob")
	noErr(t, "GetToken(bob)", err)
	checkToken(t, got, c)
}

func testTokenCiphertextBytes(t *testing.T, s store.Store) {
	ctx := context.Background()
	all := make([]byte, 0, 512)
	for i := range 256 {
		all = append(all, byte(i))
	}
	for i := range 256 {
		all = append(all, byte(255-i))
	}
	cases := map[string][]byte{
		"all-bytes":   all,
		"nul-only":    {0},
		"nul-edges":   {0, 'x', 0},
		"invalid-utf": {0xff, 0xfe, 0xc3, 0x28},
		"large":       bytes.Repeat([]byte{0, 1, 0xff, 0x80}, 16<<10),
	}
	for name, ct := range cases {
		want := token("s:"+name, "u", bytes.Clone(ct))
		noErr(t, "PutToken("+name+")", s.PutToken(ctx, want))
		got, err := s.GetToken(ctx, "s:"+name)
		noErr(t, "GetToken("+name+")", err)
		if !bytes.Equal(got.Ciphertext, ct) {
			t.Errorf("%s: Ciphertext round-trip mismatch: got %d bytes, want %d", name, len(got.Ciphertext), len(ct))
		}
	}
	// An empty ciphertext comes back empty (nil or zero-length).
	noErr(t, "PutToken(empty)", s.PutToken(ctx, token("s:empty", "u", []byte{})))
	got, err := s.GetToken(ctx, "s:empty")
	noErr(t, "GetToken(empty)", err)
	if len(got.Ciphertext) != 0 {
		t.Errorf("empty Ciphertext came back as %x", got.Ciphertext)
	}
}

func testKeysCaseSensitive(t *testing.T, s store.Store) {
	ctx := context.Background()
	noErr(t, "PutToken", s.PutToken(ctx, token("local:Alice", "u1", []byte{1})))
	_, err := s.GetToken(ctx, "local:alice")
	wantErr(t, "GetToken(other case)", err, store.ErrNotFound)
	noErr(t, "PutLink", putLink(ctx, s, store.Link{Subject: "local:Alice", UserID: "u1", UpdatedAt: now()}))
	_, err = s.GetLink(ctx, "local:alice")
	wantErr(t, "GetLink(other case)", err, store.ErrNotFound)
	noErr(t, "PutSession", s.PutSession(ctx, session("AbC", "local:Alice", now().Add(time.Hour))))
	_, err = s.GetSession(ctx, "abc")
	wantErr(t, "GetSession(other case)", err, store.ErrNotFound)
}

func testTimeRoundTrip(t *testing.T, s store.Store) {
	ctx := context.Background()
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	// Sub-millisecond parts and a non-UTC zone; all must come back as the same
	// instant to the millisecond, in UTC.
	t1 := time.Now().Add(time.Hour).In(zone)
	t2 := time.Date(2031, 12, 31, 23, 59, 59, 999_999_999, zone)
	t3 := time.Date(1969, 7, 20, 20, 17, 40, 123_456_789, time.UTC) // before the epoch
	t4 := time.Date(2024, 2, 29, 12, 0, 0, 1_000_001, time.UTC)

	a := account("timer")
	a.CreatedAt = t3
	noErr(t, "CreateAccount", s.CreateAccount(ctx, a))
	gotA, err := s.GetAccount(ctx, "timer")
	noErr(t, "GetAccount", err)
	checkAccount(t, gotA, a)
	list, err := s.ListAccounts(ctx)
	noErr(t, "ListAccounts", err)
	if len(list) != 1 {
		t.Fatalf("ListAccounts: %d accounts, want 1", len(list))
	}
	checkAccount(t, list[0], a)

	ss := session("h", "local:timer", t2)
	ss.CreatedAt = t1
	noErr(t, "PutSession", s.PutSession(ctx, ss))
	gotS, err := s.GetSession(ctx, "h")
	noErr(t, "GetSession", err)
	checkSession(t, gotS, ss)

	l := store.Link{Subject: "local:timer", UserID: "u", Username: "timer", UpdatedAt: t4}
	noErr(t, "PutLink", putLink(ctx, s, l))
	gotL, err := s.GetLink(ctx, "local:timer")
	noErr(t, "GetLink", err)
	checkLink(t, gotL, l)

	tk := store.Token{Subject: "local:timer", UserID: "u", Ciphertext: []byte{1, 2, 3}, MintedAt: t1}
	// ValidatedAt left zero: a zero time round-trips as zero.
	noErr(t, "PutToken", s.PutToken(ctx, tk))
	gotT, err := s.GetToken(ctx, "local:timer")
	noErr(t, "GetToken", err)
	checkToken(t, gotT, tk)
	if !gotT.ValidatedAt.IsZero() {
		t.Errorf("zero ValidatedAt came back as %v", gotT.ValidatedAt)
	}
}

func testCopies(t *testing.T, s store.Store) {
	ctx := context.Background()
	ct := []byte("secret-ciphertext")
	tk := token("local:alice", "u1", ct)
	noErr(t, "PutToken", s.PutToken(ctx, tk))
	ct[0] = 'X' // caller reuses its buffer after Put
	got, err := s.GetToken(ctx, "local:alice")
	noErr(t, "GetToken", err)
	if string(got.Ciphertext) != "secret-ciphertext" {
		t.Fatalf("store kept a reference to the caller's Ciphertext: %q", got.Ciphertext)
	}
	got.Ciphertext[0] = 'Y' // caller scribbles on what it got
	again, err := s.GetToken(ctx, "local:alice")
	noErr(t, "GetToken", err)
	if string(again.Ciphertext) != "secret-ciphertext" {
		t.Fatalf("store handed out its own Ciphertext: %q", again.Ciphertext)
	}

	noErr(t, "CreateAccount", s.CreateAccount(ctx, account("alice")))
	list, err := s.ListAccounts(ctx)
	noErr(t, "ListAccounts", err)
	list[0].Name = "changed"
	list, err = s.ListAccounts(ctx)
	noErr(t, "ListAccounts", err)
	if list[0].Name == "changed" {
		t.Fatalf("ListAccounts handed out stored state")
	}
}

func testContextCanceled(t *testing.T, s store.Store) {
	bg := context.Background()
	// Some data, so that calls could succeed if they ignored ctx.
	noErr(t, "CreateAccount", s.CreateAccount(bg, account("alice")))
	noErr(t, "PutSession", s.PutSession(bg, session("h", "local:alice", now().Add(time.Hour))))
	noErr(t, "PutLink", putLink(bg, s, store.Link{Subject: "local:alice", UserID: "u", UpdatedAt: now()}))
	noErr(t, "PutToken", s.PutToken(bg, token("local:alice", "u", []byte{1})))

	ctx, cancel := context.WithCancel(bg)
	cancel()
	calls := map[string]func() error{
		"CreateAccount": func() error { return s.CreateAccount(ctx, account("bob")) },
		"GetAccount":    func() error { _, err := s.GetAccount(ctx, "alice"); return err },
		"ListAccounts":  func() error { _, err := s.ListAccounts(ctx); return err },
		"DeleteAccount": func() error { return s.DeleteAccount(ctx, "alice") },
		"PutSession": func() error {
			return s.PutSession(ctx, session("h2", "local:alice", now().Add(time.Hour)))
		},
		"GetSession":    func() error { _, err := s.GetSession(ctx, "h"); return err },
		"DeleteSession": func() error { return s.DeleteSession(ctx, "h") },
		"DeleteSessionsBySubject": func() error {
			_, err := s.DeleteSessionsBySubject(ctx, "local:alice")
			return err
		},
		"GetLink":      func() error { _, err := s.GetLink(ctx, "local:alice"); return err },
		"UpdateLink":   func() error { return putLink(ctx, s, store.Link{Subject: "local:bob", UpdatedAt: now()}) },
		"LinkByUserID": func() error { _, err := s.LinkByUserID(ctx, "u"); return err },
		"UseOnce": func() error {
			_, err := s.UseOnce(ctx, "k", time.Now().Add(time.Minute))
			return err
		},
		"GetToken":    func() error { _, err := s.GetToken(ctx, "local:alice"); return err },
		"PutToken":    func() error { return s.PutToken(ctx, token("local:bob", "u", []byte{2})) },
		"DeleteToken": func() error { return s.DeleteToken(ctx, "local:alice") },
		"Ping":        func() error { return s.Ping(ctx) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with cancelled ctx: err = %v, want one wrapping context.Canceled", name, err)
		}
	}
	// Nothing above took effect.
	_, err := s.GetAccount(bg, "alice")
	noErr(t, "GetAccount(after cancelled delete)", err)
	_, err = s.GetAccount(bg, "bob")
	wantErr(t, "GetAccount(after cancelled create)", err, store.ErrNotFound)
	_, err = s.GetSession(bg, "h")
	noErr(t, "GetSession(after cancelled delete)", err)
	_, err = s.GetToken(bg, "local:alice")
	noErr(t, "GetToken(after cancelled delete)", err)
	_, err = s.GetToken(bg, "local:bob")
	wantErr(t, "GetToken(after cancelled put)", err, store.ErrNotFound)
	_, err = s.GetLink(bg, "local:bob")
	wantErr(t, "GetLink(after cancelled update)", err, store.ErrNotFound)
	if first, err := s.UseOnce(bg, "k", time.Now().Add(time.Minute)); err != nil || !first {
		t.Errorf("UseOnce after a cancelled UseOnce = %v, %v; want the key unused", first, err)
	}
}

func testConcurrentTokens(t *testing.T, s store.Store) {
	ctx := context.Background()
	const (
		workers = 50
		rounds  = 10
	)
	base := now()
	tok := func(subject string, w, r int) store.Token {
		id := fmt.Sprintf("w%02d-r%02d", w, r)
		return store.Token{
			Subject:     subject,
			UserID:      id,
			Ciphertext:  []byte("ct-" + id),
			MintedAt:    base.Add(time.Duration(w*rounds+r) * time.Millisecond),
			ValidatedAt: base.Add(time.Duration(w*rounds+r) * time.Second),
		}
	}
	// consistent reports whether got is, field for field, one record that
	// some writer put (no torn mix of two writes).
	consistent := func(got store.Token, subject string) bool {
		var w, r int
		if _, err := fmt.Sscanf(got.UserID, "w%02d-r%02d", &w, &r); err != nil {
			return false
		}
		want := tok(subject, w, r)
		return got.Subject == subject && bytes.Equal(got.Ciphertext, want.Ciphertext) &&
			sameTime(got.MintedAt, want.MintedAt) && sameTime(got.ValidatedAt, want.ValidatedAt)
	}

	t.Run("DistinctSubjects", func(t *testing.T) {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				subject := fmt.Sprintf("local:user%02d", w)
				for r := range rounds {
					want := tok(subject, w, r)
					if err := s.PutToken(ctx, want); err != nil {
						t.Errorf("PutToken(%s): %v", subject, err)
						return
					}
					got, err := s.GetToken(ctx, subject)
					if err != nil {
						t.Errorf("GetToken(%s): %v", subject, err)
						return
					}
					// Sole writer of this subject: reads its own last write.
					if got.UserID != want.UserID || !consistent(got, subject) {
						t.Errorf("GetToken(%s) = %q, want %q", subject, got.UserID, want.UserID)
						return
					}
				}
			})
		}
		wg.Wait()
		for w := range workers {
			subject := fmt.Sprintf("local:user%02d", w)
			got, err := s.GetToken(ctx, subject)
			noErr(t, "GetToken", err)
			checkToken(t, got, tok(subject, w, rounds-1))
		}
	})

	t.Run("SameSubject", func(t *testing.T) {
		const subject = "local:shared"
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for r := range rounds {
					if err := s.PutToken(ctx, tok(subject, w, r)); err != nil {
						t.Errorf("PutToken: %v", err)
						return
					}
					got, err := s.GetToken(ctx, subject)
					if err != nil {
						t.Errorf("GetToken: %v", err)
						return
					}
					if !consistent(got, subject) {
						t.Errorf("GetToken returned a torn record: %+v", got)
						return
					}
				}
			})
		}
		wg.Wait()
		got, err := s.GetToken(ctx, subject)
		noErr(t, "GetToken", err)
		if !consistent(got, subject) {
			t.Fatalf("final GetToken returned a torn record: %+v", got)
		}
		// Last write wins once writers are quiet.
		last := tok(subject, workers, 0)
		noErr(t, "PutToken(last)", s.PutToken(ctx, last))
		got, err = s.GetToken(ctx, subject)
		noErr(t, "GetToken", err)
		checkToken(t, got, last)
	})
}

// testLocker: one holder at a time; expiry frees the key; Unlock with a
// stale token does not release someone else's lease.
func testLocker(t *testing.T, s store.Store) {
	l, ok := s.(store.Locker)
	if !ok {
		t.Skip("store has no Locker capability")
	}
	ctx := context.Background()
	tok, got, err := l.TryLock(ctx, "mint:a", time.Minute)
	noErr(t, "TryLock", err)
	if !got {
		t.Fatal("free key not locked")
	}
	if _, got, _ := l.TryLock(ctx, "mint:a", time.Minute); got {
		t.Fatal("second holder got the lease")
	}
	if _, got, _ := l.TryLock(ctx, "mint:b", time.Minute); !got {
		t.Fatal("another key is independent")
	}
	noErr(t, "Unlock(stale)", l.Unlock(ctx, "mint:a", "not-the-token"))
	if _, got, _ := l.TryLock(ctx, "mint:a", time.Minute); got {
		t.Fatal("a stale token released the lease")
	}
	noErr(t, "Unlock", l.Unlock(ctx, "mint:a", tok))
	if _, got, _ := l.TryLock(ctx, "mint:a", -time.Second); !got {
		t.Fatal("released key not lockable")
	}
	// That lease expired at once: the key is free again.
	if _, got, _ := l.TryLock(ctx, "mint:a", time.Minute); !got {
		t.Fatal("expired lease still held")
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, got, err := l.TryLock(ctx, "race", time.Minute); err == nil && got {
				wins.Add(1)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent winners, want 1", wins.Load())
	}
}

// testCodes: a code is consumed once, even under concurrency; expired
// codes are not returned.
func testCodes(t *testing.T, s store.Store) {
	ctx := context.Background()
	_, err := s.ConsumeCode(ctx, "absent")
	wantErr(t, "ConsumeCode(absent)", err, store.ErrNotFound)
	c := store.Code{Hash: "h1", Subject: "local:alice", Origin: "https://www.example.org", ExpiresAt: time.Now().Add(time.Minute)}
	noErr(t, "PutCode", s.PutCode(ctx, c))
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			got, err := s.ConsumeCode(ctx, "h1")
			if err == nil {
				wins.Add(1)
				if got.Subject != c.Subject || got.Origin != c.Origin {
					t.Errorf("consumed %+v, want %+v", got, c)
				}
			} else if !errors.Is(err, store.ErrNotFound) {
				t.Errorf("ConsumeCode: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("code consumed %d times, want once", wins.Load())
	}
	noErr(t, "PutCode(expired)", s.PutCode(ctx, store.Code{Hash: "h2", Subject: "s", Origin: "o", ExpiresAt: time.Now().Add(-time.Second)}))
	_, err = s.ConsumeCode(ctx, "h2")
	wantErr(t, "ConsumeCode(expired)", err, store.ErrNotFound)
}

// testLinkUpdate: UpdateLink sees the stored link (or one with only the
// subject), writes what the updater leaves, and writes nothing when the
// updater fails.
// checkRooms compares rooms records (nil and empty lists alike, times to
// the millisecond).
func checkRooms(t *testing.T, got, want store.RoomsState) {
	t.Helper()
	if got.UserID != want.UserID || got.Hash != want.Hash || !slices.Equal(got.Added, want.Added) || !slices.Equal(got.Pending, want.Pending) {
		t.Errorf("Link.Rooms = %+v, want %+v", got, want)
	}
	if got.SyncedAt.IsZero() != want.SyncedAt.IsZero() {
		t.Errorf("Link.Rooms.SyncedAt = %v, want %v", got.SyncedAt, want.SyncedAt)
	} else if !want.SyncedAt.IsZero() {
		checkTime(t, "Link.Rooms.SyncedAt", got.SyncedAt, want.SyncedAt)
	}
}

// testLinkRooms: the rooms sync's record (Link.Rooms) round-trips through
// UpdateLink, survives writes of other fields, is a copy both ways, and
// goes with the link.
func testLinkRooms(t *testing.T, s store.Store) {
	ctx := context.Background()
	rooms := store.RoomsState{
		UserID:   "u-alice",
		Added:    []string{"c:GENERAL:general", "p:Zq2:ventes-équipe", `t:607e0d9b49d493189836bfac:Sales "EU": 2`},
		Pending:  []string{"c:r9:sales"},
		Hash:     "0123456789abcdef",
		SyncedAt: time.Now().Add(-time.Minute),
	}
	got, err := s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		l.UserID, l.Username, l.Rooms = "u-alice", "alice", rooms
		return nil
	})
	noErr(t, "UpdateLink(rooms)", err)
	want := store.Link{Subject: "local:alice", UserID: "u-alice", Username: "alice", Rooms: rooms.Clone()}
	checkLink(t, got, want)
	rooms.Added[0] = "c:changed:by-the-caller" // the caller reuses its slice after the write
	stored, err := s.GetLink(ctx, "local:alice")
	noErr(t, "GetLink", err)
	checkLink(t, stored, want)
	stored.Rooms.Added[1] = "c:changed:by-the-reader" // a reader scribbles on what it got
	again, _ := s.GetLink(ctx, "local:alice")
	checkLink(t, again, want)

	// Another writer's fields leave the record alone; the updater sees it.
	var seen store.RoomsState
	_, err = s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		seen = l.Rooms
		l.ProfileHash = "p1"
		return nil
	})
	noErr(t, "UpdateLink(profile)", err)
	checkRooms(t, seen, want.Rooms)
	want.ProfileHash = "p1"
	byUser, err := s.LinkByUserID(ctx, "u-alice")
	noErr(t, "LinkByUserID", err)
	checkLink(t, byUser, want)

	// Clearing it yields the zero record.
	_, err = s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		l.Rooms = store.RoomsState{}
		return nil
	})
	noErr(t, "UpdateLink(clear)", err)
	stored, _ = s.GetLink(ctx, "local:alice")
	if !stored.Rooms.IsZero() {
		t.Errorf("cleared Link.Rooms = %+v, want the zero record", stored.Rooms)
	}
	// A new link starts without one; deleting the link deletes it.
	bob, err := s.UpdateLink(ctx, "local:bob", func(l *store.Link) error { l.UserID = "u-bob"; return nil })
	noErr(t, "UpdateLink(bob)", err)
	if !bob.Rooms.IsZero() {
		t.Errorf("new link's Rooms = %+v", bob.Rooms)
	}
	_, err = s.UpdateLink(ctx, "local:bob", func(l *store.Link) error { l.Rooms = store.RoomsState{UserID: "u-bob", Hash: "h"}; return nil })
	noErr(t, "UpdateLink(bob rooms)", err)
	noErr(t, "DeleteLink(bob)", s.DeleteLink(ctx, "local:bob"))
	bob, err = s.UpdateLink(ctx, "local:bob", func(l *store.Link) error { l.UserID = "u-bob"; return nil })
	noErr(t, "UpdateLink(bob again)", err)
	if !bob.Rooms.IsZero() {
		t.Errorf("a deleted link's Rooms came back: %+v", bob.Rooms)
	}
}

func testLinkUpdate(t *testing.T, s store.Store) {
	ctx := context.Background()
	var seen store.Link
	got, err := s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		seen = *l
		l.UserID, l.Username = "u-alice", "alice"
		return nil
	})
	noErr(t, "UpdateLink(create)", err)
	if seen.Subject != "local:alice" || seen.UserID != "" || !seen.UpdatedAt.IsZero() {
		t.Errorf("updater of an absent link saw %+v, want only the subject", seen)
	}
	want := store.Link{Subject: "local:alice", UserID: "u-alice", Username: "alice"}
	checkLink(t, got, want)
	stored, err := s.GetLink(ctx, "local:alice")
	noErr(t, "GetLink", err)
	checkLink(t, stored, want)

	boom := errors.New("updater refuses")
	_, err = s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		l.Username = "changed"
		return boom
	})
	if err != boom {
		t.Fatalf("UpdateLink with a failing updater = %v, want the updater's error as is", err)
	}
	stored, _ = s.GetLink(ctx, "local:alice")
	checkLink(t, stored, want)

	// The updater cannot move the record to another subject.
	_, err = s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		l.Subject = "local:mallory"
		l.ProfileHash = "p"
		return nil
	})
	noErr(t, "UpdateLink(subject changed)", err)
	_, err = s.GetLink(ctx, "local:mallory")
	wantErr(t, "GetLink(mallory)", err, store.ErrNotFound)
	stored, _ = s.GetLink(ctx, "local:alice")
	want.ProfileHash = "p"
	checkLink(t, stored, want)

	byUser, err := s.LinkByUserID(ctx, "u-alice")
	noErr(t, "LinkByUserID", err)
	checkLink(t, byUser, want)
	_, err = s.LinkByUserID(ctx, "u-nobody")
	wantErr(t, "LinkByUserID(absent)", err, store.ErrNotFound)
	_, err = s.LinkByUserID(ctx, "")
	wantErr(t, "LinkByUserID(empty)", err, store.ErrNotFound)
}

// testLinkOneSubjectPerUser: a Rocket.Chat user id linked to one subject
// is never linked to another (the account-takeover boundary); it is free
// again once its link is deleted or moved to another user id.
func testLinkOneSubjectPerUser(t *testing.T, s store.Store) {
	ctx := context.Background()
	noErr(t, "link carol", putLink(ctx, s, store.Link{Subject: "header:carol", UserID: "u-carol", Username: "carol"}))
	// Two creations in progress (no user id yet) do not collide.
	noErr(t, "pending 1", putLink(ctx, s, store.Link{Subject: "header:p1", CreatingUsername: "x", CreatingAt: now()}))
	noErr(t, "pending 2", putLink(ctx, s, store.Link{Subject: "header:p2", CreatingUsername: "x", CreatingAt: now()}))

	_, err := s.UpdateLink(ctx, "header:CAROL", func(l *store.Link) error {
		l.UserID, l.Username = "u-carol", "carol"
		return nil
	})
	wantErr(t, "UpdateLink(another subject, same user)", err, store.ErrLinkTaken)
	wantErr(t, "UpdateLink(another subject, same user)", err, store.ErrConflict)
	var taken *store.LinkTakenError
	if !errors.As(err, &taken) || taken.Holder != "header:carol" || taken.UserID != "u-carol" {
		t.Fatalf("error %v does not name the holder header:carol", err)
	}
	if _, err := s.GetLink(ctx, "header:CAROL"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused link was written (GetLink err = %v)", err)
	}
	// An existing link of another subject cannot be pointed at carol's user either.
	noErr(t, "link dave", putLink(ctx, s, store.Link{Subject: "header:dave", UserID: "u-dave", Username: "dave"}))
	_, err = s.UpdateLink(ctx, "header:dave", func(l *store.Link) error {
		l.UserID = "u-carol"
		return nil
	})
	wantErr(t, "UpdateLink(move to a taken user)", err, store.ErrLinkTaken)
	got, _ := s.GetLink(ctx, "header:dave")
	if got.UserID != "u-dave" {
		t.Fatalf("dave's link changed to %q after a refused update", got.UserID)
	}
	// The holder itself may rewrite its link.
	noErr(t, "carol again", putLink(ctx, s, store.Link{Subject: "header:carol", UserID: "u-carol", Username: "carol", ProfileHash: "h"}))
	// Once carol's link moves to another user id, the old one is free.
	noErr(t, "carol moves", putLink(ctx, s, store.Link{Subject: "header:carol", UserID: "u-carol-2", Username: "carol"}))
	noErr(t, "dave takes the freed id", putLink(ctx, s, store.Link{Subject: "header:dave", UserID: "u-carol", Username: "dave"}))
	// And after a delete.
	noErr(t, "DeleteLink", s.DeleteLink(ctx, "header:carol"))
	noErr(t, "p1 takes the deleted link's id", putLink(ctx, s, store.Link{Subject: "header:p1", UserID: "u-carol-2"}))
	// Concurrent claims of one free user id by many subjects: exactly one wins.
	var wins atomic.Int64
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			_, err := s.UpdateLink(ctx, fmt.Sprintf("jwt:claimant-%d", i), func(l *store.Link) error {
				l.UserID = "u-contested"
				return nil
			})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, store.ErrLinkTaken):
				t.Errorf("claimant %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d subjects linked to one Rocket.Chat user, want 1", wins.Load())
	}
}

// testLinkUpdateRace: concurrent read-modify-writes of one link lose
// nothing (each updater appends one mark; all marks survive), and writers
// of different fields never undo each other.
func testLinkUpdateRace(t *testing.T, s store.Store) {
	ctx := context.Background()
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, err := s.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
				l.ProfileHash += "x"
				if i == n/2 {
					l.ChatLoggedOutAt = now()
				}
				return nil
			})
			if err != nil {
				t.Errorf("UpdateLink %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	got, err := s.GetLink(ctx, "local:alice")
	noErr(t, "GetLink", err)
	if len(got.ProfileHash) != n {
		t.Fatalf("%d of %d concurrent updates survived (lost updates)", len(got.ProfileHash), n)
	}
	if got.ChatLoggedOutAt.IsZero() {
		t.Fatal("a concurrent update erased ChatLoggedOutAt written by another")
	}
}

// testUseOnce: the first use of a key wins, even under concurrency; keys
// are independent and case-sensitive; an expired key can be used again.
func testUseOnce(t *testing.T, s store.Store) {
	ctx := context.Background()
	exp := time.Now().Add(time.Minute)
	first, err := s.UseOnce(ctx, "webhook:ab", exp)
	noErr(t, "UseOnce", err)
	if !first {
		t.Fatal("first use refused")
	}
	if again, _ := s.UseOnce(ctx, "webhook:ab", exp); again {
		t.Fatal("second use accepted")
	}
	if other, _ := s.UseOnce(ctx, "webhook:AB", exp); !other {
		t.Fatal("keys must be case-sensitive")
	}
	var wins atomic.Int64
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if ok, err := s.UseOnce(ctx, "race", exp); err == nil && ok {
				wins.Add(1)
			} else if err != nil {
				t.Errorf("UseOnce: %v", err)
			}
		})
	}
	wg.Wait()
	if wins.Load() != 1 {
		t.Fatalf("%d concurrent first uses, want 1", wins.Load())
	}
	past := time.Now().Add(-time.Second)
	noErr(t, "UseOnce(expired)", func() error { _, err := s.UseOnce(ctx, "old", past); return err }())
	if ok, _ := s.UseOnce(ctx, "old", exp); !ok {
		t.Fatal("an expired key was still refused")
	}
	for i := range 300 { // purging keeps working past any batch size
		if ok, err := s.UseOnce(ctx, fmt.Sprintf("bulk-%d", i), time.Now().Add(time.Minute)); err != nil || !ok {
			t.Fatalf("UseOnce(bulk-%d) = %v, %v", i, ok, err)
		}
	}
	if again, _ := s.UseOnce(ctx, "webhook:ab", exp); again {
		t.Fatal("an unexpired key was forgotten")
	}
}

// testLockerRenew: only the holder renews, and only an unexpired lease.
func testLockerRenew(t *testing.T, s store.Store) {
	l, ok := s.(store.Locker)
	if !ok {
		t.Skip("store has no Locker capability")
	}
	ctx := context.Background()
	tok, got, err := l.TryLock(ctx, "mint:a", time.Minute)
	noErr(t, "TryLock", err)
	if !got {
		t.Fatal("free key not locked")
	}
	if ok, err := l.Renew(ctx, "mint:a", "stranger", time.Minute); err != nil || ok {
		t.Fatalf("Renew by a stranger = %v, %v", ok, err)
	}
	if ok, err := l.Renew(ctx, "mint:a", tok, time.Minute); err != nil || !ok {
		t.Fatalf("Renew by the holder = %v, %v", ok, err)
	}
	tok2, got, _ := l.TryLock(ctx, "mint:b", -time.Second) // already expired
	if !got {
		t.Fatal("mint:b not locked")
	}
	if ok, _ := l.Renew(ctx, "mint:b", tok2, time.Minute); ok {
		t.Fatal("an expired lease was renewed (someone else may hold it by now)")
	}
}

// testCount: increments add up, even concurrently; the window ends; keys
// are independent; ResetCount starts over.
func testCount(t *testing.T, s store.Store) {
	ctx := context.Background()
	n, until, err := s.Count(ctx, "login:ip:192.0.2.1", 1, time.Minute)
	noErr(t, "Count", err)
	if n != 1 || until.Before(time.Now().Add(50*time.Second)) || until.After(time.Now().Add(61*time.Second)) {
		t.Fatalf("Count = %d until %v; want 1 until about a minute from now", n, until)
	}
	var wg sync.WaitGroup
	for range 30 {
		wg.Go(func() {
			if _, _, err := s.Count(ctx, "login:ip:192.0.2.1", 1, time.Minute); err != nil {
				t.Errorf("Count: %v", err)
			}
		})
	}
	wg.Wait()
	n, until2, err := s.Count(ctx, "login:ip:192.0.2.1", 0, time.Minute)
	noErr(t, "Count(0)", err)
	if n != 31 {
		t.Fatalf("after 31 increments the counter is %d (lost updates)", n)
	}
	if !sameTime(until, until2) {
		t.Errorf("the window moved: %v, then %v", until, until2)
	}
	if n, _, _ := s.Count(ctx, "login:ip:192.0.2.2", 5, time.Minute); n != 5 {
		t.Errorf("another key = %d, want 5", n)
	}
	if n, _, _ := s.Count(ctx, "login:ip:192.0.2.1", -1, time.Minute); n != 30 {
		t.Errorf("after -1: %d, want 30", n)
	}
	noErr(t, "ResetCount", s.ResetCount(ctx, "login:ip:192.0.2.1"))
	noErr(t, "ResetCount(absent)", s.ResetCount(ctx, "nothing"))
	if n, _, _ := s.Count(ctx, "login:ip:192.0.2.1", 1, time.Minute); n != 1 {
		t.Errorf("after ResetCount: %d, want 1", n)
	}
	if _, _, err := s.Count(ctx, "short", 7, time.Millisecond); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, _, err := s.Count(ctx, "short", 1, time.Minute)
		noErr(t, "Count(short)", err)
		if n == 1 {
			break // the 1 ms window ended: a new one
		}
		if time.Now().After(deadline) {
			t.Fatalf("an ended window kept counting: %d", n)
		}
	}
}

// testChangeFeed: a subscriber hears what is published, by this handle
// (and, for shared backends, by others), until its context ends.
func testChangeFeed(t *testing.T, s store.Store) {
	f, ok := s.(store.ChangeFeed)
	if !ok {
		t.Skip("store has no ChangeFeed capability")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan string, 100)
	noErr(t, "Subscribe", f.Subscribe(ctx, func(subject string) { got <- subject }))
	noErr(t, "Publish", f.Publish(context.Background(), "local:alice"))
	noErr(t, "Publish", f.Publish(context.Background(), "local:bob"))
	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for !seen["local:alice"] || !seen["local:bob"] {
		select {
		case sub := <-got:
			seen[sub] = true
		case <-timeout:
			t.Fatalf("after 5 s the subscriber heard %v, want local:alice and local:bob", seen)
		}
	}
	cancel()
	// After cancel, nothing more arrives (allow an in-flight delivery).
	ctx2, cancel2 := context.WithCancel(context.Background())
	defer cancel2()
	again := make(chan string, 100)
	noErr(t, "Subscribe(2)", f.Subscribe(ctx2, func(subject string) { again <- subject }))
	noErr(t, "Publish", f.Publish(context.Background(), "local:carol"))
	select {
	case sub := <-again:
		if sub != "local:carol" && sub != "" {
			t.Fatalf("second subscriber heard %q first, want local:carol", sub)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("second subscriber heard nothing")
	}
	for {
		select {
		case sub := <-got:
			if sub == "local:carol" {
				t.Fatal("a cancelled subscription still delivered")
			}
			continue
		default:
		}
		break
	}
}
