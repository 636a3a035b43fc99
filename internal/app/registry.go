package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/header"
	"github.com/rcsso/rcsso/internal/identity/jwt"
	"github.com/rcsso/rcsso/internal/identity/ldap"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/identity/oauth2"
	"github.com/rcsso/rcsso/internal/identity/oidc"
	"github.com/rcsso/rcsso/internal/identity/saml"
	"github.com/rcsso/rcsso/internal/identity/whoami"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/createtoken"
	"github.com/rcsso/rcsso/internal/mint/mode"
	"github.com/rcsso/rcsso/internal/mint/mongo"
	"github.com/rcsso/rcsso/internal/mint/oauth"
	"github.com/rcsso/rcsso/internal/mint/password"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/store/postgres"
	"github.com/rcsso/rcsso/internal/store/redis"
	"github.com/rcsso/rcsso/internal/store/sqlite"
)

// ErrIncapable means Rocket.Chat answers but the chosen minting mode cannot
// work with it; Build's error then says what to change on which side. It is
// mint.ErrIncapable, which the HTTP error table knows too.
var ErrIncapable = mint.ErrIncapable

// storeTypes are the store types (store.type): each row makes an empty
// typed configuration that decodes the type's own keys and opens the store.
// Adding a store is its package and one row here.
var storeTypes = map[string]func() store.Config{
	"memory":   func() store.Config { return new(memory.Config) },
	"sqlite":   func() store.Config { return new(sqlite.Config) },
	"postgres": func() store.Config { return new(postgres.StoreConfig) },
	"redis":    func() store.Config { return new(redis.StoreConfig) },
}

// sourceTypes are the identity source types (identity[i].type). Adding a
// source is its package and one row here.
var sourceTypes = map[string]func() identity.Config{
	"header": func() identity.Config { return new(header.Config) },
	"local":  func() identity.Config { return new(local.Config) },
	"jwt":    func() identity.Config { return new(jwt.Config) },
	"whoami": func() identity.Config { return new(whoami.Config) },
	"oidc":   func() identity.Config { return new(oidc.Config) },
	"oauth2": func() identity.Config { return new(oauth2.Config) },
	"ldap":   func() identity.Config { return new(ldap.Config) },
	"saml":   func() identity.Config { return new(saml.Config) },
}

// sourceConfigs decodes and validates every identity source's block.
func sourceConfigs(list []config.IdentitySource) ([]identity.Config, error) {
	var errs []error
	out := make([]identity.Config, 0, len(list))
	for i, s := range list {
		b := s.Block(i)
		mk, ok := sourceTypes[s.Type]
		if !ok {
			if s.Type != "" { // a missing type is config.Validate's
				errs = append(errs, b.Errorf("type", "unknown identity source %q: use %s", s.Type, names(sourceTypes)))
			}
			continue
		}
		sc := mk()
		if err := b.Decode(sc); err != nil {
			errs = append(errs, err)
			continue
		}
		if err := sc.Validate(b); err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, sc)
	}
	return out, errors.Join(errs...)
}

// modeTypes are the minting modes (minting.mode). Adding a mode is its
// package and one row here.
var modeTypes = map[string]func() mode.Config{
	"create-token": func() mode.Config { return new(createtoken.Config) },
	"oauth":        func() mode.Config { return new(oauth.Config) },
	"mongo-resume": func() mode.Config { return new(mongo.ResumeConfig) },
	"mongo-iframe": func() mode.Config { return new(mongo.IframeConfig) },
	"password":     func() mode.Config { return new(password.Config) },
}

