package oauth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/mode"
	"github.com/rcsso/rcsso/internal/oauthprovider"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/sealer"
)

// Config is minting mode oauth's configuration (minting.oauth): rcsso is an
// OAuth 2.0 provider (routes under <public_url>/oauth/) entered in
// Rocket.Chat as a Custom OAuth service, and logs people in with access
// tokens it issues. No Rocket.Chat admin credentials are needed (they
// serve deprovisioning only).
type Config struct {
	OAuth struct {
		// ServiceName is the Custom OAuth service's name as Rocket.Chat
		// shows it (lower-case letters, digits, '_'), e.g. "rcsso".
		ServiceName string `koanf:"service_name"`
		// ClientID and ClientSecret are what you enter as "Id" and
		// "Secret" in the Custom OAuth settings (secret: at least 32
		// random characters; or client_secret_file).
		ClientID         string `koanf:"client_id"`
		ClientSecret     string `koanf:"client_secret"`
		ClientSecretFile string `koanf:"client_secret_file"`
	} `koanf:"oauth"`
}

// serviceNameRe is what Rocket.Chat keeps of a Custom OAuth service name
// (it lower-cases the name and drops other characters).
var serviceNameRe = regexp.MustCompile(`^[a-z0-9_]+$`)

// Validate implements mode.Config; it reads client_secret_file.
func (c *Config) Validate(b config.Block) error {
	o := &c.OAuth
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, b.Errorf(key, format, a...)) }
	switch {
	case o.ServiceName == "":
		bad("oauth.service_name", "mode oauth needs the name of the Custom OAuth service you add in Rocket.Chat (Administration → Settings → OAuth → Add custom OAuth), e.g. rcsso")
	case !serviceNameRe.MatchString(o.ServiceName):
		bad("oauth.service_name", "%q: use the name as Rocket.Chat shows it: lower-case letters, digits and _ (e.g. rcsso)", o.ServiceName)
	}
	if o.ClientID == "" {
		bad("oauth.client_id", "mode oauth needs a client id: choose one (e.g. rocketchat) and enter it as \"Id\" in the Custom OAuth settings")
	}
	if err := b.ReadSecret("oauth.client_secret", &o.ClientSecret, o.ClientSecretFile); err != nil {
		errs = append(errs, err)
	} else {
		switch {
		case o.ClientSecret == "":
			bad("oauth.client_secret", "mode oauth needs a client secret (or client_secret_file): generate one (head -c32 /dev/urandom | base64) and enter it as \"Secret\" in the Custom OAuth settings")
		case len(o.ClientSecret) < 32:
			bad("oauth.client_secret", "use at least 32 random characters, e.g. from: head -c32 /dev/urandom | base64")
		}
	}
	return errors.Join(errs...)
}

// Admin implements mode.Config: Rocket.Chat creates or merges the user
// during the login; credentials serve deprovisioning only.
func (*Config) Admin() mode.AdminNeed { return mode.AdminOptional }

