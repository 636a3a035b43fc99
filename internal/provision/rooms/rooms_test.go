package rooms_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/provision/rooms"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

// callLog records the Rocket.Chat calls rcsso makes ("GET channels.members").
type callLog struct {
	mu    sync.Mutex
	calls []string
	next  http.RoundTripper
}

func (c *callLog) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	c.calls = append(c.calls, r.Method+" "+strings.TrimPrefix(r.URL.Path, "/api/v1/"))
	c.mu.Unlock()
	return c.next.RoundTrip(r)
}

// take returns the calls since the last take.
func (c *callLog) take() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.calls
	c.calls = nil
	return out
}

// clockedStore is a memory store whose counters (Count) follow the test's
// clock.
type clockedStore struct {
	store.Store
	clock    *clock
	mu       sync.Mutex
	counters map[string]counter
}

type counter struct {
	n     int64
	until time.Time
}

func (c *clockedStore) Count(_ context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if c.counters == nil {
		c.counters = map[string]counter{}
	}
	v, ok := c.counters[key]
	if !ok || !v.until.After(now) {
		v = counter{until: now.Add(window)}
	}
	v.n += delta
	c.counters[key] = v
	return v.n, v.until, nil
}

func (c *clockedStore) ResetCount(_ context.Context, key string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.counters, key)
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is an emulated Rocket.Chat 8.x with #sales, #general, private group
// #leads and team Sales (the admin, rcsso's service account, owns them but
// #general, which Rocket.Chat creates without an owner), and alice,
// linked to subject local:alice.
type env struct {
	emu                   *rcemu.Server
	rc                    *rocketchat.Client
	st                    store.Store
	sync                  *rooms.Syncer
	log                   *callLog
	clock                 *clock
	aliceID               string
	sales, general, leads string
	support               string
	teamID, teamRoom      string
}

var grants = []rooms.Grant{
	{Group: "sales", Channels: []string{"sales", "general"}, PrivateGroups: []string{"leads"}, Teams: []string{"Sales"}},
	{Group: "support", Channels: []string{"support"}},
}

