// Package provision finds or creates the Rocket.Chat user for a website
// identity and remembers the link (subject → Rocket.Chat user id) in the
// store. It is safe to retry: a users.create that timed out but succeeded is
// found again by username and adopted because its e-mail is the one rcsso
// gave it.
package provision

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/template"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
)

// ErrConflict means Rocket.Chat already has a different person with the
// identity's username and e-mail, and rcsso will not take that account over.
var ErrConflict = errors.New("provision: Rocket.Chat has a conflicting user")

// Config sets what new Rocket.Chat users look like.
type Config struct {
	// Roles for new users (users.create "roles"); default ["user"].
	Roles []string
	// JoinDefaultChannels is users.create "joinDefaultChannels".
	JoinDefaultChannels bool
	// PlaceholderEmailDomain builds "<digest>@<domain>" for identities
	// without an e-mail (Rocket.Chat requires one).
	PlaceholderEmailDomain string
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
// does), so one person is created once. Errors: ErrConflict, or the
// Rocket.Chat / store error (*rocketchat.Error for upstream failures).
func (p *Provisioner) Ensure(ctx context.Context, id identity.Identity) (store.Link, error) {
	l, err := p.st.GetLink(ctx, id.Subject)
	if err == nil && l.UserID != "" {
		return l, nil
	}
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return store.Link{}, err
	}
	password, secret, err := p.password(ctx, id, l)
	if err != nil {
		return store.Link{}, err
	}
	email := p.email(id)
	candidates := p.cfg.Usernames.Candidates(p.usernameSource(id), id.Subject)
	for _, username := range candidates {
		u, err := p.find(ctx, username)
		if err != nil {
			return store.Link{}, err
		}
		created := false
		if u == nil {
			u, err = p.create(ctx, id, username, email, password)
			created = err == nil
			if err != nil && rocketchat.IsFieldUnavailable(err) {
				// Lost a race, or the e-mail belongs to someone else.
				if u, err = p.find(ctx, username); err != nil {
					return store.Link{}, err
				}
				if u == nil {
					return store.Link{}, fmt.Errorf("%w: the e-mail address of %s is used by another Rocket.Chat user; change it on one side or link them by hand", ErrConflict, id.Subject)
				}
			} else if err != nil {
				return store.Link{}, err
			}
		}
		if !owns(*u, email) {
			p.log.Info("rocket.chat username taken by another person, trying the fallback", "subject", id.Subject, "rc_username", username)
			continue
		}
		l := store.Link{Subject: id.Subject, UserID: u.ID, Username: u.Username, ProfileHash: p.ProfileDigest(id), UpdatedAt: p.now().UTC(), Secret: secret}
		if created && id.AvatarURL != "" {
			p.setAvatar(ctx, u.ID, id)
		}
		if err := p.st.PutLink(ctx, l); err != nil {
			return store.Link{}, err
		}
		return l, nil
	}
	return store.Link{}, fmt.Errorf("%w: usernames %q and %q belong to other Rocket.Chat users", ErrConflict, candidates[0], candidates[1])
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

func (p *Provisioner) email(id identity.Identity) string {
	e, _ := AccountEmail(id, p.cfg.PlaceholderEmailDomain)
	return e
}

// AccountEmail is the e-mail address a Rocket.Chat account gets for id: the
// identity's own when the source vouches for it (verified true), otherwise a
// placeholder "<digest of the subject>@<placeholderDomain>" (verified
// false), so rcsso never claims an address nobody verified.
func AccountEmail(id identity.Identity, placeholderDomain string) (string, bool) {
	if e := strings.TrimSpace(id.Email); e != "" && id.EmailVerified {
		return e, true
	}
	return Digest(id.Subject)[:20] + "@" + placeholderDomain, false
}

// owns reports whether u is the person with e-mail email.
func owns(u rocketchat.User, email string) bool {
	for _, e := range u.Emails {
		if strings.EqualFold(e.Address, email) {
			return true
		}
	}
	return false
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
// kept (sealed) in a pending link before users.create, so a retry after a
// users.create that timed out but succeeded uses the same password.
func (p *Provisioner) password(ctx context.Context, id identity.Identity, pending store.Link) (string, []byte, error) {
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
	secret := p.cfg.PasswordSealer.Seal([]byte(pw), id.Subject)
	err := p.st.PutLink(ctx, store.Link{Subject: id.Subject, Secret: secret, UpdatedAt: p.now().UTC()})
	return pw, secret, err
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
