package mint

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
)

// Provisioner finds or creates the Rocket.Chat user of an identity.
type Provisioner interface {
	Ensure(ctx context.Context, id identity.Identity) (store.Link, error)
}

// ProfileSyncer is an optional Provisioner capability: keep the Rocket.Chat
// profile in step with the website's (issue: profile sync).
type ProfileSyncer interface {
	// ProfileDigest is a cheap digest of the profile rcsso would write.
	ProfileDigest(id identity.Identity) string
	// Sync writes what changed; true when Rocket.Chat now has the profile.
	Sync(ctx context.Context, id identity.Identity) (bool, error)
}

// RoomSyncer keeps a person's Rocket.Chat room and team memberships in
// step with their groups (provisioning.rooms; package
// internal/provision/rooms). The broker runs it in the background of the
// API URL, next to profile sync.
type RoomSyncer interface {
	// RoomsDigest is a cheap digest (no I/O) of the memberships id's
	// groups give; "" when there is nothing to do.
	RoomsDigest(id identity.Identity) string
	// RoomsInStep reports whether link l records digest as in step.
	RoomsInStep(l store.Link, digest string) bool
	// SyncRooms brings them in step; true when they are, false when the
	// sync must be tried again later (the error, if any, says why).
	SyncRooms(ctx context.Context, id identity.Identity) (bool, error)
}

// BrokerConfig tunes token reuse.
type BrokerConfig struct {
	// RevalidateAfter: a cached token older than this (since its last
	// validation) is checked with the Validator before being handed out.
	// Each person's check comes up to a tenth earlier, by a share fixed by
	// their subject (the same in every rcsso instance), so that tokens
	// validated at one moment (a start-up, a morning's logins) are checked
	// again spread over that tenth, not all at once.
	RevalidateAfter time.Duration
	// TTL: a cached token older than this (since minting) is replaced.
	TTL time.Duration
	// MintTimeout bounds provisioning + minting, which runs detached from
	// the request so that a client that goes away never leaves it half done.
	MintTimeout time.Duration
	// Policies are the identity sources' access policies by source name
	// (identity[i].allow): a person a policy does not allow gets
	// identity.ErrAccessDenied, no Rocket.Chat account and no token.
	Policies map[string]identity.Policy
	// MinMintInterval: at most one new token per person per interval
	// (across every rcsso sharing the store: store.Link.LastMintAt), so no
	// loop can churn through Rocket.Chat's 50-token cap. Default 30 s.
	MinMintInterval time.Duration
	// Cache, when set, keeps each person's decrypted token (with when it
	// expires and must be re-validated, and the profile digest known to be
	// in Rocket.Chat) in process, so that a page view reads nothing from
	// the store; every change to what a person gets (a new token, a logout,
	// a chat-side logout, a user gone or deactivated) is announced through
	// it to every rcsso instance on the store.
	Cache *hotcache.Cache
	// Rooms, when set, keeps rooms and teams in step with groups
	// (provisioning.rooms), in the background like profile sync.
	Rooms RoomSyncer
}

// Stats are cumulative counters.
type Stats struct {
	// Minted counts new tokens obtained from Rocket.Chat.
	Minted int64
	// Reused counts requests answered from the cache.
	Reused int64
	// Validated counts successful re-validations; Rejected those that
	// failed (followed by a new mint).
	Validated int64
	Rejected  int64
}

// Broker hands out one reusable token per person: from the store when it
// has one, else by provisioning the user and minting once (concurrent first
// requests for one person share a single mint).
type Broker struct {
	st     store.Store
	sealer *sealer.Sealer
	minter Minter
	prov   Provisioner
	cfg    BrokerConfig
	log    *slog.Logger
	now    func() time.Time
	sf     singleflight.Group
	cache  *hotcache.Cache
	hot    *hotcache.Table[string, hotToken] // nil: nothing cached

	syncing sync.WaitGroup

	minted, reused, validated, rejected atomic.Int64
}

