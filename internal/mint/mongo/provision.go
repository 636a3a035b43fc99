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

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/store"
)

// ErrConflict means Rocket.Chat already has a different person under both
// usernames rcsso would use for an identity; rcsso takes no account over.
// It wraps provision.ErrConflict, as every mode's conflict does (409).
var ErrConflict = fmt.Errorf("mongo provision: %w", provision.ErrConflict)

// Config sets what new Rocket.Chat users look like.
type Config struct {
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
	cfg   Config
	log   *slog.Logger

	beforeInsert func(username string) // test hook: runs between look-up and insert
}

// NewProvisioner returns a Provisioner writing to users and recording
// links in st. log may be nil.
func NewProvisioner(users *Users, st store.Store, cfg Config, log *slog.Logger) *Provisioner {
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

// Ensure returns the link of id, finding or creating its Rocket.Chat user:
//  1. rcsso's link, if its user still exists;
//  2. the user holding id's e-mail (its verified e-mail, else its
//     placeholder address; case-insensitive);
//  3. the user with the mapped username (or a case variant of it) if that
//     user holds the e-mail, else the username with provision.WithSuffix;
//     a free username gets a new document (spec §5, no password, no
//     services.email2fa). A duplicate-key error (another rcsso process was
//     faster) re-reads and adopts the winner when it is the same person.
//
// Errors: ErrConflict, or a MongoDB / store error, wrapped with what was
// being done (MongoDB outages also with mint.ErrUnavailable).
func (p *Provisioner) Ensure(ctx context.Context, id identity.Identity) (_ store.Link, err error) {
	defer markOutage(&err)
	l, err := p.st.GetLink(ctx, id.Subject)
	switch {
	case err == nil:
		ok, err := p.users.exists(ctx, l.UserID)
		if err != nil {
			return store.Link{}, fmt.Errorf("mongo provision: looking up user %s of %s: %w", l.UserID, id.Subject, err)
		}
		if ok {
			return l, nil
		}
		p.log.Warn("linked rocket.chat user no longer exists; provisioning again", "subject", id.Subject, "rc_user_id", l.UserID)
	case !errors.Is(err, store.ErrNotFound):
		return store.Link{}, err
	}
	if err := p.users.EnsureIndexes(ctx); err != nil {
		return store.Link{}, fmt.Errorf("mongo provision: %w", err)
	}
	email, verified := p.email(id)
	u, err := p.users.byEmail(ctx, email)
	if err != nil {
		return store.Link{}, fmt.Errorf("mongo provision: looking up the e-mail of %s: %w", id.Subject, err)
	}
	if u != nil {
		return p.link(ctx, id, u, false)
	}
	base := p.cfg.Usernames.Map(p.usernameSource(id), id.Subject)
	for _, username := range []string{base, provision.WithSuffix(base, id.Subject)} {
		u, err := p.users.byUsername(ctx, username)
		if err != nil {
			return store.Link{}, fmt.Errorf("mongo provision: looking up username %q: %w", username, err)
		}
		created := false
		if u == nil {
			if p.beforeInsert != nil {
				p.beforeInsert(username)
			}
			u, err = p.insert(ctx, id, username, email, verified)
			created = err == nil
			if mongodrv.IsDuplicateKeyError(err) {
				// Another process created this person, or someone took the
				// username, between the look-up and the insert.
				if u, err = p.users.byEmail(ctx, email); err == nil && u == nil {
					u, err = p.users.byUsername(ctx, username)
				}
				if err != nil {
					return store.Link{}, fmt.Errorf("mongo provision: re-reading after a duplicate key for %q: %w", username, err)
				}
				if u == nil {
					return store.Link{}, fmt.Errorf("mongo provision: inserting %q hit a unique index but no user holds the username or e-mail (deleted meanwhile?); try again", username)
				}
			} else if err != nil {
				return store.Link{}, fmt.Errorf("mongo provision: inserting user %q for %s: %w", username, id.Subject, err)
			}
		}
		if !owns(u, email) {
			p.log.Info("rocket.chat username taken by another person, trying the suffixed one", "subject", id.Subject, "rc_username", username)
			continue
		}
		return p.link(ctx, id, u, created)
	}
	return store.Link{}, fmt.Errorf("%w: usernames %q and its suffixed form belong to other Rocket.Chat users", ErrConflict, base)
}

// link records u as id's Rocket.Chat user.
func (p *Provisioner) link(ctx context.Context, id identity.Identity, u *userDoc, created bool) (store.Link, error) {
	l := store.Link{Subject: id.Subject, UserID: u.ID, Username: u.Username, UpdatedAt: p.cfg.Now().UTC()}
	if created {
		l.ProfileHash = p.ProfileDigest(id)
	}
	if err := p.st.PutLink(ctx, l); err != nil {
		return store.Link{}, err
	}
	if created {
		p.log.Info("created rocket.chat user in mongodb", "subject", id.Subject, "rc_user_id", u.ID, "rc_username", u.Username)
	} else {
		p.log.Info("linked existing rocket.chat user", "subject", id.Subject, "rc_user_id", u.ID, "rc_username", u.Username)
	}
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

// owns reports whether u holds the e-mail address (case-insensitively).
func owns(u *userDoc, email string) bool {
	for _, e := range u.Emails {
		if strings.EqualFold(e.Address, email) {
			return true
		}
	}
	return false
}

// ProfileDigest implements mint.ProfileSyncer: a digest of the name, the
// account e-mail (and whether it is verified) and, when the source manages
// roles, the roles rcsso writes. Avatars are not synced in this mode
// (Rocket.Chat keeps avatar images in its file store, not in users).
func (p *Provisioner) ProfileDigest(id identity.Identity) string {
	email, verified := p.email(id)
	roles := "-"
	if id.Roles != nil {
		roles = strings.Join(p.roles(id), ",")
	}
	return provision.Digest(strings.Join([]string{strings.TrimSpace(id.Name), email, fmt.Sprint(verified), roles}, "\x00"))[:16]
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
	email, verified := p.email(id)
	set := bson.D{
		{Key: "emails", Value: bson.A{bson.D{{Key: "address", Value: email}, {Key: "verified", Value: verified}}}},
		{Key: "_updatedAt", Value: mongoTime(p.cfg.Now())},
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
	l.ProfileHash, l.UpdatedAt = want, p.cfg.Now().UTC()
	if err := p.st.PutLink(ctx, l); err != nil {
		return false, err
	}
	p.log.Info("synced rocket.chat profile in mongodb", "subject", id.Subject, "rc_user_id", l.UserID)
	return true, nil
}
