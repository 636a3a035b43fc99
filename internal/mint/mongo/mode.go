package mongo

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/mode"
	"github.com/rcsso/rcsso/internal/provision"
)

// Block is the minting.mongo block both MongoDB modes read.
type Block struct {
	// URL is Rocket.Chat's MongoDB (its MONGO_URL), with the database in
	// the path, e.g. mongodb://user:pass@mongo:27017/rocketchat. It holds
	// credentials: prefer URLFile.
	URL     string `koanf:"url"`
	URLFile string `koanf:"url_file"`
	// MaxTokens is Rocket.Chat's MAX_RESUME_LOGIN_TOKENS (default 50).
	MaxTokens int `koanf:"max_tokens"`
}

// ResumeConfig is minting mode mongo-resume's configuration (minting.mongo):
// rcsso writes resume tokens into Rocket.Chat's users collection.
type ResumeConfig struct {
	Mongo Block `koanf:"mongo"`
}

// IframeConfig is minting mode mongo-iframe's configuration
// (minting.mongo): rcsso writes services.iframe.token.
type IframeConfig struct {
	Mongo Block `koanf:"mongo"`
}

// Validate implements mode.Config.
func (c *ResumeConfig) Validate(b config.Block) error { return c.Mongo.validate(b, "mongo-resume") }

// Validate implements mode.Config.
func (c *IframeConfig) Validate(b config.Block) error { return c.Mongo.validate(b, "mongo-iframe") }

// Admin implements mode.Config: credentials serve deprovisioning only.
func (*ResumeConfig) Admin() mode.AdminNeed { return mode.AdminOptional }

// Admin implements mode.Config: credentials serve deprovisioning only.
func (*IframeConfig) Admin() mode.AdminNeed { return mode.AdminOptional }

func (m *Block) validate(b config.Block, name string) error {
	var errs []error
	if err := b.ReadSecret("mongo.url", &m.URL, m.URLFile); err != nil {
		errs = append(errs, err)
	} else if !strings.HasPrefix(m.URL, "mongodb://") && !strings.HasPrefix(m.URL, "mongodb+srv://") {
		errs = append(errs, b.Errorf("mongo.url", "mode %s writes Rocket.Chat's MongoDB directly: give its URL (Rocket.Chat's MONGO_URL), e.g. mongodb://mongo:27017/rocketchat", name))
	}
	if m.MaxTokens < 0 {
		errs = append(errs, b.Errorf("mongo.max_tokens", "must not be negative (Rocket.Chat's MAX_RESUME_LOGIN_TOKENS, default 50)"))
	}
	return errors.Join(errs...)
}

// Open implements mode.Config.
func (c *ResumeConfig) Open(ctx context.Context, d mode.Deps) (*mode.Backend, error) {
	return c.Mongo.open(ctx, d, func(u *Users) mint.Minter {
		return &ResumeMinter{Users: u, MaxTokens: c.Mongo.MaxTokens, Logger: d.Logger}
	})
}

// Open implements mode.Config.
func (c *IframeConfig) Open(ctx context.Context, d mode.Deps) (*mode.Backend, error) {
	d.Logger.Warn("minting mode mongo-iframe answers {\"token\"}: web and desktop only (the mobile apps need loginToken), the value sits in MongoDB in plaintext, and e-mail 2FA blocks it; prefer mongo-resume")
	return c.Mongo.open(ctx, d, func(u *Users) mint.Minter { return &IframeMinter{Users: u} })
}