// NewBroker returns a Broker.
func NewBroker(st store.Store, s *sealer.Sealer, m Minter, p Provisioner, cfg BrokerConfig, log *slog.Logger) *Broker {
	if cfg.MintTimeout <= 0 {
		cfg.MintTimeout = 30 * time.Second
	}
	if cfg.MinMintInterval <= 0 {
		cfg.MinMintInterval = 30 * time.Second
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Broker{st: st, sealer: s, minter: m, prov: p, cfg: cfg, log: log, now: time.Now,
		cache: cfg.Cache, hot: hotcache.NewSubjectTable[hotToken](cfg.Cache)}
}

// hotToken is a person's entry in the hot cache, compact: the token value
// and the Rocket.Chat user id share one string, times are unix
// milliseconds, the profile digest is a 64-bit hash.
type hotToken struct {
	data    string // the token value, then the Rocket.Chat user id
	split   uint32 // length of the token value
	iframe  bool   // Kind IframeToken
	expires int64  // MintedAt + TTL
	due     int64  // when to re-validate: ValidatedAt + RevalidateAfter − jitter
	digest  uint64 // profileHash of the profile known to be in Rocket.Chat; 0: not known here
	syncAt  int64  // no profile sync is tried before this
	rooms   uint64 // digestHash of the memberships known to be in step; 0: not known here
	roomsAt int64  // no rooms sync is tried before this
}

func (b *Broker) newHot(t Token, rec store.Token) hotToken {
	return hotToken{
		data:    t.Value + t.UserID,
		split:   uint32(len(t.Value)),
		iframe:  t.Kind == IframeToken,
		expires: rec.MintedAt.Add(b.cfg.TTL).UnixMilli(),
		due:     b.due(rec.Subject, rec.ValidatedAt).UnixMilli(),
	}
}

func (h *hotToken) token() Token {
	k := LoginToken
	if h.iframe {
		k = IframeToken
	}
	return Token{Value: h.data[:h.split], Kind: k, UserID: h.data[h.split:]}
}

// fresh reports whether the token may be handed out at now without asking
// Rocket.Chat.
func (h *hotToken) fresh(now time.Time) bool {
	ms := now.UnixMilli()
	return ms < h.expires && ms < h.due
}

// due is when a token validated at validated must be checked again: after
// RevalidateAfter less the person's jitter.
func (b *Broker) due(subject string, validated time.Time) time.Time {
	return validated.Add(b.cfg.RevalidateAfter - jitter(subject, b.cfg.RevalidateAfter))
}

// jitter is how much earlier than revalidateAfter the token of subject is
// re-validated: in [0, revalidateAfter/10), fixed by the subject's FNV-1a
// hash, so that every rcsso instance agrees and people validated at one
// moment are checked again spread over a tenth of the interval.
func jitter(subject string, revalidateAfter time.Duration) time.Duration {
	spread := uint64(revalidateAfter / 10)
	if spread == 0 {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(subject); i++ {
		h ^= uint64(subject[i])
		h *= 1099511628211
	}
	return time.Duration(h % spread)
}

// digestSeed hashes profile digests for the hot cache (in process only).
var digestSeed = maphash.MakeSeed()

// digestHash is a rooms digest's hash in hotToken.rooms (never 0).
func digestHash(d string) uint64 { return max(maphash.String(digestSeed, d), 1) }

// profileHash hashes the identity fields a profile digest may depend on
// (name, e-mail and whether it is vouched for, avatar, roles) for
// hotToken.digest (never 0): equal hashes mean the provisioner's
// ProfileDigest is equal too, without computing it.
func profileHash(id identity.Identity) uint64 {
	var h maphash.Hash
	h.SetSeed(digestSeed)
	for _, f := range [...]string{id.Name, id.Email, id.AvatarURL} {
		h.WriteString(f)
		h.WriteByte(0)
	}
	if id.EmailVerified {
		h.WriteByte(1)
	}
	h.WriteByte(0)
	if id.Roles != nil {
		h.WriteByte(1) // nil roles (the source says nothing) differ from none
	}
	for _, r := range id.Roles {
		h.WriteString(r)
		h.WriteByte(0)
	}
	return max(h.Sum64(), 1)
}

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	return Stats{Minted: b.minted.Load(), Reused: b.reused.Load(), Validated: b.validated.Load(), Rejected: b.rejected.Load()}
}

// CachedPeople returns how many people's tokens the hot cache holds
// (current or not), at most the cache's size.
func (b *Broker) CachedPeople() int { return b.hot.Len() }

// Token returns a token for id. When revalidate is true a cached token is
// checked with Rocket.Chat before it is returned (the IFrame URL does this:
// Rocket.Chat shows it after a token failed). Errors are upstream or store
// failures.
func (b *Broker) Token(ctx context.Context, id identity.Identity, revalidate bool) (Token, error) {
	if p, ok := b.cfg.Policies[id.Source]; ok && !p.Allows(id) {
		b.log.Info("refused: the identity source's access policy does not give this person chat", "subject", id.Subject, "source", id.Source)
		record(ctx, audit.Refused, audit.Denied, id, "", "access policy")
		return Token{}, identity.ErrAccessDenied
	}
	if !revalidate {
		if t, fresh, h, err := b.cached(ctx, id.Subject); err != nil {
			return Token{}, err
		} else if fresh {
			b.reused.Add(1)
			b.syncIfChanged(ctx, id, h)
			b.syncRoomsIfChanged(ctx, id, h)
			return t, nil
		}
	}
	key := id.Subject
	if revalidate {
		key = "revalidate\x00" + key
	}
	v, err, _ := b.sf.Do(key, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.MintTimeout)
		defer cancel()
		return b.slow(ctx, id, revalidate)
	})
	if err != nil {
		return Token{}, err
	}
	h, _ := b.hot.Get(id.Subject)
	b.syncIfChanged(ctx, id, h)
	b.syncRoomsIfChanged(ctx, id, h)
	return v.(Token), nil
}

