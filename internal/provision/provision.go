// Package provision finds or creates the Rocket.Chat user for a website
// identity and remembers the link (subject → Rocket.Chat user id) in the
// store. The link is a security boundary: a Rocket.Chat user linked to one
// subject is never linked to another, and a user rcsso did not create is
// linked only as provisioning.adopt allows (AdoptPolicy). It is safe to
// retry: rcsso records the username it asks users.create for before the
// call (store.Link.CreatingUsername), so a users.create that timed out but
// succeeded is recognised as rcsso's own creation and linked.
package provision

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
)

// ErrConflict means Rocket.Chat already has a different person with the
// identity's username and e-mail, and rcsso will not take that account over.
// Every minting mode's conflict wraps it, so the HTTP layer maps them alike
// (409). It is mint.ErrConflict, so that the broker's audit log records it
// as a refusal.
var ErrConflict = mint.ErrConflict

// ErrReservedEmail means an identity came with an e-mail address in the
// placeholder domain (provisioning.placeholder_email_domain), which only
// rcsso hands out: accepting it would let a visitor claim the placeholder
// of another person. It wraps ErrConflict (mint.ErrReservedEmail).
var ErrReservedEmail = mint.ErrReservedEmail

// Config sets what new Rocket.Chat users look like.
type Config struct {
	// Roles for new users (users.create "roles"); default ["user"].
	Roles []string
	// JoinDefaultChannels is users.create "joinDefaultChannels".
	JoinDefaultChannels bool
	// PlaceholderEmailDomain builds "<digest>@<domain>" for identities
	// without an e-mail (Rocket.Chat requires one).
	PlaceholderEmailDomain string
	// Adopt says which pre-existing Rocket.Chat users may be linked; zero
	// value AdoptNever.
	Adopt AdoptPolicy
	// SyncInterval is the least time between two profile updates of one
	// person (Rocket.Chat hard-codes 1 call/60 s on setRealName, setEmail,
	// …); default 1 minute.
	SyncInterval time.Duration
	// Usernames is the Rocket.Chat username rule (UTF8_User_Names_Validation).
	Usernames UsernameRule
	// UsernameTemplate, when set, builds the website user name from the
	// identity (fields .Username, .Name, .Email, .EmailLocal, .Subject)
	// before it is mapped onto the rule, e.g. "{{.EmailLocal}}".
	UsernameTemplate *template.Template
	// PasswordSealer, when set, selects minting mode "password": new users
	// get a random per-person password that rcsso keeps sealed in the link
	// (store.Link.Secret) to log in with, and an unverified e-mail (Rocket.Chat's
	// e-mail 2FA would otherwise stop password logins; protocol spec §2.1).
	PasswordSealer *sealer.Sealer
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Provisioner finds or creates Rocket.Chat users.
type Provisioner struct {
	rc    *rocketchat.Client
	admin rcadmin.Auth
	st    store.Store
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
}

// New returns a Provisioner.
func New(rc *rocketchat.Client, admin rcadmin.Auth, st store.Store, cfg Config, log *slog.Logger) *Provisioner {
	if len(cfg.Roles) == 0 {
		cfg.Roles = []string{"user"}
	}
	if cfg.SyncInterval <= 0 {
		cfg.SyncInterval = time.Minute
	}
	if cfg.PlaceholderEmailDomain == "" {
		cfg.PlaceholderEmailDomain = "users.rcsso.invalid"
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Usernames.re == nil {
		cfg.Usernames = defaultRule
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provisioner{rc: rc, admin: admin, st: st, cfg: cfg, log: log, now: cfg.Now}
}

// Ensure returns the link for id, creating the Rocket.Chat user when the
// subject has none. Callers serialise calls per subject (the token broker
// does), so one person is created once. For each candidate username (the
// mapped one, then the suffixed one) it links a user it creates, or a
// pre-existing one that MayAdopt allows and no other subject holds; any
// other user with that name sends it to the next candidate. Errors:
// ErrConflict (no candidate is free, or the e-mail belongs to another
// Rocket.Chat user), ErrReservedEmail, store.ErrLinkTaken, or the
// Rocket.Chat / store error (*rocketchat.Error for upstream failures).
func (p *Provisioner) Ensure(ctx context.Context, id identity.Identity) (store.Link, error) {
	l, err := p.st.GetLink(ctx, id.Subject)
	if err == nil && l.UserID != "" {
		return l, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Link{}, err
	}
	if err := CheckEmail(id, p.cfg.PlaceholderEmailDomain); err != nil {
		return store.Link{}, err
	}
	password, secret, err := p.password(id, l)
	if err != nil {
		return store.Link{}, err
	}
	email, vouched := AccountEmail(id, p.cfg.PlaceholderEmailDomain)
	candidates := Candidates(l.CreatingUsername, p.cfg.Usernames.Candidates(p.usernameSource(id), id.Subject))
	// Only a creation started by an earlier call, whose outcome rcsso never
	// saw, counts as rcsso's own: a user that appears under the name this
	// call just asked for (users.create answered "already in use") was made
	// by someone else.
	earlier := l
	for _, username := range candidates {
		u, err := p.find(ctx, username)
		if err != nil {
			return store.Link{}, err
		}
		created, why := false, ""
		if u == nil {
			if l, err = p.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
				x.CreatingUsername, x.CreatingAt, x.Secret = username, p.now().UTC(), secret
				return nil
			}); err != nil {
				return store.Link{}, err
			}
			u, err = p.create(ctx, id, username, email, password)
			created = err == nil
			if err != nil && rocketchat.IsFieldUnavailable(err) {
				// Lost a race, or the e-mail belongs to someone else.
				if u, err = p.find(ctx, username); err != nil {
					return store.Link{}, err
				}
				if u == nil {
					p.log.Warn("refused: the person's e-mail belongs to another Rocket.Chat user", "subject", id.Subject, "source", id.Source, "rc_username", username)
					return store.Link{}, fmt.Errorf("%w: the e-mail address of %s is used by another Rocket.Chat user; change it on one side or link them by hand", ErrConflict, id.Subject)
				}
			} else if err != nil {
				return store.Link{}, err
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
			c := Candidate{ID: u.ID, Username: u.Username, Emails: u.Emails, CreatedAt: u.CreatedAt.Time}
			var ok bool
			if ok, why = MayAdopt(p.cfg.Adopt, id, earlier, c, email, vouched); !ok {
				p.log.Info("rocket.chat username belongs to a user rcsso may not link; trying the next one", "subject", id.Subject, "rc_username", username, "reason", why)
				continue
			}
			p.log.Info("linking an existing rocket.chat user", "subject", id.Subject, "rc_user_id", u.ID, "rc_username", u.Username, "reason", why)
		}
		linked, err := p.st.UpdateLink(ctx, id.Subject, func(x *store.Link) error {
			x.UserID, x.Username = u.ID, u.Username
			x.CreatingUsername, x.CreatingAt, x.Secret = "", time.Time{}, secret
			x.ProfileHash, x.ProfileSyncedAt = "", time.Time{}
			if created {
				x.ProfileHash, x.ProfileSyncedAt = p.ProfileDigest(id), p.now().UTC()
			}
			return nil
		})
		var taken *store.LinkTakenError
		if errors.As(err, &taken) && !created {
			p.log.Warn("refused: this Rocket.Chat user is linked to another person; trying the next username", "subject", id.Subject, "source", id.Source,
				"rc_user_id", u.ID, "rc_username", u.Username, "linked_subject", taken.Holder)
			continue
		}
		if err != nil {
			return store.Link{}, err
		}
		audit.Provisioned(ctx, id.Subject, id.Source, u.ID, u.Username, created, why)
		if created && id.AvatarURL != "" {
			p.setAvatar(ctx, u.ID, id)
		}
		return linked, nil
	}
	return store.Link{}, fmt.Errorf("%w: usernames %q belong to other Rocket.Chat users", ErrConflict, candidates)
}

// Candidates are the usernames Ensure tries for a person, in order: an
// unfinished creation's username (pending, if any), then the rule's
// (UsernameRule.Candidates), without repeats.
func Candidates(pending string, rule []string) []string {
	out := make([]string, 0, 1+len(rule))
	for _, c := range append([]string{pending}, rule...) {
		if c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// CheckEmail refuses (ErrReservedEmail) an identity whose e-mail is in the
// placeholder domain: only rcsso hands those addresses out.
func CheckEmail(id identity.Identity, placeholderDomain string) error {
	_, domain, ok := strings.Cut(strings.TrimSpace(id.Email), "@")
	if ok && strings.EqualFold(strings.TrimSuffix(domain, "."), placeholderDomain) {
		return ErrReservedEmail
	}
	return nil
}

// usernameSource is the website user name before mapping.
func (p *Provisioner) usernameSource(id identity.Identity) string {
	return UsernameSource(p.cfg.UsernameTemplate, id)
}

// UsernameSource is the website user name before it is mapped onto
// Rocket.Chat's rule: tmpl's output (fields .Username, .Name, .Email,
// .EmailLocal, .Subject), or id.Username when tmpl is nil, fails or yields
// only spaces. Shared by every provisioner.
func UsernameSource(tmpl *template.Template, id identity.Identity) string {
	if tmpl == nil {
		return id.Username
	}
	local, _, _ := strings.Cut(id.Email, "@")
	var b strings.Builder
	err := tmpl.Execute(&b, map[string]string{
		"Username": id.Username, "Name": id.Name, "Email": id.Email, "EmailLocal": local, "Subject": id.Subject,
	})
	if err != nil || strings.TrimSpace(b.String()) == "" {
		return id.Username
	}
	return b.String()
}

// AccountEmail is the e-mail address a Rocket.Chat account gets for id: the
// identity's own when the source vouches for it (verified true) and it is
// not in the placeholder domain, otherwise a placeholder "<digest of the
// subject>@<placeholderDomain>" (verified false), so rcsso never claims an
// address nobody verified.
func AccountEmail(id identity.Identity, placeholderDomain string) (string, bool) {
	if e := strings.TrimSpace(id.Email); e != "" && id.EmailVerified && CheckEmail(id, placeholderDomain) == nil {
		return e, true
	}
	return Digest(id.Subject)[:20] + "@" + placeholderDomain, false
}

func (p *Provisioner) find(ctx context.Context, username string) (*rocketchat.User, error) {
	u, err := rcadmin.Do(ctx, p.admin, func(cr rocketchat.Credentials) (rocketchat.User, error) {
		return p.rc.UserInfoByUsername(ctx, cr, username)
	})
	if rocketchat.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &u, nil
}

// password returns the password for a new user. In password mode it is
// kept sealed in the pending link (Ensure writes it before users.create),
// so a retry after a users.create that timed out but succeeded uses the
// same password.
func (p *Provisioner) password(id identity.Identity, pending store.Link) (string, []byte, error) {
	if p.cfg.PasswordSealer == nil {
		return rand.Text() + rand.Text(), nil, nil // nobody learns it
	}
	if pending.Secret != nil {
		pw, err := p.cfg.PasswordSealer.Open(pending.Secret, id.Subject)
		if err == nil {
			return string(pw), pending.Secret, nil
		}
	}
	pw := rand.Text() + rand.Text()
	return pw, p.cfg.PasswordSealer.Seal([]byte(pw), id.Subject), nil
}

func (p *Provisioner) create(ctx context.Context, id identity.Identity, username, email, password string) (*rocketchat.User, error) {
	name := id.Name
	if name == "" {
		name = id.Username
	}
	if name == "" {
		name = username
	}
	req := rocketchat.CreateUserRequest{
		Email:               email,
		Name:                name,
		Password:            password,
		Username:            username,
		Roles:               p.roles(id),
		JoinDefaultChannels: p.cfg.JoinDefaultChannels,
		Verified:            p.cfg.PasswordSealer == nil,
	}
	u, err := rcadmin.Do(ctx, p.admin, func(cr rocketchat.Credentials) (rocketchat.User, error) {
		return p.rc.CreateUser(ctx, cr, req)
	})
	if err != nil {
		return nil, err
	}
	p.log.Info("created rocket.chat user", "subject", id.Subject, "rc_user_id", u.ID, "rc_username", u.Username)
	return &u, nil
}