func newEnv(t *testing.T, profile string) *env {
	t.Helper()
	clk := &clock{t: time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)}
	emu, err := rcemu.New(rcemu.Config{Profile: profile, AdminPassword: "pw", AdminPAT: "pat", BcryptCost: bcrypt.MinCost, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(emu.Handler())
	t.Cleanup(srv.Close)
	e := &env{emu: emu, st: &clockedStore{Store: memory.New(), clock: clk}, clock: clk, log: &callLog{next: http.DefaultTransport}}
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: srv.URL, HTTPClient: &http.Client{Transport: e.log}})
	if err != nil {
		t.Fatal(err)
	}
	must := func(id string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	e.aliceID = must(emu.AddUser(rcemu.NewUser{Username: "alice", Name: "Alice", Email: "alice@example.test"}))
	e.sales = must(emu.AddRoom(rcemu.NewRoom{Name: "sales"}))
	e.general = rcemu.GeneralID // there from the start, as in Rocket.Chat
	e.leads = must(emu.AddRoom(rcemu.NewRoom{Name: "leads", Private: true}))
	e.teamID, e.teamRoom, err = emu.AddTeam(rcemu.NewRoom{Name: "Sales"})
	if err != nil {
		t.Fatal(err)
	}
	e.support = must(emu.AddRoom(rcemu.NewRoom{Name: "support"}))
	// alice and another "alice…" are in #general by hand.
	other := must(emu.AddUser(rcemu.NewUser{Username: "alice2", Email: "alice2@example.test"}))
	for _, u := range []string{e.aliceID, other} {
		if err := emu.JoinRoom(e.general, u); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.st.UpdateLink(t.Context(), "local:alice", func(l *store.Link) error {
		l.UserID, l.Username = e.aliceID, "alice"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.rc = rc
	e.sync = e.withGrants(grants)
	return e
}

// withGrants is a syncer for other grants on the same Rocket.Chat and store.
func (e *env) withGrants(g []rooms.Grant) *rooms.Syncer {
	return rooms.New(e.rc, rcadmin.PAT{UserID: e.emu.AdminID(), AuthToken: "pat"}, e.st, rooms.Config{Grants: g, Now: e.clock.Now}, nil)
}

func alice(groups ...string) identity.Identity {
	if groups == nil {
		groups = []string{}
	}
	return identity.Identity{Subject: "local:alice", Username: "alice", Groups: groups}
}

// memberships reports where alice is: "#sales #general leads Sales".
func (e *env) memberships() string {
	var in []string
	for _, r := range []struct{ name, id string }{{"#sales", e.sales}, {"#general", e.general}, {"leads", e.leads}} {
		if e.emu.IsMember(r.id, e.aliceID) {
			in = append(in, r.name)
		}
	}
	if e.emu.IsTeamMember(e.teamID, e.aliceID) {
		in = append(in, "Sales")
	}
	return strings.Join(in, " ")
}

func (e *env) syncOK(t *testing.T, id identity.Identity) {
	t.Helper()
	done, err := e.sync.SyncRooms(t.Context(), id)
	if err != nil || !done {
		t.Fatalf("SyncRooms = %v, %v", done, err)
	}
}

func (e *env) added(t *testing.T) []string {
	t.Helper()
	l, err := e.st.GetLink(t.Context(), "local:alice")
	if err != nil {
		t.Fatal(err)
	}
	return l.Rooms.Added
}

// TestGroupChanges: join on first login (a membership alice had by hand is
// not recorded), group removed (only rcsso's memberships are left), group
// added again (joined), no change (no call at all). The calls of each
// step are logged for the report.
func TestGroupChanges(t *testing.T) {
	for _, profile := range []string{"6.x", "8.x", "9.0"} {
		t.Run(profile, func(t *testing.T) {
			e := newEnv(t, profile)
			ctx := t.Context()

			e.syncOK(t, alice("sales", "unrelated"))
			if got := e.memberships(); got != "#sales #general leads Sales" {
				t.Fatalf("after the first sync alice is in %q", got)
			}
			if got := e.added(t); len(got) != 3 || !slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "c:"+e.sales+":") }) ||
				slices.ContainsFunc(got, func(s string) bool { return strings.Contains(s, e.general) }) {
				t.Fatalf("recorded %v: want #sales, leads and Sales, not #general (alice was in it)", got)
			}
			t.Logf("first login, groups [sales]: %s", strings.Join(e.log.take(), ", "))

			// Nothing changed: no call, not even within the interval.
			e.clock.Advance(2 * time.Minute)
			e.syncOK(t, alice("sales", "unrelated"))
			if calls := e.log.take(); len(calls) != 0 {
				t.Fatalf("an unchanged person cost %v", calls)
			}

			e.syncOK(t, alice()) // groups known, none of them ours
			if got := e.memberships(); got != "#general" {
				t.Fatalf("after the group went alice is in %q, want only #general (hers)", got)
			}
			if got := e.added(t); len(got) != 0 {
				t.Fatalf("still recorded: %v", got)
			}
			t.Logf("group sales removed: %s", strings.Join(e.log.take(), ", "))

			// Within the interval a new change waits.
			if done, err := e.sync.SyncRooms(ctx, alice("sales")); done || err != nil {
				t.Fatalf("sync within the interval = %v, %v; want not done", done, err)
			}
			e.log.take()
			e.clock.Advance(time.Minute)
			e.syncOK(t, alice("sales"))
			if got := e.memberships(); got != "#sales #general leads Sales" {
				t.Fatalf("after the group came back alice is in %q", got)
			}
			t.Logf("group sales added again: %s", strings.Join(e.log.take(), ", "))
		})
	}
}

// A source that does not say which groups a person is in changes nothing.
func TestUnknownGroupsTouchNothing(t *testing.T) {
	e := newEnv(t, "8.x")
	e.syncOK(t, alice("sales"))
	e.log.take()
	e.clock.Advance(time.Hour)
	id := alice()
	id.Groups = nil
	if d := e.sync.RoomsDigest(id); d != "" {
		t.Fatalf("digest for unknown groups = %q, want none", d)
	}
	e.syncOK(t, id)
	if got := e.memberships(); got != "#sales #general leads Sales" || len(e.log.take()) != 0 {
		t.Fatalf("alice is in %q", got)
	}
}