// syncRetry is how long after a failed or skipped profile sync this
// instance tries again (Sync itself spaces its writes per person across
// instances).
const syncRetry = 15 * time.Second

// syncIfChanged starts a background profile sync when id's profile differs
// from the one known to be in Rocket.Chat: the person's hot cache entry h
// knows it (the zero hotToken when the person has none), else the link's
// ProfileHash in the store. The request does not wait for the sync; a
// failed sync is retried on a later request.
func (b *Broker) syncIfChanged(ctx context.Context, id identity.Identity, h hotToken) {
	ps, ok := b.prov.(ProfileSyncer)
	if !ok {
		return
	}
	// The cheap hash of the fields first: on a page view nothing changed,
	// and the provisioner's digest (a SHA-256 per field) is not computed.
	dh := profileHash(id)
	if h.digest == dh || b.now().UnixMilli() < h.syncAt {
		return
	}
	d := ps.ProfileDigest(id)
	if h.digest == 0 {
		// Not known here: the store knows what was last written.
		if l, err := b.st.GetLink(ctx, id.Subject); err == nil && l.ProfileHash == d {
			b.hot.Update(id.Subject, func(h *hotToken) { h.digest = dh })
			return
		}
	}
	b.syncing.Add(1)
	go b.syncProfile(ctx, ps, id, dh)
}

// syncProfile is syncIfChanged's background work (a method, not a
// closure: a captured id would be moved to the heap on every page view).
func (b *Broker) syncProfile(ctx context.Context, ps ProfileSyncer, id identity.Identity, dh uint64) {
	defer b.syncing.Done()
	_, _, _ = b.sf.Do("sync\x00"+id.Subject, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.MintTimeout)
		defer cancel()
		done, err := ps.Sync(ctx, id)
		if err != nil {
			b.log.Warn("profile sync failed; will retry", "subject", id.Subject, "err", err)
		}
		if done {
			b.hot.Update(id.Subject, func(h *hotToken) { h.digest, h.syncAt = dh, 0 })
		} else {
			retry := b.now().Add(syncRetry).UnixMilli()
			b.hot.Update(id.Subject, func(h *hotToken) { h.syncAt = retry })
		}
		return nil, nil
	})
}

// syncRoomsIfChanged starts a background rooms sync (Config.Rooms) when
// the memberships id's groups give are not known to be in step: the
// person's hot cache entry h knows (the zero hotToken when none), else the
// link in the store. Like profile sync, the request does not wait, and a
// sync that could not finish is tried again on a later request (after
// syncRetry; the syncer itself spaces syncs per person across instances
// and holds off while Rocket.Chat rate-limits rcsso).
func (b *Broker) syncRoomsIfChanged(ctx context.Context, id identity.Identity, h hotToken) {
	rs := b.cfg.Rooms
	if rs == nil {
		return
	}
	d := rs.RoomsDigest(id)
	if d == "" {
		return
	}
	dh := digestHash(d)
	if h.rooms == dh || b.now().UnixMilli() < h.roomsAt {
		return
	}
	if h.rooms == 0 {
		if l, err := b.st.GetLink(ctx, id.Subject); err == nil && rs.RoomsInStep(l, d) {
			b.hot.Update(id.Subject, func(h *hotToken) { h.rooms = dh })
			return
		}
	}
	b.syncing.Add(1)
	go b.syncRooms(ctx, rs, id, dh)
}

