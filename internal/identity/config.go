package identity

import (
	"context"
	"log/slog"
	"net/http"
	"net/url"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/store"
)

// Config is an identity source type's typed configuration: the keys of one
// entry of the identity list besides type and name (header: user_header,
// trusted_proxies, …), decoded by config.Block.Decode. Each source package
// exports one, and rcsso's app package lists them in one map (type →
// Config), so adding a source is one package and one map row, as dex does
// with its connectors.
type Config interface {
	// Validate checks the decoded keys and reads *_file secrets; b is the
	// entry (identity[2]), which names the keys in messages.
	Validate(b config.Block) error
	// Open builds the source.
	Open(ctx context.Context, d Deps) (Source, error)
}

// Deps is what rcsso gives a source when it opens: its name, shared
// services and the parts of the deployment it may need.
type Deps struct {
	// Name is the source's name (its name key, default its type): subjects
	// are "<Name>:<id>", interactive routes live under /auth/<Name>/.
	Name string
	// Store is rcsso's store (local accounts, single-use values).
	Store store.Store
	// Sessions starts, finds and ends rcsso's own website sessions.
	Sessions Sessions
	// PublicURL is where browsers reach rcsso.
	PublicURL *url.URL
	// SecureCookies says whether cookies get Secure (public_url is https).
	SecureCookies bool
	// SafeReturnTo is rcsso's open-redirect filter (absolute URLs on an
	// allowed origin, or "").
	SafeReturnTo func(string) string
	// Key derives a 32-byte key for purpose from rcsso's store key.
	Key func(purpose string) []byte
	// OnLogout ends a subject's chat session (a logout reported by the
	// source's provider).
	OnLogout func(ctx context.Context, subject string) error
	// Logger is rcsso's logger.
	Logger *slog.Logger
}

// Sessions is rcsso's website session manager (package websession) as
// sources use it.
type Sessions interface {
	// Lookup returns the visitor's unexpired session, or ErrNotLoggedIn.
	Lookup(r *http.Request) (store.Session, error)
	// Start starts a session for id and sets its cookie.
	Start(ctx context.Context, w http.ResponseWriter, id Identity) error
	// End ends the visitor's session, reporting whether there was one.
	End(ctx context.Context, w http.ResponseWriter, r *http.Request) (store.Session, bool, error)
	// EndSubject ends every session of subject and returns how many.
	EndSubject(ctx context.Context, subject string) (int, error)
}

// RoleSource is an optional Config capability: whether the source passes
// Rocket.Chat roles (then the service account needs assign-roles), and
// whether admin is among them (assign-admin-role).
type RoleSource interface {
	ManagesRoles() (managed, admin bool)
}
