// Package mode is what every minting mode (minting.mode) shares: the typed
// configuration interface each mode package implements, what rcsso gives a
// mode when it opens (Deps), and what a mode brings (Backend). rcsso's app
// package lists the modes in one map (mode name → Config), so adding a mode
// is one package and one map row, as dex does with its connectors.
package mode

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store"
)

// Config is a minting mode's typed configuration: the keys under minting:
// besides the shared ones (mode, revalidate_after, token_ttl,
// min_interval), e.g. minting.oauth.* or minting.mongo.*, decoded by
// config.Block.Decode.
type Config interface {
	// Validate checks the decoded keys and reads *_file secrets; b is the
	// minting block and names the keys in messages.
	Validate(b config.Block) error
	// Admin says whether the mode needs Rocket.Chat admin credentials
	// (rocketchat.admin_*).
	Admin() AdminNeed
	// Open builds the mode. It may ask Rocket.Chat (or its database)
	// whether the mode can work and return an error wrapping
	// mint.ErrIncapable, naming what to change where, to refuse start-up;
	// when Rocket.Chat cannot be asked yet it logs that and opens anyway
	// (the Backend's Ready reports it).
	Open(ctx context.Context, d Deps) (*Backend, error)
}

// Checker is implemented by minting modes whose needs on Rocket.Chat's side
// rcsso doctor, the start-up log and /diagnostics check: built on the
// functions behind the mode's start-up refusal (ServiceAccount.Checks,
// the oauth carrier detection, the MongoDB access check), plus the rate
// limiter and two-factor checks as they apply to the mode. Checks must not
// change state beyond what the mode's own start-up does.
type Checker interface {
	Checks(d Deps) []doctor.Check
}

// Needer is implemented by minting modes whose service account needs
// Rocket.Chat permissions: what it must hold, which rcsso setup grants.
type Needer interface {
	Need(d Deps) []Permission
}

// AdminNeed is a mode's need for Rocket.Chat admin credentials.
type AdminNeed int

const (
	// AdminRequired: the mode provisions or mints through the admin API.
	AdminRequired AdminNeed = iota
	// AdminOptional: credentials serve deprovisioning only.
	AdminOptional
)

// Deps is what rcsso gives a mode when it opens.
type Deps struct {
	// RC is the Rocket.Chat REST client; Info the /api/info answer at
	// start-up (zero, with InfoErr set, when Rocket.Chat did not answer).
	RC      *rocketchat.Client
	Info    rocketchat.ServerInfo
	InfoErr error
	// Admin is the service account (nil without credentials); AdminKey
	// names its configuration keys for messages.
	Admin    rcadmin.Auth
	AdminKey string
	// CreateTokensSecret is rocketchat.create_tokens_secret.
	CreateTokensSecret string
	// RocketChatURL is rocketchat.url; PublicURL where browsers reach rcsso.
	RocketChatURL string
	PublicURL     *url.URL
	// Store, Sealer: rcsso's store and token sealer.
	Store  store.Store
	Sealer *sealer.Sealer
	// Key derives a 32-byte key for purpose from the store key.
	Key func(purpose string) []byte
	// Provision is how new Rocket.Chat users look (shared by every mode that
	// provisions).
	Provision provision.Config
	// Permissions are the service account's needs beyond a mode's own
	// (roles passed by identity sources, deprovisioning webhooks).
	Permissions []Permission
	// Identity is the identity chain, available once every source is open
	// (modes that log people in on their own pages, such as oauth, call it
	// when serving, not in Open).
	Identity func() identity.Chain
	Logger   *slog.Logger
}

// Deprovisioner deactivates or deletes a person's Rocket.Chat user
// (POST /webhooks/deprovision).
type Deprovisioner interface {
	Deprovision(ctx context.Context, subject string, deleteUser bool) (rcUserID string, err error)
}

// Backend is everything a mode brings.
type Backend struct {
	Minter      mint.Minter
	Provisioner mint.Provisioner
	// Deprovisioner is nil when the mode cannot deprovision (no admin
	// credentials); UnknownSubject is its "no such person" error.
	Deprovisioner  Deprovisioner
	UnknownSubject error
	// Ready is /readyz's minting check (nil: nothing to check).
	Ready func(ctx context.Context) error
	// Via, when set, names the path tokens take now (mode oauth's carrier),
	// for /readyz.
	Via func() string
	// Routes are handlers mounted at path prefixes ending in "/" (the
	// prefix is stripped), e.g. "/oauth/" → the OAuth provider.
	Routes map[string]http.Handler
	// Close releases what Open acquired (nil: nothing).
	Close func()
}