// modeConfig decodes and validates the minting mode's block, and checks
// that the service account the mode needs is configured.
func modeConfig(cfg config.Config) (mode.Config, error) {
	mk, ok := modeTypes[cfg.Minting.Mode]
	if !ok {
		return nil, fmt.Errorf("config: minting.mode: unknown mode %q: use create-token (default), oauth, mongo-resume, mongo-iframe or password", cfg.Minting.Mode)
	}
	mc := mk()
	b := cfg.Minting.Block()
	if err := b.Decode(mc); err != nil {
		return nil, err
	}
	if err := mc.Validate(b); err != nil {
		return nil, err
	}
	rc := cfg.RocketChat
	if mc.Admin() == mode.AdminRequired && rc.AdminToken == "" && rc.AdminPassword == "" {
		return nil, fmt.Errorf("config: rocketchat.admin_token: minting mode %s needs Rocket.Chat admin credentials: set admin_user_id + admin_token (preferred) or admin_username + admin_password", cfg.Minting.Mode)
	}
	return mc, nil
}

// extraPermissions are the service account's needs that come from the rest
// of the configuration: roles passed by identity sources, admin among
// them or among provisioning.roles, deprovisioning webhooks, the kinds of
// rooms provisioning.rooms gives.
func extraPermissions(cfg config.Config, sources []identity.Config) []mode.Permission {
	roles, admin := false, slices.Contains(cfg.Provision.Roles, "admin")
	for _, s := range sources {
		if rs, ok := s.(identity.RoleSource); ok {
			managed, a := rs.ManagesRoles()
			roles, admin = roles || managed, admin || a
		}
	}
	var rooms mode.RoomKinds
	for _, g := range cfg.Provision.Rooms {
		rooms.Channels = rooms.Channels || len(g.Channels) > 0
		rooms.PrivateGroups = rooms.PrivateGroups || len(g.PrivateGroups) > 0
		rooms.Teams = rooms.Teams || len(g.Teams) > 0
	}
	return mode.ExtraPermissions(roles, admin, cfg.Webhooks.Secret != "", rooms)
}

// names lists a map's keys, sorted, for messages.
func names[V any](m map[string]V) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return strings.Join(keys, ", ")
}

// storeConfig decodes and validates the configured store type's block.
func storeConfig(c config.Store) (store.Config, error) {
	mk, ok := storeTypes[c.Type]
	if !ok {
		return nil, fmt.Errorf("config: store.type: unknown store %q: use %s", c.Type, names(storeTypes))
	}
	sc := mk()
	if err := c.Block().Decode(sc); err != nil {
		return nil, err
	}
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	if _, keeps := sc.(store.KeyKeeper); sc.Shared() && !keeps && c.EncryptionKey == "" {
		return nil, fmt.Errorf("config: store.encryption_key: store type %s is shared by every rcsso instance, which must all seal tokens with one key: "+
			"set store.encryption_key (or encryption_key_file) to the same 32 random bytes, base64, on every instance (head -c32 /dev/urandom | base64)", c.Type)
	}
	return sc, nil
}

// OpenStore opens the configured store.
func OpenStore(ctx context.Context, c config.Store, log *slog.Logger) (store.Store, error) {
	sc, err := storeConfig(c)
	if err != nil {
		return nil, err
	}
	return sc.Open(ctx, log)
}

// Validate checks the whole configuration: the top-level keys
// (config.Config.Validate) and every typed block (the store type's keys, …),
// returning every problem found, each naming its key.
func Validate(cfg config.Config) error {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := storeConfig(cfg.Store); err != nil {
		errs = append(errs, err)
	}
	if _, err := sourceConfigs(cfg.Identity); err != nil {
		errs = append(errs, err)
	}
	if _, err := modeConfig(cfg); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Schemas are the typed blocks' keys, for RCSSO_* environment variables
// (config.Load): every key any store type, identity source or minting mode
// defines, under its prefix.
func Schemas() []config.Schema {
	var out []config.Schema
	for _, mk := range storeTypes {
		out = append(out, config.Schema{Prefix: "store", Type: reflect.TypeOf(mk()).Elem()})
	}
	for _, mk := range modeTypes {
		out = append(out, config.Schema{Prefix: "minting", Type: reflect.TypeOf(mk()).Elem()})
	}
	return out
}
