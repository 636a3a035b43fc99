package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/template"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/store"
)

// ErrConflict means Rocket.Chat already has a different person under both
// usernames rcsso would use for an identity; rcsso takes no account over.
// It wraps provision.ErrConflict, as every mode's conflict does (409).
var ErrConflict = fmt.Errorf("mongo provision: %w", provision.ErrConflict)

// ProvisionerOptions sets what new Rocket.Chat users look like.
type ProvisionerOptions struct {
	// Roles of new users (default ["user"]); the identity's roles are
	// added (protocol spec §5: roles must be a non-empty array).
	Roles []string
	// PlaceholderEmailDomain builds "<digest>@<domain>" (unverified) for
	// identities without a verified e-mail; default "users.rcsso.invalid",
	// as in package provision.
	PlaceholderEmailDomain string
	// Usernames is the Rocket.Chat username rule (UTF8_User_Names_Validation);
	// the zero value is Rocket.Chat's default.
	Usernames provision.UsernameRule
	// Adopt says which pre-existing Rocket.Chat users may be linked
	// (provision.AdoptPolicy; zero value never).
	Adopt provision.AdoptPolicy
	// UsernameTemplate, when set, builds the website user name from the
	// identity (fields .Username, .Name, .Email, .EmailLocal, .Subject)
	// before it is mapped onto the rule, as in package provision.
	UsernameTemplate *template.Template
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Provisioner finds or creates Rocket.Chat users directly in MongoDB and
// records the link in rcsso's store. It implements mint.Provisioner.
type Provisioner struct {
	users *Users
	st    store.Store
	cfg   ProvisionerOptions
	log   *slog.Logger

	beforeInsert func(username string) // test hook: runs between look-up and insert
}

// NewProvisioner returns a Provisioner writing to users and recording
// links in st. log may be nil.
func NewProvisioner(users *Users, st store.Store, cfg ProvisionerOptions, log *slog.Logger) *Provisioner {
	if len(cfg.Roles) == 0 {
		cfg.Roles = []string{"user"}
	}
	if cfg.PlaceholderEmailDomain == "" {
		cfg.PlaceholderEmailDomain = "users.rcsso.invalid"
	}
	if cfg.Usernames == (provision.UsernameRule{}) {
		cfg.Usernames, _ = provision.NewUsernameRule("")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Provisioner{users: users, st: st, cfg: cfg, log: log}
}

// Ensure returns the link of id, finding or creating its Rocket.Chat user,
// with the same rules as the REST provisioner (provision.Provisioner.Ensure):
//  1. rcsso's link, if its user still exists;
//  2. for each candidate username (an unfinished creation's, the mapped
//     one, the suffixed one; a case variant counts as taken): a free one
//     gets a new document (spec §5, no password, no services.email2fa),
//     recorded as pending in the link before the insert; a taken one is
//     linked only when provision.MayAdopt allows it and no other subject
//     holds it. A duplicate-key error (the username or the e-mail is
//     someone else's) re-reads the username and applies the same rule.
//
// Errors: ErrConflict, provision.ErrReservedEmail, or a MongoDB / store
// error, wrapped with what was being done (MongoDB outages also with
// mint.ErrUnavailable).
func (p *Provisioner) Ensure(ctx context.Context, id identity.Identity) (_ store.Link, err error) {
	defer markOutage(&err)
	l, err := p.st.GetLink(ctx, id.Subject)
	switch {
	case err == nil && l.UserID != "":
		ok, err := p.users.exists(ctx, l.UserID)
		if err != nil {
			return store.Link{}, fmt.Errorf("mongo provision: looking up user %s of %s: %w", l.UserID, id.Subject, err)
		}
		if ok {
			return l, nil
		}
		p.log.Warn("linked rocket.chat user no longer exists; provisioning again", "subject", id.Subject, "rc_user_id", l.UserID)
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return store.Link{}, err
	}
	if err := provision.CheckEmail(id, p.cfg.PlaceholderEmailDomain); err != nil {
		return store.Link{}, err
	}
	if err := p.users.EnsureIndexes(ctx); err != nil {
		return store.Link{}, fmt.Errorf("mongo provision: %w", err)
	}
	email, verified := p.email(id)
	// Only a creation started by an earlier call, whose outcome rcsso never
	// saw, counts as rcsso's own (see provision.Provisioner.Ensure).
	earlier := l
	if verified && p.cfg.Adopt == provision.AdoptVerifiedEmail {
		// MongoDB can find the user holding the e-mail whatever its
		// username (the REST API cannot).
		u, err := p.users.byEmail(ctx, email)
		if err != nil {
			return store.Link{}, fmt.Errorf("mongo provision: looking up the e-mail of %s: %w", id.Subject, err)
		}
		if u != nil {
			if ok, why := provision.MayAdopt(p.cfg.Adopt, id, earlier, candidate(u), email, verified); ok {
				linked, err := p.link(ctx, id, u, false, why)
				var taken *store.LinkTakenError
				if !errors.As(err, &taken) {
					if err == nil {
						p.log.Info("linking an existing rocket.chat user", "subject", id.Subject, "rc_user_id", u.ID, "rc_username", u.Username, "reason", why)
					}
					return linked, err
				}
				p.log.Warn("refused: the Rocket.Chat user holding this e-mail is linked to another person", "subject", id.Subject, "source", id.Source,
					"rc_user_id", u.ID, "linked_subject", taken.Holder)
			}
		}
	}
	candidates := provision.Candidates(l.CreatingUsername, p.cfg.Usernames.Candidates(p.usernameSource(id), id.Subject))
	for _, username := range candidates {
		u, err := p.users.byUsername(ctx, username)
		if err != nil {
			return store.Link{}, fmt.Errorf("mongo provision: looking up username %q: %w", username, err)
		}
		created, why := false, ""
		if u == nil {
			// The unique index on emails.address would refuse the insert
			// (not every MongoDB-compatible server enforces it on arrays):
			// an address someone else holds is a conflict, said up front.
			if other, err := p.users.byEmail(ctx, email); err != nil {
				return store.Link{}, fmt.Errorf("mongo provision: looking up the e-mail of %s: %w", id.Subject, err)
			} else if other != nil {
				p.log.Warn("refused: the person's e-mail belongs to another Rocket.Chat user", "subject", id.Subject, "source", id.Source, "rc_user_id", other.ID)
				return store.Link{}, fmt.Errorf("%w: the e-mail address of %s is used by another Rocket.Chat user; change it on one side or link them by hand", ErrConflict, id.Subject)
			}
			if p.beforeInsert != nil {
				p.beforeInsert(username)
			}
			if l, err = p.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
				x.CreatingUsername, x.CreatingAt = username, p.cfg.Now().UTC()
				return nil
			}); err != nil {
				return store.Link{}, err
			}
			u, err = p.insert(ctx, id, username, email, verified)
			created = err == nil
			if mongodrv.IsDuplicateKeyError(err) {
				// Someone took the username, or the e-mail is someone
				// else's, between the look-up and the insert.
				if u, err = p.users.byUsername(ctx, username); err != nil {
					return store.Link{}, fmt.Errorf("mongo provision: re-reading after a duplicate key for %q: %w", username, err)
				}
				if u == nil {
					p.log.Warn("refused: the person's e-mail belongs to another Rocket.Chat user", "subject", id.Subject, "source", id.Source, "rc_username", username)
					return store.Link{}, fmt.Errorf("%w: the e-mail address of %s is used by another Rocket.Chat user; change it on one side or link them by hand", ErrConflict, id.Subject)
				}
			} else if err != nil {
				return store.Link{}, fmt.Errorf("mongo provision: inserting user %q for %s: %w", username, id.Subject, err)
			}
		}
		if !created {
			if holder, err := p.st.LinkByUserID(ctx, u.ID); err == nil && holder.Subject != id.Subject {
				p.log.Warn("refused: this Rocket.Chat user is linked to another person; trying the next username", "subject", id.Subject, "source", id.Source,
					"rc_user_id", u.ID, "rc_username", u.Username, "linked_subject", holder.Subject)
				continue
			} else if err != nil && !errors.Is(err, store.ErrNotFound) {
				return store.Link{}, err
			}
			var ok bool
			ok, why = provision.MayAdopt(p.cfg.Adopt, id, earlier, candidate(u), email, verified)
			if !ok {
				p.log.Info("rocket.chat username belongs to a user rcsso may not link; trying the next one", "subject", id.Subject, "rc_username", username, "reason", why)
				continue
			}
			p.log.Info("linking an existing rocket.chat user", "subject", id.Subject, "rc_user_id", u.ID, "rc_username", u.Username, "reason", why)
		}
		linked, err := p.link(ctx, id, u, created, why)
		var taken *store.LinkTakenError
		if errors.As(err, &taken) && !created {
			p.log.Warn("refused: this Rocket.Chat user is linked to another person; trying the next username", "subject", id.Subject, "source", id.Source,
				"rc_user_id", u.ID, "rc_username", u.Username, "linked_subject", taken.Holder)
			continue
		}
		return linked, err
	}
	return store.Link{}, fmt.Errorf("%w: usernames %q belong to other Rocket.Chat users", ErrConflict, candidates)
}