// syncRooms is syncRoomsIfChanged's background work (a method, for the
// reason syncProfile is).
func (b *Broker) syncRooms(ctx context.Context, rs RoomSyncer, id identity.Identity, dh uint64) {
	defer b.syncing.Done()
	_, _, _ = b.sf.Do("rooms\x00"+id.Subject, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.cfg.MintTimeout)
		defer cancel()
		done, err := rs.SyncRooms(ctx, id)
		if err != nil {
			b.log.Warn("rooms sync failed; will retry", "subject", id.Subject, "err", err)
		}
		if done {
			b.hot.Update(id.Subject, func(h *hotToken) { h.rooms, h.roomsAt = dh, 0 })
		} else {
			retry := b.now().Add(syncRetry).UnixMilli()
			b.hot.Update(id.Subject, func(h *hotToken) { h.roomsAt = retry })
		}
		return nil, nil
	})
}

// WaitSync waits for background profile and rooms syncs started so far
// (tests, shutdown).
func (b *Broker) WaitSync() { b.syncing.Wait() }

// Drain waits for the background profile and rooms syncs in flight, or
// until ctx ends (then ctx's error): at shutdown, after the HTTP server
// stopped taking requests and before the store closes, so a sync is not
// cut off between its Rocket.Chat write and its store write. Each sync is
// bounded by BrokerConfig.MintTimeout.
func (b *Broker) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		b.syncing.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mint: background syncs still running at shutdown: %w", ctx.Err())
	}
}

// cached returns the person's cached token (from the hot cache, else from
// the store, which then fills the hot cache), whether it may be handed out
// without asking Rocket.Chat, and the hot cache entry (zero when none).
func (b *Broker) cached(ctx context.Context, subject string) (Token, bool, hotToken, error) {
	now := b.now()
	if h, ok := b.hot.Get(subject); ok {
		return h.token(), h.fresh(now), h, nil
	}
	snap := b.cache.Snapshot()
	rec, err := b.st.GetToken(ctx, subject)
	if errors.Is(err, store.ErrNotFound) {
		return Token{}, false, hotToken{}, nil
	}
	if err != nil {
		return Token{}, false, hotToken{}, err
	}
	t, err := b.open(rec)
	if err != nil {
		b.log.Warn("cached token cannot be decrypted (key changed?); minting a new one", "subject", subject)
		return Token{}, false, hotToken{}, nil
	}
	if now.Sub(rec.MintedAt) >= b.cfg.TTL {
		return Token{}, false, hotToken{}, nil
	}
	h := b.newHot(t, rec)
	b.hot.Put(subject, h, snap)
	return t, h.fresh(now), h, nil
}