// A room deleted in Rocket.Chat is a warning on /readyz, not a failure:
// the other rooms are synced and the record of the deleted one goes.
func TestRoomDeletedIsAWarning(t *testing.T) {
	e := newEnv(t, "8.x")
	ctx := t.Context()
	if err := e.sync.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if s := e.sync.Status(); s != "ok" {
		t.Fatalf("Status = %q", s)
	}
	e.syncOK(t, alice("sales"))
	if err := e.emu.DeleteRoom(e.sales); err != nil {
		t.Fatal(err)
	}
	if err := e.emu.DeleteRoom(e.teamRoom); err != nil { // deletes the team
		t.Fatal(err)
	}
	if err := e.sync.Check(ctx); err != nil {
		t.Fatal(err)
	}
	want := "warn: #sales does not exist; team Sales does not exist"
	if s := e.sync.Status(); s != want {
		t.Fatalf("Status = %q, want %q", s, want)
	}
	e.log.take()
	// The group goes: the deleted rooms are forgotten, leads is left.
	e.clock.Advance(time.Minute)
	e.syncOK(t, alice())
	if got := e.memberships(); got != "#general" || len(e.added(t)) != 0 {
		t.Fatalf("alice is in %q, recorded %v", got, e.added(t))
	}
	t.Logf("group removed after #sales and team Sales were deleted: %s", strings.Join(e.log.take(), ", "))

	// A new person of the group gets what exists.
	e.clock.Advance(time.Minute)
	e.syncOK(t, alice("sales"))
	if got := e.memberships(); got != "#general leads" {
		t.Fatalf("alice is in %q", got)
	}
	// The room comes back: its digest changes, the next sync joins it.
	before := e.sync.RoomsDigest(alice("sales"))
	if _, err := e.emu.AddRoom(rcemu.NewRoom{Name: "sales"}); err != nil {
		t.Fatal(err)
	}
	if err := e.sync.Check(ctx); err != nil {
		t.Fatal(err)
	}
	if e.sync.RoomsDigest(alice("sales")) == before {
		t.Fatal("a room that appeared did not change the digest")
	}
	if s := e.sync.Status(); s != "warn: team Sales does not exist" {
		t.Fatalf("Status = %q", s)
	}
}