// Open implements mode.Config: the OAuth provider (routes /oauth/…), the
// minter, and the carrier detection (Rocket.Chat 9.0 switches Custom OAuth
// off without a Premium licence; Detector), which refuses start-up when no
// ungated service is left.
func (c *Config) Open(ctx context.Context, d mode.Deps) (*mode.Backend, error) {
	o := c.OAuth
	carriers := &Detector{RC: d.RC, ServiceName: o.ServiceName, IdentityPath: "/oauth/identity"}
	if d.InfoErr == nil {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		cur, err := carriers.Current(cctx)
		cancel()
		switch {
		case errors.Is(err, mint.ErrIncapable):
			return nil, err
		case err != nil:
			d.Logger.Warn("could not ask Rocket.Chat which OAuth services it runs yet; /readyz reports it", "err", err)
		case cur.Builtin:
			d.Logger.Warn("minting mode oauth logs people in through "+cur.Note+
				"; people whose chat account came from the Custom OAuth service are not found by WordPress (it has no Merge users) and their logins fail with \"Username already exists\": minting mode create-token keeps them",
				"service", cur.Service, "rocketchat_version", d.Info.Version)
		default:
			d.Logger.Info("minting mode oauth logs people in through "+cur.Note, "service", cur.Service, "rocketchat_version", d.Info.Version)
		}
	}
	provKey, err := sealer.New(d.Key("rcsso oauth provider"))
	if err != nil {
		return nil, err
	}
	base := strings.TrimRight(d.PublicURL.String(), "/")
	rule, tmpl := d.Provision.Usernames, d.Provision.UsernameTemplate
	provider, err := oauthprovider.New(oauthprovider.Config{
		ServiceName:   o.ServiceName,
		ClientID:      o.ClientID,
		ClientSecret:  o.ClientSecret,
		RocketChatURL: d.RocketChatURL,
		BaseURL:       base + "/oauth",
		LoginURL:      base + "/login",
		Identity:      lazyChain(d.Identity),
		Once:          d.Store,
		Sealer:        provKey,
		Username:      func(id identity.Identity) string { return rule.Map(provision.UsernameSource(tmpl, id), id.Subject) },
		Logger:        d.Logger,
	})
	if err != nil {
		return nil, fmt.Errorf("minting.oauth: %w", err)
	}
	d.Logger.Info("OAuth provider for Rocket.Chat's Custom OAuth service", "service", o.ServiceName, "url", base, "callback", provider.Callback())
	b := &mode.Backend{
		Minter:      &Minter{ResumeSession: mint.ResumeSession{RC: d.RC}, ServiceName: o.ServiceName, Carriers: carriers, Issuer: provider},
		Provisioner: Provisioner{Store: d.Store},
		Ready: func(ctx context.Context) error {
			_, err := carriers.Current(ctx)
			return err
		},
		Via: func() string {
			if cur, ok := carriers.Last(); ok {
				return "OAuth service " + cur.Service + ": " + cur.Note
			}
			return ""
		},
		Routes: map[string]http.Handler{"/oauth/": provider.Handler()},
	}
	if d.Admin != nil {
		b.Deprovisioner, b.UnknownSubject = provision.New(d.RC, d.Admin, d.Store, d.Provision, d.Logger), provision.ErrUnknownSubject
	}
	return b, nil
}

// Need implements mode.Needer: the configuration's needs (deprovisioning,
// roles) when a service account is configured.
func (*Config) Need(d mode.Deps) []mode.Permission { return mode.OptionalNeed(d) }

// Checks implements mode.Checker: the carrier detection of Open (is the
// Custom OAuth service switched on; on 9.x, is it gated and is there an
// ungated carrier), the deprovisioning permissions when a service account
// is configured, the rate limiter of POST /api/v1/login and two-factor
// (OAuth logins are not exempt).
func (c *Config) Checks(d mode.Deps) []doctor.Check {
	name := c.OAuth.ServiceName
	out := []doctor.Check{{Name: "custom-oauth", Run: func(ctx context.Context, _ *doctor.Probe) []doctor.Result {
		cur, err := (&Detector{RC: d.RC, ServiceName: name, IdentityPath: "/oauth/identity"}).Current(ctx)
		switch {
		case errors.Is(err, mint.ErrIncapable):
			return []doctor.Result{{Status: doctor.Fail, Message: strings.TrimPrefix(err.Error(), mint.ErrIncapable.Error()+": "),
				Fix: "see the message: switch the Custom OAuth service on, or change minting.mode"}}
		case err != nil:
			return []doctor.Result{{Status: doctor.Warn, Message: "could not ask Rocket.Chat which OAuth services it runs: " + err.Error()}}
		case cur.Builtin:
			return []doctor.Result{{Status: doctor.Warn, Message: "rcsso logs people in through " + cur.Note + "; people whose chat account came from the Custom OAuth service are not found by WordPress and their logins fail",
				Fix: "minting mode create-token keeps them; or add the oauth-enterprise module to Rocket.Chat's licence"}}
		}
		return []doctor.Result{{Status: doctor.OK, Message: "rcsso logs people in through " + cur.Note}}
	}}}
	out = append(out, mode.DeprovisionChecks(d, "oauth")...)
	return append(out, doctor.RateLimit(doctor.Logins), doctor.TwoFactor(doctor.OAuthLogins))
}

// lazyChain identifies visitors with the identity chain, which exists only
// once every source is open (after the mode).
type lazyChain func() identity.Chain

func (l lazyChain) Identify(r *http.Request) (identity.Identity, error) { return l().Identify(r) }