func (b *Broker) slow(ctx context.Context, id identity.Identity, revalidate bool) (_ Token, err error) {
	defer func() { recordFailure(ctx, id, err) }()
	unlock, err := b.lock(ctx, id.Subject)
	if err != nil {
		return Token{}, err
	}
	defer unlock()
	if err := b.checkLoggedOut(ctx, id, false); err != nil {
		return Token{}, err
	}
	if err := b.checkDeactivated(ctx, id.Subject); err != nil {
		return Token{}, err
	}
	snap := b.cache.Snapshot()
	rec, err := b.st.GetToken(ctx, id.Subject)
	switch {
	case errors.Is(err, store.ErrNotFound):
	case err != nil:
		return Token{}, err
	default:
		if t, err := b.open(rec); err == nil && b.now().Sub(rec.MintedAt) < b.cfg.TTL {
			if !revalidate && b.now().Before(b.due(id.Subject, rec.ValidatedAt)) {
				b.hot.Put(id.Subject, b.newHot(t, rec), snap)
				b.reused.Add(1)
				return t, nil // another caller refreshed it meanwhile
			}
			ok, err := b.validate(ctx, t)
			if err != nil {
				return Token{}, err
			}
			if ok {
				rec.ValidatedAt = b.now().UTC()
				if err := b.st.PutToken(ctx, rec); err != nil {
					return Token{}, err
				}
				b.hot.Put(id.Subject, b.newHot(t, rec), snap)
				b.reused.Add(1)
				record(ctx, audit.Revalidate, audit.OK, id, t.UserID, "")
				return t, nil
			}
			// rcsso deletes the tokens it revokes before revoking them, so a
			// cached token that Rocket.Chat rejects was ended on Rocket.Chat's
			// side: the person logged out of the chat (or an admin logged
			// them out): do not log them straight back in. Unless the user
			// itself is gone (re-provision) or deactivated (say so).
			switch state, err := b.checkUser(ctx, id.Subject); {
			case err != nil:
				return Token{}, err
			case state == UserGone:
				// Fall through to provisioning a new user.
			case state == UserDeactivated:
				return Token{}, ErrDeactivated
			default:
				return Token{}, b.markLoggedOut(ctx, id)
			}
		}
	}
	if prev, err := b.st.GetLink(ctx, id.Subject); err == nil && !prev.LastMintAt.IsZero() {
		if wait := b.cfg.MinMintInterval - b.now().Sub(prev.LastMintAt); wait > 0 {
			b.log.Warn("not minting: this person got a new token moments ago", "subject", id.Subject, "retry_after", wait.Round(time.Second).String())
			return Token{}, &ThrottledError{RetryAfter: wait}
		}
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return Token{}, err
	}
	link, err := b.prov.Ensure(ctx, id)
	if err != nil {
		b.logTaken(id, err)
		return Token{}, err
	}
	t, err := b.minter.Mint(ctx, Request{Identity: id, Link: link})
	if err != nil && link.UserID != "" && refused(err) {
		// Rocket.Chat refused to mint for the linked user: find out whether
		// it still exists (one call, only on this failure path).
		switch state, cerr := b.checkUser(ctx, id.Subject); {
		case cerr != nil:
			return Token{}, errors.Join(err, cerr)
		case state == UserDeactivated:
			return Token{}, ErrDeactivated
		case state == UserGone:
			if link, err = b.prov.Ensure(ctx, id); err != nil {
				b.logTaken(id, err)
				return Token{}, err
			}
			t, err = b.minter.Mint(ctx, Request{Identity: id, Link: link})
		}
	}
	if err != nil {
		return Token{}, err
	}
	if t.Kind == "" {
		t.Kind = LoginToken
	}
	if t.UserID == "" {
		t.UserID = link.UserID
	}
	now := b.now().UTC()
	linkedNow := false
	// Record the mint, and the user id when the minter learned it
	// (Rocket.Chat created or merged the user itself, mode oauth). The
	// store refuses a user id linked to another subject: such a token is
	// revoked, never handed out.
	_, err = b.st.UpdateLink(ctx, id.Subject, func(l *store.Link) error {
		if l.UserID != "" && l.UserID != t.UserID {
			b.log.Warn("Rocket.Chat gave this person another user id (their user was re-created?)", "subject", id.Subject, "rc_user_id", t.UserID, "previous_rc_user_id", l.UserID)
		}
		linkedNow = l.UserID == "" && link.UserID == ""
		l.UserID = t.UserID
		if l.Username == "" {
			l.Username = link.Username
		}
		l.LastMintAt = now
		return nil
	})
	if err != nil {
		b.logTaken(id, err)
		b.discard(ctx, t)
		return Token{}, err
	}
	err = b.st.PutToken(ctx, store.Token{
		Subject:     id.Subject,
		UserID:      t.UserID,
		Ciphertext:  b.sealer.Seal(sealToken(t), id.Subject),
		MintedAt:    now,
		ValidatedAt: now,
	})
	if err != nil {
		return Token{}, fmt.Errorf("caching the new token: %w", err)
	}
	_ = b.cache.Invalidate(ctx, id.Subject) // the other instances may hold the previous token; a failure is logged
	b.minted.Add(1)
	b.log.Info("minted rocket.chat token", "subject", id.Subject, "rc_user_id", t.UserID, "kind", string(t.Kind))
	if linkedNow {
		record(ctx, audit.Provision, audit.OK, id, t.UserID, "created or linked by Rocket.Chat during the login")
	}
	record(ctx, audit.Mint, audit.OK, id, t.UserID, "")
	return t, nil
}

// validate reports whether Rocket.Chat still accepts t. When Rocket.Chat
// rate-limits the check, or rcsso holds it back to stay under that limit
// (rocketchat.ErrBudgetSpent), the token is assumed good (it was good
// before; minting would only add to the user's token count) until the
// person's next due check.
func (b *Broker) validate(ctx context.Context, t Token) (bool, error) {
	v, ok := b.minter.(Validator)
	if !ok {
		return true, nil
	}
	err := v.Validate(ctx, t)
	switch {
	case err == nil:
		b.validated.Add(1)
		return true, nil
	case errors.Is(err, ErrRejected):
		b.rejected.Add(1)
		b.log.Info("cached rocket.chat token rejected; minting a new one", "rc_user_id", t.UserID)
		return false, nil
	default:
		if _, limited := rocketchat.IsRateLimited(err); limited {
			if errors.Is(err, rocketchat.ErrBudgetSpent) {
				b.log.Debug("token re-validation held back (rocketchat.calls_per_minute is spent); reusing the cached token", "rc_user_id", t.UserID)
			} else {
				b.log.Warn("token re-validation rate limited by Rocket.Chat; reusing the cached token", "rc_user_id", t.UserID)
			}
			return true, nil
		}
		return false, fmt.Errorf("re-validating the cached token: %w", err)
	}
}