// A private group the service account is not in does not exist for it.
func TestPrivateGroupWithoutServiceAccount(t *testing.T) {
	e := newEnv(t, "8.x")
	bob, err := e.emu.AddUser(rcemu.NewUser{Username: "bob", Email: "bob@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.emu.AddRoom(rcemu.NewRoom{Name: "board", Private: true, Owner: bob}); err != nil {
		t.Fatal(err)
	}
	e.sync = e.withGrants([]rooms.Grant{{Group: "board", PrivateGroups: []string{"board"}}})
	if err := e.sync.Check(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := e.sync.Status(); got != "warn: private group #board does not exist (or rcsso's service account is not in it)" {
		t.Fatalf("Status = %q", got)
	}
	e.syncOK(t, alice("board"))
}

// Rocket.Chat's 429: the sync stops, keeps what it did, holds off until
// the limit has passed, and finishes on a later try.
func TestRateLimitedRetriedLater(t *testing.T) {
	e := newEnv(t, "8.x")
	ctx := t.Context()
	if err := e.sync.Check(ctx); err != nil { // the rooms' _ids are known
		t.Fatal(err)
	}
	e.log.take()
	// The service account without api-bypass-rate-limit, Rocket.Chat
	// allowing 2 calls per route per minute: #general and #sales are
	// checked, #sales joined, then channels.members for #support is 429.
	e.emu.SetPermissionRoles("api-bypass-rate-limit", "bot")
	e.emu.SetSetting("API_Enable_Rate_Limiter_Limit_Calls_Default", 2)
	done, err := e.sync.SyncRooms(ctx, alice("sales", "support"))
	if _, limited := rocketchat.IsRateLimited(err); done || !limited {
		t.Fatalf("SyncRooms = %v, %v; want not done, Rocket.Chat's rate limit", done, err)
	}
	if !e.emu.IsMember(e.sales, e.aliceID) || e.emu.IsMember(e.support, e.aliceID) || len(e.added(t)) != 1 {
		t.Fatalf("after the 429 alice is in %q (support: %v), recorded %v; want #sales joined and kept",
			e.memberships(), e.emu.IsMember(e.support, e.aliceID), e.added(t))
	}
	t.Logf("rate limited: %s (error: %v)", strings.Join(e.log.take(), ", "), err)
	// Held off, on every instance sharing the store: no call until the
	// limit has passed.
	other := e.withGrants(grants)
	e.clock.Advance(time.Minute - time.Second)
	for _, s := range []*rooms.Syncer{e.sync, other} {
		if done, err := s.SyncRooms(ctx, alice("sales", "support")); done || err != nil || len(e.log.take()) != 0 {
			t.Fatalf("a held-off sync ran: %v, %v", done, err)
		}
	}
	e.clock.Advance(2 * time.Second)
	e.syncOK(t, alice("sales", "support"))
	if got := e.memberships(); got != "#sales #general leads Sales" || !e.emu.IsMember(e.support, e.aliceID) || len(e.added(t)) != 4 {
		t.Fatalf("after the retry alice is in %q (support: %v), recorded %v", got, e.emu.IsMember(e.support, e.aliceID), e.added(t))
	}
	t.Logf("retried after the limit: %s", strings.Join(e.log.take(), ", "))
}

// A crash (or timeout) between recording a membership as pending and
// seeing Rocket.Chat's answer: the next sync finds out whether it was
// made, and records it as rcsso's when it was.
func TestPendingSettled(t *testing.T) {
	e := newEnv(t, "8.x")
	ctx := t.Context()
	if err := e.emu.JoinRoom(e.sales, e.aliceID); err != nil { // the invitation went through…
		t.Fatal(err)
	}
	_, err := e.st.UpdateLink(ctx, "local:alice", func(l *store.Link) error { // …rcsso never saw the answer
		l.Rooms = store.RoomsState{UserID: e.aliceID, Pending: []string{"c:" + e.sales + ":sales", "p:" + e.leads + ":leads"}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	e.syncOK(t, alice("support"))
	// #sales was made (rcsso's: left, the group is not alice's), leads was
	// not (nothing to leave); #support joined.
	if got := e.memberships(); got != "#general" {
		t.Fatalf("alice is in %q", got)
	}
	if got := e.added(t); len(got) != 1 || !strings.HasSuffix(got[0], ":support") {
		t.Fatalf("recorded %v", got)
	}
}

// The record belongs to one Rocket.Chat user: a person given a new user
// starts afresh, and rcsso never removes the new user from rooms the old
// one was added to.
func TestRecordOfAnotherUserIsVoid(t *testing.T) {
	e := newEnv(t, "8.x")
	ctx := t.Context()
	e.syncOK(t, alice("sales"))
	newID, err := e.emu.AddUser(rcemu.NewUser{Username: "alice.new", Email: "alice.new@example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.emu.JoinRoom(e.sales, newID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.UpdateLink(ctx, "local:alice", func(l *store.Link) error {
		l.UserID, l.Username = newID, "alice.new"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Minute)
	e.syncOK(t, alice())
	if !e.emu.IsMember(e.sales, newID) {
		t.Fatal("the new user was removed from a room the old one had been added to")
	}
}

func TestKinds(t *testing.T) {
	s := rooms.New(nil, nil, nil, rooms.Config{Grants: []rooms.Grant{{Group: "g", Teams: []string{"T"}}}}, nil)
	if c, p, tm := s.Kinds(); c || p || !tm {
		t.Fatalf("Kinds = %v %v %v", c, p, tm)
	}
	if got := fmt.Sprint(rooms.Ref{Kind: rocketchat.PrivateGroup, Name: "x"}); got != "private group #x" {
		t.Fatal(got)
	}
}

// BenchmarkRoomsDigest is the rooms sync's cost on the API URL's hot path
// (the broker computes the digest on every request).
func BenchmarkRoomsDigest(b *testing.B) {
	s := rooms.New(nil, nil, nil, rooms.Config{Grants: grants}, nil)
	id := identity.Identity{Subject: "local:alice", Groups: []string{"staff", "sales", "cn=all,ou=groups,dc=example,dc=org", "support"}}
	b.ReportAllocs()
	for b.Loop() {
		_ = s.RoomsDigest(id)
	}
}