// CheckUser implements mint.UserChecker: no document is mint.UserGone,
// active: false is mint.UserDeactivated.
func (p *Provisioner) CheckUser(ctx context.Context, l store.Link) (mint.UserState, error) {
	u, err := p.users.byID(ctx, l.UserID)
	switch {
	case err != nil:
		return mint.UserActive, fmt.Errorf("mongo: looking up user %s: %w", l.UserID, err)
	case u == nil:
		return mint.UserGone, nil
	case u.Active != nil && !*u.Active:
		return mint.UserDeactivated, nil
	}
	return mint.UserActive, nil
}

// candidate is u as provision.MayAdopt sees it.
func candidate(u *userDoc) provision.Candidate {
	c := provision.Candidate{ID: u.ID, Username: u.Username, CreatedAt: u.CreatedAt}
	for _, e := range u.Emails {
		c.Emails = append(c.Emails, rocketchat.Email{Address: e.Address, Verified: e.Verified})
	}
	return c
}

// errSkip ends an UpdateLink without writing.
var errSkip = errors.New("mongo provision: nothing to write")

// link records u as id's Rocket.Chat user, created by rcsso (created) or
// adopted (why says by which rule).
func (p *Provisioner) link(ctx context.Context, id identity.Identity, u *userDoc, created bool, why string) (store.Link, error) {
	now := p.cfg.Now().UTC()
	l, err := p.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
		x.UserID, x.Username = u.ID, u.Username
		x.CreatingUsername, x.CreatingAt = "", time.Time{}
		x.ProfileHash, x.ProfileSyncedAt = "", time.Time{}
		if created {
			x.ProfileHash, x.ProfileSyncedAt = p.ProfileDigest(id), now
		}
		return nil
	})
	if err != nil {
		return store.Link{}, err
	}
	if created {
		p.log.Info("created rocket.chat user in mongodb", "subject", id.Subject, "rc_user_id", u.ID, "rc_username", u.Username)
	}
	audit.Provisioned(ctx, id.Subject, id.Source, u.ID, u.Username, created, why)
	return l, nil
}