// open connects to Rocket.Chat's MongoDB and checks that rcsso may write
// its users collection (the unique indexes rcsso relies on), refusing
// start-up (mint.ErrIncapable) when it may not; a MongoDB that does not
// answer yet is left to /readyz.
func (m *Block) open(ctx context.Context, d mode.Deps, minter func(*Users) mint.Minter) (*mode.Backend, error) {
	users, err := Connect(m.URL)
	if err != nil {
		return nil, fmt.Errorf("minting.mongo.url: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := users.Ping(pctx); err != nil {
		d.Logger.Warn("Rocket.Chat's MongoDB does not answer yet; /readyz reports it", "err", err)
	} else if err := users.EnsureIndexes(pctx); err != nil {
		_ = users.Close(context.Background())
		return nil, fmt.Errorf("%w: rcsso cannot write Rocket.Chat's users collection (%v); give the MongoDB user in minting.mongo.url the readWrite role on Rocket.Chat's database", mint.ErrIncapable, err)
	}
	p := d.Provision
	b := &mode.Backend{
		Minter: minter(users),
		Provisioner: NewProvisioner(users, d.Store, ProvisionerOptions{Roles: p.Roles, PlaceholderEmailDomain: p.PlaceholderEmailDomain,
			Adopt: p.Adopt, Usernames: p.Usernames, UsernameTemplate: p.UsernameTemplate}, d.Logger),
		Ready: func(ctx context.Context) error {
			if err := users.Ping(ctx); err != nil {
				return fmt.Errorf("Rocket.Chat's MongoDB (minting.mongo.url): %w", err)
			}
			return nil
		},
		Close: func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = users.Close(ctx)
		},
	}
	if d.Admin != nil {
		b.Deprovisioner, b.UnknownSubject = provision.New(d.RC, d.Admin, d.Store, d.Provision, d.Logger), provision.ErrUnknownSubject
	}
	return b, nil
}

// Need implements mode.Needer: the configuration's needs (deprovisioning,
// roles) when a service account is configured.
func (*ResumeConfig) Need(d mode.Deps) []mode.Permission { return mode.OptionalNeed(d) }

// Need implements mode.Needer (see ResumeConfig.Need).
func (*IframeConfig) Need(d mode.Deps) []mode.Permission { return mode.OptionalNeed(d) }

// Checks implements mode.Checker: MongoDB access, then what every mode
// gets.
func (c *ResumeConfig) Checks(d mode.Deps) []doctor.Check {
	return c.Mongo.checks(d, "mongo-resume", doctor.ResumeLogins)
}

// Checks implements mode.Checker: MongoDB access, then what every mode
// gets; two-factor matters here (iframe-token logins are not exempt).
func (c *IframeConfig) Checks(d mode.Deps) []doctor.Check {
	return c.Mongo.checks(d, "mongo-iframe", doctor.IframeTokenLogins)
}

// checks are the MongoDB modes' checks. "mongo" is Open's check: ping
// Rocket.Chat's MongoDB and make sure of the unique indexes on users
// (EnsureIndexes creates them when missing, as rcsso's start-up does), which
// proves rcsso may write the users collection.
func (m *Block) checks(d mode.Deps, name string, logins doctor.LoginKind) []doctor.Check {
	out := []doctor.Check{{Name: "mongo", Run: func(ctx context.Context, _ *doctor.Probe) []doctor.Result {
		users, err := Connect(m.URL)
		if err != nil {
			return []doctor.Result{{Status: doctor.Fail, Message: "minting.mongo.url: " + err.Error(), Fix: "set minting.mongo.url to Rocket.Chat's MONGO_URL"}}
		}
		defer func() {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			_ = users.Close(cctx)
		}()
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := users.Ping(pctx); err != nil {
			return []doctor.Result{{Status: doctor.Fail, Message: "Rocket.Chat's MongoDB (minting.mongo.url) does not answer: " + err.Error(),
				Fix: "check minting.mongo.url (Rocket.Chat's MONGO_URL) and that this host reaches MongoDB"}}
		}
		if err := users.EnsureIndexes(pctx); err != nil {
			return []doctor.Result{{Status: doctor.Fail, Message: "rcsso cannot write Rocket.Chat's users collection: " + err.Error(),
				Fix: "give the MongoDB user in minting.mongo.url the readWrite role on Rocket.Chat's database"}}
		}
		return []doctor.Result{{Status: doctor.OK, Message: "rcsso reaches Rocket.Chat's MongoDB and may write its users collection (mode " + name + ")"}}
	}}}
	out = append(out, mode.DeprovisionChecks(d, name)...)
	return append(out, doctor.RateLimit(doctor.NoREST), doctor.TwoFactor(logins))
}
