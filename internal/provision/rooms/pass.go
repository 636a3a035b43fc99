package rooms

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// pass is one sync of one person.
type pass struct {
	s        *Syncer
	subject  string
	userID   string
	username string
	state    store.RoomsState   // as last written
	known    map[Ref]resolution // the wanted rooms' _ids
	joined   []string           // for the log
	left     []string           // for the log
	failures []error            // what went wrong, retried on a later sync
	entries  map[Ref]entry      // Added, by room
	pending  map[Ref]entry      // Pending, by room
	want     map[Ref]bool       // the rooms the groups give
	order    []Ref              // want, sorted
}

// entry is one recorded membership: "<kind>:<id>:<name>".
type entry struct {
	ref Ref
	id  string
}

func (e entry) String() string { return string(e.ref.Kind) + ":" + e.id + ":" + e.ref.Name }

// parseEntry reads a recorded membership; ok is false for a malformed one
// (dropped).
func parseEntry(s string) (entry, bool) {
	kind, rest, ok1 := strings.Cut(s, ":")
	id, name, ok2 := strings.Cut(rest, ":")
	switch rocketchat.RoomKind(kind) {
	case rocketchat.Channel, rocketchat.PrivateGroup, rocketchat.Team:
	default:
		return entry{}, false
	}
	if !ok1 || !ok2 || id == "" || name == "" {
		return entry{}, false
	}
	return entry{ref: Ref{rocketchat.RoomKind(kind), name}, id: id}, true
}

func (p *pass) changed() bool { return len(p.joined)+len(p.left) > 0 }

// run leaves what rcsso added for rooms no longer wanted, settles the
// memberships asked for in an earlier pass whose outcome is unknown, and
// joins the wanted rooms the person is not in. It stops at Rocket.Chat's
// rate limit; other failures are collected and reported after the rest
// was done.
func (p *pass) run(ctx context.Context, want []Ref) error {
	p.order, p.want = want, make(map[Ref]bool, len(want))
	for _, r := range want {
		p.want[r] = true
	}
	p.entries, p.pending = map[Ref]entry{}, map[Ref]entry{}
	for _, s := range p.state.Added {
		if e, ok := parseEntry(s); ok {
			p.entries[e.ref] = e
		}
	}
	for _, s := range p.state.Pending {
		if e, ok := parseEntry(s); ok {
			p.pending[e.ref] = e
		}
	}
	if p.username == "" {
		u, err := rcadmin.Do(ctx, p.s.admin, func(cr rocketchat.Credentials) (rocketchat.User, error) {
			return p.s.rc.UserInfoByID(ctx, cr, p.userID)
		})
		if err != nil {
			return p.stop(err, "reading the person's Rocket.Chat username")
		}
		p.username = u.Username
	}
	// Memberships asked for before without an answer: made or not?
	for _, e := range sortedEntries(p.pending) {
		member, err := p.isMember(ctx, e.ref, e.id)
		if errors.Is(err, errSkipRoom) {
			continue
		}
		if err != nil {
			return err
		}
		if err := p.save(ctx, func(r *store.RoomsState) {
			r.Pending = without(r.Pending, e.String())
			if member {
				r.Added = with(r.Added, e.String())
			}
		}); err != nil {
			return err
		}
		delete(p.pending, e.ref)
		if member {
			p.entries[e.ref] = e
		}
	}
	// Leave what rcsso added for a room no group gives any more.
	for _, e := range sortedEntries(p.entries) {
		if p.want[e.ref] {
			continue
		}
		if err := p.leave(ctx, e); err != nil {
			return err
		}
	}
	// Join what the groups give.
	for _, r := range p.order {
		if _, ok := p.entries[r]; ok {
			continue
		}
		if err := p.join(ctx, r); err != nil {
			return err
		}
	}
	return errors.Join(p.failures...)
}

func sortedEntries(m map[Ref]entry) []entry {
	out := make([]entry, 0, len(m))
	for _, e := range m {
		out = append(out, e)
	}
	slices.SortFunc(out, func(a, b entry) int { return compareRefs(a.ref, b.ref) })
	return out
}

