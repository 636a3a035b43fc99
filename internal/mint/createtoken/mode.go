package createtoken

import (
	"context"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/mode"
	"github.com/rcsso/rcsso/internal/provision"
)

// Config is minting mode create-token's configuration (the default mode):
// it has no keys of its own; it uses the service account
// (rocketchat.admin_*) and rocketchat.create_tokens_secret.
type Config struct{}

// Validate implements mode.Config.
func (*Config) Validate(config.Block) error { return nil }

// Admin implements mode.Config: the REST provisioner and users.createToken
// need the service account.
func (*Config) Admin() mode.AdminNeed { return mode.AdminRequired }

// Open implements mode.Config: the REST provisioner, users.createToken
// minting, and, when Rocket.Chat answers, the service account check
// (credentials, every permission needed, users.createToken accepting the
// secret or CREATE_TOKENS_FOR_USERS), which refuses start-up with what to
// change where.
func (*Config) Open(ctx context.Context, d mode.Deps) (*mode.Backend, error) {
	sa := serviceAccount(d, true)
	secret := sa.Secret
	if err := mode.CheckAtStart(ctx, d, sa); err != nil {
		return nil, err
	}
	prov := provision.New(d.RC, d.Admin, d.Store, d.Provision, d.Logger)
	return &mode.Backend{
		Minter:         &Minter{ResumeSession: mint.ResumeSession{RC: d.RC}, Admin: d.Admin, Secret: secret},
		Provisioner:    prov,
		Deprovisioner:  prov,
		UnknownSubject: provision.ErrUnknownSubject,
		Ready:          sa.Check,
	}, nil
}

// serviceAccount is the mode's service account check: every permission
// the REST provisioner and users.createToken need, and the secret sent
// only to 8.x (logged, when log is set, when the configuration and the
// version disagree).
func serviceAccount(d mode.Deps, log bool) *mode.ServiceAccount {
	secret := d.CreateTokensSecret
	major := mode.MajorVersion(d.Info.Version)
	switch {
	case d.InfoErr != nil:
	case major >= 8 && secret == "":
		if log {
			d.Logger.Warn("Rocket.Chat 8.x requires CREATE_TOKENS_FOR_USERS_SECRET for users.createToken: set rocketchat.create_tokens_secret to the same value", "rocketchat_version", d.Info.Version)
		}
	case major > 0 && major < 8 && secret != "":
		if log {
			d.Logger.Info("Rocket.Chat before 8.0 takes no createToken secret (it needs CREATE_TOKENS_FOR_USERS=true); not sending it", "rocketchat_version", d.Info.Version)
		}
		secret = ""
	}
	return &mode.ServiceAccount{RC: d.RC, Admin: d.Admin, Secret: secret, AdminKey: d.AdminKey, Mode: "create-token",
		Need: append(mode.ServicePermissions(true), d.Permissions...)}
}

// Need implements mode.Needer.
func (*Config) Need(d mode.Deps) []mode.Permission { return serviceAccount(d, false).Need }

// Checks implements mode.Checker: the service account's permissions and
// users.createToken (the start-up check's functions), the rate limiter
// for the service account's calls, and two-factor (resume tokens skip it).
func (*Config) Checks(d mode.Deps) []doctor.Check {
	return append(serviceAccount(d, false).Checks(), doctor.RateLimit(doctor.ServiceAccountCalls), doctor.TwoFactor(doctor.ResumeLogins))
}
