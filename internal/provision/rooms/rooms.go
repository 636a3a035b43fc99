// Package rooms keeps people's Rocket.Chat room and team memberships in
// step with their identity groups (provisioning.rooms): each person joins
// the public channels, private groups and teams their groups give, and
// leaves those rcsso added for a group they are no longer in. Memberships
// rcsso did not add (a person who joined #general by hand, or was in
// #sales before rcsso gave it) are never touched: rcsso records what it
// added in the store (store.Link.Rooms) and leaves only that.
//
// It acts as rcsso's service account through the REST API (channels.*,
// groups.*, teams.*; package rocketchat), in the background of the API
// URL (the token broker calls it next to profile sync, mint.RoomSyncer),
// at most once per Config.Interval per person across rcsso instances, a
// few people at a time (Config.Concurrency), and holds off every instance
// until Rocket.Chat's rate limit has passed when it answers 429. Rooms and
// teams that do not exist are logged and reported on /readyz (Status),
// checked every Config.CheckEvery (Run); they never fail a login.
package rooms

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// Grant is what the members of one identity group get (one entry of
// provisioning.rooms). Names are Rocket.Chat room and team names without
// "#"; Group is compared exactly with identity.Identity.Groups.
type Grant struct {
	Group         string
	Channels      []string
	PrivateGroups []string
	Teams         []string
}

// Config tunes a Syncer.
type Config struct {
	// Grants are provisioning.rooms.
	Grants []Grant
	// Interval is the least time between two syncs of one person, across
	// rcsso instances (store.Link.Rooms.SyncedAt); default 1 minute.
	Interval time.Duration
	// CheckEvery is how often Run asks Rocket.Chat whether every configured
	// room and team exists (Status); default 5 minutes.
	CheckEvery time.Duration
	// Concurrency is how many people one instance syncs at once; a sync
	// that finds no free slot is tried again on a later request. Default 2:
	// the client's call slots (rocketchat.max_concurrent_calls) are shared
	// with logins, which must not wait for the background.
	Concurrency int
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Syncer brings people's memberships in step with their groups. It is
// safe for concurrent use; create it with New.
type Syncer struct {
	rc    *rocketchat.Client
	admin rcadmin.Auth
	st    store.Store
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	slots chan struct{}
	// byGroup maps a group to the rooms it gives, grantsOf to the indexes
	// of its grants in Config.Grants.
	byGroup  map[string][]Ref
	grantsOf map[string][]int
	// all are the configured rooms, sorted.
	all []Ref

	mu       sync.Mutex
	rooms    map[Ref]resolution // what Rocket.Chat said of each configured room
	checked  time.Time          // when Check last ran through
	checkErr error              // why the last Check could not finish
	paused   time.Time          // no sync before this (Rocket.Chat's rate limit)
	// digests caches RoomsDigest by the set of grants a person's groups
	// match (a bit per grant; up to 64 grants), emptied when what is known
	// of a room changes. At most maxDigests entries.
	digests map[uint64]string
}

// maxDigests bounds Syncer.digests (distinct combinations of grants).
const maxDigests = 4096

// Ref names one configured room or team.
type Ref struct {
	Kind rocketchat.RoomKind
	Name string
}

// String is how logs and /readyz name it: "#sales", "private group
// #leads", "team Sales".
func (r Ref) String() string {
	switch r.Kind {
	case rocketchat.PrivateGroup:
		return "private group #" + r.Name
	case rocketchat.Team:
		return "team " + r.Name
	}
	return "#" + r.Name
}

func compareRefs(a, b Ref) int {
	return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Name, b.Name))
}

// resolution is what rcsso knows of a configured room.
type resolution struct {
	id      string // the room's or team's _id; "" when missing or unknown
	missing bool   // Rocket.Chat said it does not exist (or, a private group, that the service account is not in it)
	at      time.Time
}