// stop turns a failure into the pass's end (rate limit) or a recorded
// failure (nil: go on with the next room).
func (p *pass) stop(err error, what string) error {
	if wait, limited := rocketchat.IsRateLimited(err); limited {
		return &errRateLimited{wait, fmt.Errorf("%s: %w", what, err)}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", what, err)
	}
	p.failures = append(p.failures, fmt.Errorf("%s: %w", what, err))
	return nil
}

// leave removes the person from a room rcsso added them to. Done (and
// forgotten) when Rocket.Chat removed them, they are not in it any more,
// or the room is gone; the room's last owner is left in it (forgotten,
// with a warning).
func (p *pass) leave(ctx context.Context, e entry) error {
	_, err := rcadmin.Do(ctx, p.s.admin, func(cr rocketchat.Credentials) (struct{}, error) {
		switch e.ref.Kind {
		case rocketchat.Channel:
			return struct{}{}, p.s.rc.ChannelKick(ctx, cr, e.id, p.userID)
		case rocketchat.PrivateGroup:
			return struct{}{}, p.s.rc.GroupKick(ctx, cr, e.id, p.userID)
		}
		return struct{}{}, p.s.rc.TeamRemoveMember(ctx, cr, e.id, p.userID)
	})
	switch {
	case err == nil:
		p.left = append(p.left, e.ref.String())
	case rocketchat.IsNotMember(err) || rocketchat.IsRoomNotFound(err):
	case isLastOwner(err):
		p.s.log.Warn("not removing the person from a room rcsso added them to: they are its last owner now", "subject", p.subject, "room", e.ref.String())
	default:
		if perm := rocketchat.MissingPermission(err); perm != "" {
			err = fmt.Errorf("%w (the service account needs %s)", err, perm)
		}
		return p.stop(err, "leaving "+e.ref.String()) // kept: tried again on a later sync
	}
	delete(p.entries, e.ref)
	return p.save(ctx, func(r *store.RoomsState) { r.Added = without(r.Added, e.String()) })
}

func isLastOwner(err error) bool {
	var e *rocketchat.Error
	return errors.As(err, &e) && (e.ErrorType == "error-you-are-last-owner" || strings.TrimSpace(e.Message) == "last-owner-can-not-be-removed")
}

// join adds the person to a room their groups give, unless it does not
// exist or they are in it already (then it is theirs, not rcsso's: never
// recorded, never left). The membership is recorded as pending before
// Rocket.Chat is asked, so that a crash or a timeout in between does not
// leave a membership rcsso added but would not know of.
func (p *pass) join(ctx context.Context, r Ref) error {
	res := p.known[r]
	if res.missing || res.id == "" {
		return nil // logged by record, reported by Status
	}
	member, err := p.isMember(ctx, r, res.id)
	if errors.Is(err, errSkipRoom) {
		return nil
	}
	if err != nil || member {
		return err
	}
	e := entry{ref: r, id: res.id}
	if err := p.save(ctx, func(st *store.RoomsState) { st.Pending = with(st.Pending, e.String()) }); err != nil {
		return err
	}
	_, err = rcadmin.Do(ctx, p.s.admin, func(cr rocketchat.Credentials) (struct{}, error) {
		switch r.Kind {
		case rocketchat.Channel:
			return struct{}{}, p.s.rc.ChannelInvite(ctx, cr, res.id, p.userID)
		case rocketchat.PrivateGroup:
			return struct{}{}, p.s.rc.GroupInvite(ctx, cr, res.id, p.userID)
		}
		return struct{}{}, p.s.rc.TeamAddMember(ctx, cr, res.id, p.userID)
	})
	if err != nil && (rocketchat.IsUnavailable(err) || errors.Is(err, context.DeadlineExceeded)) {
		// The invitation may have been made: the pending record stays for
		// the next pass to settle.
		return p.stop(err, "adding the person to "+r.String())
	}
	if err != nil {
		if rocketchat.IsRoomNotFound(err) {
			p.s.record(r, resolution{missing: true, at: p.s.now()})
		}
		if serr := p.save(ctx, func(st *store.RoomsState) { st.Pending = without(st.Pending, e.String()) }); serr != nil {
			return serr
		}
		if rocketchat.IsRoomNotFound(err) {
			return nil
		}
		if perm := rocketchat.MissingPermission(err); perm != "" {
			err = fmt.Errorf("%w (the service account needs %s)", err, perm)
		}
		return p.stop(err, "adding the person to "+r.String())
	}
	p.entries[r] = e
	p.joined = append(p.joined, r.String())
	return p.save(ctx, func(st *store.RoomsState) {
		st.Pending = without(st.Pending, e.String())
		st.Added = with(st.Added, e.String())
	})
}