// LeaseTTL is how long a person's mint lease lives without renewal: how
// long a crashed holder (kill -9 mid-provisioning) can keep the others
// waiting. It is at most a third of the mint timeout (and at most 10 s), so
// a visitor whose lease holder died gets the lease and a token, not a 504;
// a live holder renews its lease every LeaseTTL/3.
func (b *Broker) LeaseTTL() time.Duration { return min(10*time.Second, b.cfg.MintTimeout/3) }

// lock takes the person's lease in the store when it is shared by several
// rcsso processes (store.Locker), so that only one of them provisions and
// mints; the others wait (polling) and then find the cached token. The
// holder renews the lease until it unlocks. Without a Locker, the
// in-process singleflight is the only guard.
func (b *Broker) lock(ctx context.Context, subject string) (func(), error) {
	l, ok := b.st.(store.Locker)
	if !ok {
		return func() {}, nil
	}
	key := "mint:" + subject
	ttl := b.LeaseTTL()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		tok, got, err := l.TryLock(ctx, key, ttl)
		if err != nil {
			return nil, err
		}
		if got {
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				renew := time.NewTicker(ttl / 3)
				defer renew.Stop()
				for {
					select {
					case <-stop:
						return
					case <-renew.C:
						if ok, err := l.Renew(ctx, key, tok, ttl); err != nil || !ok {
							b.log.Warn("could not renew the mint lease", "subject", subject, "held", ok, "err", err)
						}
					}
				}
			}()
			return func() {
				close(stop)
				<-done
				uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				defer cancel()
				if err := l.Unlock(uctx, key, tok); err != nil {
					b.log.Warn("releasing the mint lease", "subject", subject, "err", err)
				}
			}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for another rcsso process minting for this person: %w", ctx.Err())
		case <-tick.C:
		}
	}
}

// checkLoggedOut returns ErrChatLoggedOut while the person's chat-logged-out
// marker is set, and clears the marker when they logged in on the website
// after it was set, or when resume is true.
func (b *Broker) checkLoggedOut(ctx context.Context, id identity.Identity, resume bool) error {
	l, err := b.st.GetLink(ctx, id.Subject)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.ChatLoggedOutAt.IsZero() {
		return nil
	}
	if !resume && !id.AuthTime.After(l.ChatLoggedOutAt) {
		return ErrChatLoggedOut
	}
	_, err = b.st.UpdateLink(ctx, id.Subject, func(l *store.Link) error {
		l.ChatLoggedOutAt = time.Time{}
		l.LastMintAt = time.Time{} // a person logging in again is not a loop
		return nil
	})
	if err != nil {
		return err
	}
	_ = b.cache.Invalidate(ctx, id.Subject) // a failure is logged
	b.log.Info("chat logged in again after a chat-side logout", "subject", id.Subject, "resumed", resume)
	return nil
}