// insert creates the user document (spec §5) in one InsertOne.
func (p *Provisioner) insert(ctx context.Context, id identity.Identity, username, email string, verified bool) (*userDoc, error) {
	name := strings.TrimSpace(id.Name)
	if name == "" {
		name = id.Username
	}
	if name == "" {
		name = username
	}
	now := mongoTime(p.cfg.Now())
	uid := randomID()
	roles := bson.A{}
	for _, r := range p.roles(id) {
		roles = append(roles, r)
	}
	doc := bson.D{
		{Key: "_id", Value: uid},
		{Key: "createdAt", Value: now},
		{Key: "_updatedAt", Value: now},
		{Key: "username", Value: username},
		{Key: "name", Value: name},
		{Key: "emails", Value: bson.A{bson.D{{Key: "address", Value: email}, {Key: "verified", Value: verified}}}},
		{Key: "type", Value: "user"},
		{Key: "status", Value: "offline"},
		{Key: "active", Value: true},
		{Key: "roles", Value: roles},
		{Key: "settings", Value: bson.D{}},
		{Key: "services", Value: bson.D{}},
	}
	if _, err := p.users.coll.InsertOne(ctx, doc); err != nil {
		return nil, err
	}
	return &userDoc{ID: uid, Username: username, Emails: []emailDoc{{Address: email, Verified: verified}}}, nil
}