// isMember asks Rocket.Chat whether the person is in room r (_id id): the
// room's members whose username contains theirs. When the list is too
// long to tell (over 100 such names), it says so as a failure rather than
// guess.
func (p *pass) isMember(ctx context.Context, r Ref, id string) (bool, error) {
	type page struct {
		list  []rocketchat.Member
		total int
	}
	pg, err := rcadmin.Do(ctx, p.s.admin, func(cr rocketchat.Credentials) (page, error) {
		var pg page
		var err error
		switch r.Kind {
		case rocketchat.Channel:
			pg.list, pg.total, err = p.s.rc.ChannelMembers(ctx, cr, id, p.username)
		case rocketchat.PrivateGroup:
			pg.list, pg.total, err = p.s.rc.GroupMembers(ctx, cr, id, p.username)
		default:
			pg.list, pg.total, err = p.s.rc.TeamMembers(ctx, cr, id, p.username)
		}
		return pg, err
	})
	if rocketchat.IsRoomNotFound(err) {
		p.s.record(r, resolution{missing: true, at: p.s.now()})
		return false, nil
	}
	if err != nil {
		return false, p.orStop(err, "listing the members of "+r.String())
	}
	for _, m := range pg.list {
		if m.ID == p.userID {
			return true, nil
		}
	}
	if pg.total > len(pg.list) {
		p.s.log.Warn("cannot tell whether the person is in a room: too many members' names contain theirs; leaving it to them",
			"subject", p.subject, "room", r.String(), "rc_username", p.username, "matches", pg.total)
		return true, nil // treated as theirs: never added, never left
	}
	return false, nil
}

// orStop is stop for a call whose failure ends the room's handling: a
// non-nil error ends the pass; otherwise errSkipRoom is returned so the
// caller skips the room.
func (p *pass) orStop(err error, what string) error {
	if serr := p.stop(err, what); serr != nil {
		return serr
	}
	return errSkipRoom
}

// errSkipRoom makes a membership check's caller skip the room this pass.
var errSkipRoom = errors.New("rooms: room skipped this pass")

// save writes a change of the rooms record, only while the person is
// still linked to the same Rocket.Chat user.
func (p *pass) save(ctx context.Context, change func(*store.RoomsState)) error {
	l, err := p.s.st.UpdateLink(ctx, p.subject, func(x *store.Link) error {
		if x.UserID != p.userID || x.Rooms.UserID != p.userID {
			return errSkip
		}
		change(&x.Rooms)
		return nil
	})
	if errors.Is(err, errSkip) {
		return errors.New("rooms: the person was given another Rocket.Chat user during the sync")
	}
	if err != nil {
		return err
	}
	p.state = l.Rooms
	return nil
}

// with adds s to a sorted list (no duplicates).
func with(list []string, s string) []string {
	i, found := slices.BinarySearch(list, s)
	if found {
		return list
	}
	return slices.Insert(slices.Clone(list), i, s)
}

// without removes s from a list.
func without(list []string, s string) []string {
	return slices.DeleteFunc(slices.Clone(list), func(x string) bool { return x == s })
}