// New returns a Syncer for cfg.Grants.
func New(rc *rocketchat.Client, admin rcadmin.Auth, st store.Store, cfg Config, log *slog.Logger) *Syncer {
	if cfg.Interval <= 0 {
		cfg.Interval = time.Minute
	}
	if cfg.CheckEvery <= 0 {
		cfg.CheckEvery = 5 * time.Minute
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 2
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Syncer{rc: rc, admin: admin, st: st, cfg: cfg, log: log, now: cfg.Now, slots: make(chan struct{}, cfg.Concurrency),
		byGroup: map[string][]Ref{}, grantsOf: map[string][]int{}, rooms: map[Ref]resolution{}, digests: map[uint64]string{}}
	seen := map[Ref]bool{}
	for i, g := range cfg.Grants {
		s.grantsOf[g.Group] = append(s.grantsOf[g.Group], i)
		for _, l := range []struct {
			kind  rocketchat.RoomKind
			names []string
		}{{rocketchat.Channel, g.Channels}, {rocketchat.PrivateGroup, g.PrivateGroups}, {rocketchat.Team, g.Teams}} {
			for _, n := range l.names {
				r := Ref{l.kind, n}
				s.byGroup[g.Group] = append(s.byGroup[g.Group], r)
				if !seen[r] {
					seen[r] = true
					s.all = append(s.all, r)
				}
			}
		}
	}
	slices.SortFunc(s.all, compareRefs)
	return s
}

// Kinds reports which kinds of rooms are configured (for the service
// account's permissions).
func (s *Syncer) Kinds() (channels, privateGroups, teams bool) {
	for _, r := range s.all {
		switch r.Kind {
		case rocketchat.Channel:
			channels = true
		case rocketchat.PrivateGroup:
			privateGroups = true
		case rocketchat.Team:
			teams = true
		}
	}
	return
}

// wanted are the rooms id's groups give, sorted, without repeats; nil when
// the identity source does not say which groups the person is in.
func (s *Syncer) wanted(id identity.Identity) []Ref {
	if id.Groups == nil {
		return nil
	}
	out := []Ref{}
	for _, g := range id.Groups {
		out = append(out, s.byGroup[g]...)
	}
	slices.SortFunc(out, compareRefs)
	return slices.Compact(out)
}

// grantMask is the set of grants id's groups match, a bit per grant; ok is
// false with more than 64 grants.
func (s *Syncer) grantMask(id identity.Identity) (mask uint64, ok bool) {
	if len(s.cfg.Grants) > 64 {
		return 0, false
	}
	for _, g := range id.Groups {
		for _, i := range s.grantsOf[g] {
			mask |= 1 << i
		}
	}
	return mask, true
}

// emptyDigest is the digest of "no rooms".
var emptyDigest = digest(nil, nil)

// digest summarises the wanted rooms with what is known of each (its _id,
// "-" for missing, "?" for not known yet), so that a room that appears or
// disappears in Rocket.Chat changes the digest of the people it concerns.
func digest(want []Ref, known map[Ref]resolution) string {
	h := sha256.New()
	for _, r := range want {
		mark := "?"
		if res, ok := known[r]; ok {
			mark = res.id
			if res.missing {
				mark = "-"
			}
		}
		h.Write([]byte(string(r.Kind) + "\x00" + r.Name + "\x00" + mark + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)[:12])
}

// RoomsDigest is a cheap digest (no I/O) of the memberships id's groups
// give; "" when there is nothing to do because the identity source does
// not say which groups the person is in. It implements mint.RoomSyncer.
func (s *Syncer) RoomsDigest(id identity.Identity) string {
	if id.Groups == nil {
		return ""
	}
	mask, cacheable := s.grantMask(id)
	if cacheable {
		s.mu.Lock()
		d, ok := s.digests[mask]
		s.mu.Unlock()
		if ok {
			return d
		}
	}
	want := s.wanted(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	d := digest(want, s.rooms)
	if cacheable {
		if len(s.digests) >= maxDigests {
			clear(s.digests)
		}
		s.digests[mask] = d
	}
	return d
}

// RoomsInStep reports whether link l records the memberships of digest as
// brought in step: the rooms record is the linked user's and holds that
// digest, or nothing is wanted and rcsso never added anything. It
// implements mint.RoomSyncer.
func (s *Syncer) RoomsInStep(l store.Link, digest string) bool {
	if l.UserID == "" {
		return false
	}
	if digest == emptyDigest && len(l.Rooms.Added) == 0 && len(l.Rooms.Pending) == 0 {
		return true
	}
	return l.Rooms.UserID == l.UserID && l.Rooms.Hash == digest
}

// errSkip ends an UpdateLink without writing.
var errSkip = errors.New("rooms: nothing to write")

// pauseKey is the store counter that holds every instance's rooms syncs
// off while Rocket.Chat rate-limits rcsso.
const pauseKey = "rooms-sync-paused"

// SyncRooms brings the memberships of id in step with its groups: it
// leaves what rcsso added for rooms no longer given, then joins the rooms
// given that the person is not in, recording every membership it adds
// before asking for it (Link.Rooms.Pending, then Added). It reports true
// when they are in step (or there is nothing to do), false when the sync
// was not due or must be tried again later (the interval has not passed,
// no free slot, Rocket.Chat's rate limit, a failure; the error says which
// failure). A room that does not exist is skipped, logged and reported by
// Status. It implements mint.RoomSyncer.
func (s *Syncer) SyncRooms(ctx context.Context, id identity.Identity) (bool, error) {
	want := s.wanted(id)
	if want == nil {
		return true, nil
	}
	if s.isPaused(ctx) {
		return false, nil
	}
	select {
	case s.slots <- struct{}{}:
		defer func() { <-s.slots }()
	default:
		return false, nil // busy: a later request tries again
	}
	l, err := s.st.GetLink(ctx, id.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && l.UserID == "") {
		return false, nil // not provisioned yet
	}
	if err != nil {
		return false, err
	}
	known, err := s.resolveAll(ctx, want)
	if err != nil {
		return false, s.failed(ctx, err)
	}
	d := digest(want, known)
	if s.RoomsInStep(l, d) {
		return true, nil
	}
	now := s.now().UTC()
	l, err = s.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
		if x.UserID != l.UserID {
			return errSkip // re-provisioned meanwhile
		}
		if x.Rooms.UserID != x.UserID {
			x.Rooms = store.RoomsState{UserID: x.UserID} // another user's record is void
		}
		if d := now.Sub(x.Rooms.SyncedAt); d >= 0 && d < s.cfg.Interval {
			return errSkip // another sync ran moments ago (maybe on another instance)
		}
		x.Rooms.SyncedAt = now
		return nil
	})
	if errors.Is(err, errSkip) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	p := &pass{s: s, subject: id.Subject, userID: l.UserID, username: l.Username, state: l.Rooms, known: known}
	if err := p.run(ctx, want); err != nil {
		return false, s.failed(ctx, err)
	}
	if err := p.save(ctx, func(r *store.RoomsState) { r.Hash = d }); err != nil {
		return false, err
	}
	if p.changed() {
		s.log.Info("rooms in step with the person's groups", "subject", id.Subject, "rc_user_id", l.UserID,
			"joined", strings.Join(p.joined, " "), "left", strings.Join(p.left, " "))
	}
	return true, nil
}

// errRateLimited stops a pass when Rocket.Chat rate-limits rcsso.
type errRateLimited struct {
	wait time.Duration
	err  error
}

func (e *errRateLimited) Error() string { return e.err.Error() }
func (e *errRateLimited) Unwrap() error { return e.err }

// failed holds every instance's syncs off after a rate limit (for the
// wait Rocket.Chat gave, at least 10 s), and returns err.
func (s *Syncer) failed(ctx context.Context, err error) error {
	var rl *errRateLimited
	if !errors.As(err, &rl) {
		return err
	}
	wait := max(rl.wait, 10*time.Second)
	s.mu.Lock()
	s.paused = s.now().Add(wait)
	s.mu.Unlock()
	// A fresh window of wait (isPaused's peeks open windows of their own).
	cerr := s.st.ResetCount(ctx, pauseKey)
	if cerr == nil {
		_, _, cerr = s.st.Count(ctx, pauseKey, 1, wait)
	}
	if cerr != nil {
		s.log.Warn("could not share Rocket.Chat's rate limit with the other rcsso instances", "err", cerr)
	}
	s.log.Warn("Rocket.Chat rate-limits rcsso's rooms sync; holding it off", "retry_after", wait.Round(time.Second).String(), "err", err)
	return err
}

// isPaused reports whether syncs are held off: by this instance, or by
// another one sharing the store.
func (s *Syncer) isPaused(ctx context.Context) bool {
	s.mu.Lock()
	paused := s.now().Before(s.paused)
	s.mu.Unlock()
	if paused {
		return true
	}
	n, until, err := s.st.Count(ctx, pauseKey, 0, time.Millisecond)
	if err != nil || n == 0 {
		return false
	}
	s.mu.Lock()
	s.paused = until
	s.mu.Unlock()
	return true
}

// resolveAll returns what is known of want, asking Rocket.Chat about rooms
// not known yet.
func (s *Syncer) resolveAll(ctx context.Context, want []Ref) (map[Ref]resolution, error) {
	out := make(map[Ref]resolution, len(want))
	for _, r := range want {
		s.mu.Lock()
		res, ok := s.rooms[r]
		s.mu.Unlock()
		if !ok {
			var err error
			if res, err = s.resolve(ctx, r); err != nil {
				return nil, err
			}
		}
		out[r] = res
	}
	return out, nil
}

// resolve asks Rocket.Chat for r's _id and records the answer.
func (s *Syncer) resolve(ctx context.Context, r Ref) (resolution, error) {
	id, err := rcadmin.Do(ctx, s.admin, func(cr rocketchat.Credentials) (string, error) {
		switch r.Kind {
		case rocketchat.Channel:
			room, err := s.rc.ChannelInfo(ctx, cr, r.Name)
			return room.ID, err
		case rocketchat.PrivateGroup:
			room, err := s.rc.GroupInfo(ctx, cr, r.Name)
			return room.ID, err
		}
		t, err := s.rc.TeamInfo(ctx, cr, r.Name)
		return t.ID, err
	})
	res := resolution{id: id, at: s.now()}
	switch {
	case rocketchat.IsRoomNotFound(err):
		res = resolution{missing: true, at: s.now()}
	case err != nil:
		if wait, limited := rocketchat.IsRateLimited(err); limited {
			return resolution{}, &errRateLimited{wait, err}
		}
		return resolution{}, fmt.Errorf("asking Rocket.Chat about %s: %w", r, err)
	}
	s.record(r, res)
	return res, nil
}

// record keeps what Rocket.Chat said of r, logging a change of existence.
func (s *Syncer) record(r Ref, res resolution) {
	s.mu.Lock()
	old, had := s.rooms[r]
	s.rooms[r] = res
	if !had || old.id != res.id || old.missing != res.missing {
		clear(s.digests) // digests carry what is known of the rooms
	}
	s.mu.Unlock()
	switch {
	case res.missing && (!had || !old.missing):
		s.log.Warn("a room in provisioning.rooms does not exist in Rocket.Chat; its members are not added until it does", "room", r.String(), "hint", missingHint(r))
	case !res.missing && had && old.missing:
		s.log.Info("a room in provisioning.rooms exists now", "room", r.String())
	}
}

func missingHint(r Ref) string {
	if r.Kind == rocketchat.PrivateGroup {
		return "create it, or add rcsso's service account to it (a private group exists only for its members)"
	}
	return "create it in Rocket.Chat or correct the name"
}

// Check asks Rocket.Chat whether every configured room and team exists
// (one info call each) and keeps the answers for syncs and Status. It
// returns the first failure to ask (not a missing room).
func (s *Syncer) Check(ctx context.Context) error {
	var first error
	for _, r := range s.all {
		if _, err := s.resolve(ctx, r); err != nil {
			first = err
			break
		}
	}
	s.mu.Lock()
	s.checkErr = first
	if first == nil {
		s.checked = s.now()
	}
	s.mu.Unlock()
	return first
}

// Run checks the configured rooms at once and then every CheckEvery until
// ctx is done.
func (s *Syncer) Run(ctx context.Context) {
	t := time.NewTicker(s.cfg.CheckEvery)
	defer t.Stop()
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		if err := s.Check(cctx); err != nil && ctx.Err() == nil {
			s.log.Warn("could not check the rooms in provisioning.rooms; trying again later", "err", err)
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// Status is /readyz's line for the rooms: "ok", or "warn: …" naming the
// rooms that do not exist, or why they could not be checked. It never
// makes rcsso unready.
func (s *Syncer) Status() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var missing []string
	for _, r := range s.all {
		if res, ok := s.rooms[r]; ok && res.missing {
			d := r.String() + " does not exist"
			if r.Kind == rocketchat.PrivateGroup {
				d += " (or rcsso's service account is not in it)"
			}
			missing = append(missing, d)
		}
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, strings.Join(missing, "; "))
	}
	switch {
	case s.checkErr != nil:
		parts = append(parts, "could not check: "+s.checkErr.Error())
	case s.checked.IsZero() && len(missing) == 0:
		parts = append(parts, "not checked yet")
	}
	if len(parts) == 0 {
		return "ok"
	}
	return "warn: " + strings.Join(parts, "; ")
}