// email is the address a new user gets and whether it is verified: the
// identity's e-mail when the website vouches for it, else a placeholder
// unique to the subject (Rocket.Chat requires an e-mail).
func (p *Provisioner) email(id identity.Identity) (string, bool) {
	return provision.AccountEmail(id, p.cfg.PlaceholderEmailDomain)
}

func (p *Provisioner) roles(id identity.Identity) []string { return provision.Roles(p.cfg.Roles, id) }

func (p *Provisioner) usernameSource(id identity.Identity) string {
	return provision.UsernameSource(p.cfg.UsernameTemplate, id)
}

// ProfileDigest implements mint.ProfileSyncer: a digest of the name, the
// account e-mail (and whether it is verified) and, when the source manages
// roles, the roles rcsso writes. Avatars are not synced in this mode
// (Rocket.Chat keeps avatar images in its file store, not in users).
func (p *Provisioner) ProfileDigest(id identity.Identity) string {
	roles := "-"
	if id.Roles != nil {
		roles = strings.Join(p.roles(id), ",")
	}
	return provision.Digest(strings.Join([]string{strings.TrimSpace(id.Name), p.syncedEmail(id), roles}, "\x00"))[:16]
}

// syncedEmail is the e-mail profile sync writes: one the identity source
// vouches for, else "" (Rocket.Chat's address is left alone; a placeholder
// never replaces a real address).
func (p *Provisioner) syncedEmail(id identity.Identity) string {
	if e, vouched := p.email(id); vouched {
		return e
	}
	return ""
}

// Sync implements mint.ProfileSyncer: when id's profile differs from the
// one last written, it $sets name, emails and (if managed) roles on the
// user document, with _updatedAt, in one update. It reports whether
// Rocket.Chat now has id's profile.
func (p *Provisioner) Sync(ctx context.Context, id identity.Identity) (_ bool, err error) {
	defer markOutage(&err)
	l, err := p.st.GetLink(ctx, id.Subject)
	if errors.Is(err, store.ErrNotFound) || (err == nil && l.UserID == "") {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	want := p.ProfileDigest(id)
	if l.ProfileHash == want {
		return true, nil
	}
	if err := provision.CheckEmail(id, p.cfg.PlaceholderEmailDomain); err != nil {
		return false, err
	}
	set := bson.D{{Key: "_updatedAt", Value: mongoTime(p.cfg.Now())}}
	if email := p.syncedEmail(id); email != "" {
		set = append(set, bson.E{Key: "emails", Value: bson.A{bson.D{{Key: "address", Value: email}, {Key: "verified", Value: true}}}})
	}
	if name := strings.TrimSpace(id.Name); name != "" {
		set = append(set, bson.E{Key: "name", Value: name})
	}
	if id.Roles != nil {
		roles := bson.A{}
		for _, r := range p.roles(id) {
			roles = append(roles, r)
		}
		set = append(set, bson.E{Key: "roles", Value: roles})
	}
	if _, err := p.users.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.UserID}}, bson.D{{Key: "$set", Value: set}}); err != nil {
		return false, fmt.Errorf("mongo: syncing the profile of user %s: %w", l.UserID, err)
	}
	_, err = p.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
		if x.UserID != l.UserID {
			return errSkip // re-provisioned meanwhile: that link is not this sync's
		}
		x.ProfileHash, x.ProfileSyncedAt = want, p.cfg.Now().UTC()
		return nil
	})
	if err != nil && !errors.Is(err, errSkip) {
		return false, err
	}
	p.log.Info("synced rocket.chat profile in mongodb", "subject", id.Subject, "rc_user_id", l.UserID)
	return true, nil
}