// markLoggedOut records a chat-side logout and drops the dead token.
func (b *Broker) markLoggedOut(ctx context.Context, id identity.Identity) error {
	if err := b.st.DeleteToken(ctx, id.Subject); err != nil {
		return err
	}
	userID := ""
	_, err := b.st.UpdateLink(ctx, id.Subject, func(l *store.Link) error {
		if l.UserID == "" {
			return store.ErrNotFound // no link: nothing to mark
		}
		userID = l.UserID
		l.ChatLoggedOutAt = b.now().UTC()
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	_ = b.cache.Invalidate(ctx, id.Subject) // a failure is logged
	b.log.Info("person logged out on the Rocket.Chat side; not logging them straight back in", "subject", id.Subject)
	record(ctx, audit.Logout, audit.OK, id, userID, "chat-side logout (Rocket.Chat no longer accepts the token)")
	return ErrChatLoggedOut
}

// Resume is the person asking for the chat again after a chat-side logout
// (a button on the IFrame URL): it clears the marker and returns a token.
func (b *Broker) Resume(ctx context.Context, id identity.Identity) (Token, error) {
	if err := b.checkLoggedOut(ctx, id, true); err != nil {
		return Token{}, err
	}
	return b.Token(ctx, id, true)
}

// Forget drops the cached token of subject, in the store and in the hot
// cache of every rcsso instance on the store, and, when revoke is true and
// the minter can, ends that Rocket.Chat session. It reports whether a token
// was cached. An error after the deletion (announcing it, revoking) still
// reports true.
func (b *Broker) Forget(ctx context.Context, subject string, revoke bool) (bool, error) {
	// Under the person's mint lease: a mint or re-validation in progress on
	// another instance finishes first, so it cannot write the token back
	// after this logout deleted it.
	unlock, err := b.lock(ctx, subject)
	if err != nil {
		return false, err
	}
	defer unlock()
	rec, err := b.st.GetToken(ctx, subject)
	if errors.Is(err, store.ErrNotFound) {
		// Nothing to delete; announce it anyway: an instance that missed
		// an earlier change may still hold a token.
		return false, b.cache.Invalidate(ctx, subject)
	}
	if err != nil {
		return false, err
	}
	if err := b.st.DeleteToken(ctx, subject); err != nil {
		return true, err
	}
	announceErr := b.cache.Invalidate(ctx, subject)
	who := identity.Identity{Subject: subject}
	if r, ok := b.minter.(Revoker); ok && revoke {
		if t, err := b.open(rec); err == nil {
			if err := r.Revoke(ctx, t); err != nil {
				record(ctx, audit.Revoke, audit.Failed, who, rec.UserID, "cached token dropped; ending the Rocket.Chat session failed: "+FailureReason(err))
				return true, errors.Join(announceErr, fmt.Errorf("revoking the Rocket.Chat session: %w", err))
			}
			record(ctx, audit.Revoke, audit.OK, who, rec.UserID, "cached token dropped and the Rocket.Chat session ended")
			return true, announceErr
		}
	}
	record(ctx, audit.Revoke, audit.OK, who, rec.UserID, "cached token dropped")
	return true, announceErr
}

// checkUser asks the provisioner (UserChecker) about subject's linked
// Rocket.Chat user. A user that is gone is unlinked here, so that the next
// Ensure provisions a new one; without a UserChecker every user counts as
// active.
func (b *Broker) checkUser(ctx context.Context, subject string) (UserState, error) {
	uc, ok := b.prov.(UserChecker)
	if !ok {
		return UserActive, nil
	}
	l, err := b.st.GetLink(ctx, subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && l.UserID == "") {
		return UserGone, nil
	}
	if err != nil {
		return UserActive, err
	}
	state, err := uc.CheckUser(ctx, l)
	if err != nil {
		return UserActive, fmt.Errorf("asking Rocket.Chat about the linked user: %w", err)
	}
	switch state {
	case UserGone:
		if err := b.st.DeleteToken(ctx, subject); err != nil {
			return state, err
		}
		_, err := b.st.UpdateLink(ctx, subject, func(x *store.Link) error {
			if x.UserID != l.UserID {
				return nil // re-linked meanwhile
			}
			x.UserID, x.Username, x.ProfileHash, x.ProfileSyncedAt = "", "", "", time.Time{}
			x.ChatLoggedOutAt, x.LastMintAt = time.Time{}, time.Time{}
			return nil
		})
		if err != nil {
			return state, err
		}
		_ = b.cache.Invalidate(ctx, subject) // a failure is logged
		b.log.Warn("the person's Rocket.Chat user no longer exists (deleted, or Rocket.Chat restored from an older backup); provisioning a new one",
			"subject", subject, "previous_rc_user_id", l.UserID)
	case UserDeactivated:
		if err := b.st.DeleteToken(ctx, subject); err != nil {
			return state, err
		}
		if _, err := b.st.UpdateLink(ctx, subject, func(x *store.Link) error {
			x.DeactivatedAt = b.now().UTC()
			return nil
		}); err != nil {
			return state, err
		}
		_ = b.cache.Invalidate(ctx, subject) // a failure is logged
		b.log.Info("the person's Rocket.Chat user is deactivated; not minting", "subject", subject, "rc_user_id", l.UserID)
	case UserActive:
		if !l.DeactivatedAt.IsZero() {
			if _, err := b.st.UpdateLink(ctx, subject, func(x *store.Link) error {
				x.DeactivatedAt = time.Time{}
				return nil
			}); err != nil {
				return state, err
			}
			b.log.Info("the person's Rocket.Chat user is active again", "subject", subject, "rc_user_id", l.UserID)
		}
	}
	return state, nil
}

// deactivatedRecheck is how long rcsso believes "deactivated" before
// asking Rocket.Chat again (an administrator may turn the user back on).
const deactivatedRecheck = time.Minute

// checkDeactivated returns ErrDeactivated while the person's Rocket.Chat
// user is known to be deactivated, asking Rocket.Chat again at most once
// per deactivatedRecheck.
func (b *Broker) checkDeactivated(ctx context.Context, subject string) error {
	l, err := b.st.GetLink(ctx, subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && l.DeactivatedAt.IsZero()) {
		return nil
	}
	if err != nil {
		return err
	}
	if b.now().Sub(l.DeactivatedAt) < deactivatedRecheck {
		return ErrDeactivated
	}
	state, err := b.checkUser(ctx, subject)
	if err != nil {
		return err
	}
	if state == UserDeactivated {
		return ErrDeactivated
	}
	return nil
}

// refused reports whether err is Rocket.Chat refusing a request (a 4xx
// other than a rate limit), as opposed to being unreachable or slow.
func refused(err error) bool {
	var rce *rocketchat.Error
	if !errors.As(err, &rce) || rce.Status < 400 || rce.Status > 499 {
		return false
	}
	_, limited := rocketchat.IsRateLimited(err)
	return !limited
}

// logTaken logs a refusal to hand one person's chat account to another,
// naming both subjects (and so both identity sources).
func (b *Broker) logTaken(id identity.Identity, err error) {
	var taken *store.LinkTakenError
	if errors.As(err, &taken) {
		b.log.Warn("refused: this Rocket.Chat user is linked to another person", "subject", id.Subject, "source", id.Source,
			"rc_user_id", taken.UserID, "linked_subject", taken.Holder)
	}
}

// discard ends a session rcsso obtained but will not hand out.
func (b *Broker) discard(ctx context.Context, t Token) {
	r, ok := b.minter.(Revoker)
	if !ok {
		return
	}
	if err := r.Revoke(context.WithoutCancel(ctx), t); err != nil {
		b.log.Warn("could not end a Rocket.Chat session rcsso will not hand out", "rc_user_id", t.UserID, "err", err)
	}
}

// sealToken is the plaintext sealed in the store: "<kind>\x00<value>".
func sealToken(t Token) []byte { return []byte(string(t.Kind) + "\x00" + t.Value) }

// open decrypts a cached token record.
func (b *Broker) open(rec store.Token) (Token, error) {
	pt, err := b.sealer.Open(rec.Ciphertext, rec.Subject)
	if err != nil {
		return Token{}, err
	}
	kind, value, ok := strings.Cut(string(pt), "\x00")
	if !ok || (Kind(kind) != LoginToken && Kind(kind) != IframeToken) {
		return Token{}, sealer.ErrOpen
	}
	return Token{Value: value, Kind: Kind(kind), UserID: rec.UserID}, nil
}

// Reset makes the person's next visit start clean (rcsso people reset): it
// ends their cached chat session (Forget, revoking it in Rocket.Chat), and
// clears every marker rcsso keeps for them: logged out of the chat,
// deactivated, the last mint time and an unfinished creation. With unlink
// it also forgets which Rocket.Chat user is theirs, so the next visit
// provisions (or, as provisioning.adopt allows, links) one anew. It
// reports whether there was a link.
func (b *Broker) Reset(ctx context.Context, subject string, unlink bool) (bool, error) {
	if _, err := b.Forget(ctx, subject, true); err != nil {
		return false, err
	}
	had := false
	_, err := b.st.UpdateLink(ctx, subject, func(l *store.Link) error {
		if l.UpdatedAt.IsZero() {
			return store.ErrNotFound
		}
		had = true
		l.ChatLoggedOutAt, l.DeactivatedAt, l.LastMintAt = time.Time{}, time.Time{}, time.Time{}
		l.CreatingUsername, l.CreatingAt = "", time.Time{}
		if unlink {
			l.UserID, l.Username, l.ProfileHash, l.ProfileSyncedAt, l.Secret = "", "", "", time.Time{}, nil
		}
		return nil
	})
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return had, err
	}
	if err := b.cache.Invalidate(ctx, subject); err != nil {
		return had, err
	}
	b.log.Info("person reset by an operator", "subject", subject, "unlinked", unlink)
	return had, nil
}
