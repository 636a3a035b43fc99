package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Carrier is the Rocket.Chat OAuth service through which rcsso logs people
// in: the serviceName of POST /api/v1/login {serviceName, accessToken,
// expiresIn}.
type Carrier struct {
	// Service is the service key: the configured Custom OAuth service, or
	// "wordpress".
	Service string
	// Builtin is true for the built-in WordPress provider, which
	// Rocket.Chat 9.0 does not gate.
	Builtin bool
	// Note says in one line how the carrier was chosen (start-up log,
	// /readyz "minting_via").
	Note string
}

// Detector chooses the carrier at start-up and again at run time, from
// the OAuth services Rocket.Chat has switched on (GET
// /api/v1/settings.oauth, no credentials):
//
//   - the configured Custom OAuth service when it is listed;
//   - on Rocket.Chat 9 and later without it: 9.0.0 makes Custom OAuth a
//     Premium feature (PR #42477: every Accounts_OAuth_Custom-* enable
//     setting reads false without the oauth-enterprise module, so the
//     service is never registered and its logins fail with a 500). The
//     built-in WordPress provider is a CustomOAuth too but escapes the
//     gate (RocketChat/Rocket.Chat apps/meteor/ee/server/lib/oauth/gateCustomOAuthSettings.ts
//     @147ee8f9d29891012cd0b02d6611a62c8d35b62a, apps/meteor/app/wordpress/server/lib.ts
//     @1abed5480eeab2181de7adfdc569868453b52212). When Rocket.Chat lists
//     "wordpress" with rcsso's identity path (server type custom, Identity
//     Path /oauth/identity) it becomes the carrier. PR #41992 (not known to
//     be merged) removes WordPress; the detection then finds nothing;
//   - otherwise an error wrapping mint.ErrIncapable that names
//     create-token as the way forward.
//
// A server without settings.oauth (404) is assumed to run the configured
// service. Results are kept for TTL; a failed login asks for a new
// detection at most every RecheckAfter. Safe for concurrent use.
type Detector struct {
	RC *rocketchat.Client
	// ServiceName is the configured Custom OAuth service.
	ServiceName string
	// IdentityPath is rcsso's identity route path ("/oauth/identity"), by
	// which the WordPress provider is recognised as pointing at rcsso.
	IdentityPath string
	// TTL is how long a detection stands (default 1 minute).
	TTL time.Duration
	// RecheckAfter bounds detections forced by failed logins (default 10 s).
	RecheckAfter time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time

	mu   sync.Mutex
	cur  Carrier
	err  error // nil or an ErrIncapable verdict
	at   time.Time
	have bool
}

func (d *Detector) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

// Current returns the carrier, detecting it when none is known or the last
// detection is older than TTL. Errors wrapping mint.ErrIncapable are
// verdicts (kept for TTL); other errors mean Rocket.Chat cannot be asked
// right now (not kept).
func (d *Detector) Current(ctx context.Context) (Carrier, error) {
	ttl := d.TTL
	if ttl <= 0 {
		ttl = time.Minute
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.have && d.now().Sub(d.at) < ttl {
		return d.cur, d.err
	}
	c, err := d.detect(ctx)
	if err != nil && !errors.Is(err, mint.ErrIncapable) {
		return Carrier{}, err
	}
	d.cur, d.err, d.at, d.have = c, err, d.now(), true
	return c, err
}

// Last returns the carrier of the last successful detection, if any.
func (d *Detector) Last() (Carrier, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cur, d.have && d.err == nil
}

// Stale forgets the last detection if it is older than RecheckAfter, so
// that the next Current asks Rocket.Chat again (after a failed login: the
// licence may have lapsed, an upgrade may have removed WordPress). It
// reports whether it did.
func (d *Detector) Stale() bool {
	after := d.RecheckAfter
	if after <= 0 {
		after = 10 * time.Second
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.have || d.now().Sub(d.at) < after {
		return false
	}
	d.have = false
	return true
}

func (d *Detector) detect(ctx context.Context) (Carrier, error) {
	info, err := d.RC.Info(ctx)
	if err != nil {
		return Carrier{}, err
	}
	svcs, err := d.RC.OAuthServices(ctx)
	var rce *rocketchat.Error
	if errors.As(err, &rce) && rce.Status == http.StatusNotFound {
		return Carrier{Service: d.ServiceName, Note: fmt.Sprintf("Custom OAuth service %q (Rocket.Chat %s does not list its OAuth services)", d.ServiceName, info.Version)}, nil
	}
	if err != nil {
		return Carrier{}, err
	}
	return chooseCarrier(info, svcs, d.ServiceName, d.identityPath())
}

// chooseCarrier picks the carrier from the services Rocket.Chat (version
// info) lists; see Detector.
func chooseCarrier(info rocketchat.ServerInfo, svcs []rocketchat.OAuthService, serviceName, identityPath string) (Carrier, error) {
	name := strings.ToLower(serviceName)
	if slices.ContainsFunc(svcs, func(s rocketchat.OAuthService) bool { return strings.ToLower(s.Key()) == name }) {
		note := fmt.Sprintf("Custom OAuth service %q", serviceName)
		if info.Major() >= 9 {
			note += " (Rocket.Chat " + info.Version + " has the oauth-enterprise module)"
		}
		return Carrier{Service: serviceName, Note: note}, nil
	}
	if info.Major() < 9 {
		return Carrier{}, fmt.Errorf("%w: Rocket.Chat %s has no Custom OAuth service %q switched on (GET /api/v1/settings.oauth does not list it): add or enable it under Administration → Settings → OAuth (see the README), or set minting.oauth.service_name to its name",
			mint.ErrIncapable, info.Version, serviceName)
	}
	for _, s := range svcs {
		if strings.ToLower(s.Key()) == "wordpress" && pointsAt(s, identityPath) {
			return Carrier{Service: "wordpress", Builtin: true, Note: fmt.Sprintf(
				"the built-in WordPress provider: Rocket.Chat %s switches Custom OAuth service %q off without the oauth-enterprise module (Premium), and WordPress is not gated",
				info.Version, serviceName)}, nil
		}
	}
	return Carrier{}, fmt.Errorf("%w: Rocket.Chat %s makes Custom OAuth a Premium feature: without the oauth-enterprise module the Custom OAuth service %q is switched off and its logins fail. Switch rcsso to minting.mode create-token (a service account and CREATE_TOKENS_FOR_USERS_SECRET; see the README), or add the oauth-enterprise module to the licence; or, while Rocket.Chat still has it, point the built-in WordPress provider (Administration → Settings → OAuth → WordPress: server type custom, URL rcsso's public_url, Identity Path %s, Token Path /oauth/token, Authorize Path /oauth/authorize) at rcsso",
		mint.ErrIncapable, info.Version, serviceName, identityPath)
}

func (d *Detector) identityPath() string {
	if d.IdentityPath == "" {
		return "/oauth/identity"
	}
	return d.IdentityPath
}

// pointsAt reports whether a login service's identity path is rcsso's
// identity route (relative, or an absolute URL ending in it).
func pointsAt(s rocketchat.OAuthService, identityPath string) bool {
	if identityPath == "" {
		identityPath = "/oauth/identity"
	}
	p := strings.TrimRight(s.IdentityPath, "/")
	return p == identityPath || strings.HasSuffix(p, identityPath) && strings.Contains(p, "://")
}
