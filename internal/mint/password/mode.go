package password

import (
	"context"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/mode"
	"github.com/rcsso/rcsso/internal/provision"
)

// Config is minting mode password's configuration (the last resort): it
// has no keys of its own; it uses the service account (rocketchat.admin_*).
type Config struct{}

// Validate implements mode.Config.
func (*Config) Validate(config.Block) error { return nil }

// Admin implements mode.Config: users are created through the admin API.
func (*Config) Admin() mode.AdminNeed { return mode.AdminRequired }

// Open implements mode.Config: the REST provisioner giving each new user a
// random password sealed in the link, password logins, and the service
// account check (credentials and permissions).
func (*Config) Open(ctx context.Context, d mode.Deps) (*mode.Backend, error) {
	d.Logger.Warn("minting mode password is the last resort: Rocket.Chat allows 10 password logins a minute per IP, so at most 10 new chat sessions a minute; prefer create-token or oauth")
	sa := serviceAccount(d)
	if err := mode.CheckAtStart(ctx, d, sa); err != nil {
		return nil, err
	}
	pc := d.Provision
	pc.PasswordSealer = d.Sealer
	prov := provision.New(d.RC, d.Admin, d.Store, pc, d.Logger)
	return &mode.Backend{
		Minter:         &Minter{ResumeSession: mint.ResumeSession{RC: d.RC}, Sealer: d.Sealer},
		Provisioner:    prov,
		Deprovisioner:  prov,
		UnknownSubject: provision.ErrUnknownSubject,
		Ready:          sa.Check,
	}, nil
}

// serviceAccount is the mode's service account check: credentials and the
// permissions of the REST provisioner (no users.createToken).
func serviceAccount(d mode.Deps) *mode.ServiceAccount {
	return &mode.ServiceAccount{RC: d.RC, Admin: d.Admin, AdminKey: d.AdminKey, Mode: "password", CredentialsOnly: true,
		Need: append(mode.ServicePermissions(false), d.Permissions...)}
}

// Need implements mode.Needer.
func (*Config) Need(d mode.Deps) []mode.Permission { return serviceAccount(d).Need }

// Checks implements mode.Checker: the service account's permissions, the
// rate limiter (the provisioner's calls, and each new session's password
// login, which nothing exempts) and two-factor (password logins).
func (*Config) Checks(d mode.Deps) []doctor.Check {
	return append(serviceAccount(d).Checks(), doctor.RateLimit(doctor.ServiceAccountCalls, doctor.Logins), doctor.TwoFactor(doctor.PasswordLogins))
}
