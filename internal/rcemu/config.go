package rcemu

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Config configures a Server. Only AdminPassword is required.
type Config struct {
	// Profile selects the emulated Rocket.Chat version (spec §8): "5.x",
	// "6.x", "7.x", "8.x" (default), "8.7" or "9.0" (ProfileNames). It
	// decides the /api/info version, the error envelopes (§4.0, §4.1),
	// users.createToken gating (§4.7: the caller check is absent on
	// 8.0–8.6 and back from 8.7, PR #40768), the web client generation
	// (clientGen) with its API URL behaviour (§1.3), and from 8.7 the
	// server-side OAuth flow with loginCode.redeem (oauthflow.go) and a 500
	// for plain errors at REST /login; from 9.0 the 403 error-forbidden
	// refusals (#43214) and the Custom OAuth gate (OAuthEnterprise).
	Profile string
	// AdminUsername is the username of the initial admin (default "admin").
	AdminUsername string
	// AdminPassword is the initial admin's password (required).
	AdminPassword string
	// AdminEmail is the initial admin's (verified) e-mail address (default
	// "<AdminUsername>@rcemu.invalid").
	AdminEmail string
	// AdminUserID is an optional fixed _id for the admin (default: a random
	// 17-character Random.id(), spec §5).
	AdminUserID string
	// AdminPAT, when set, is stored as a personal access token of the admin
	// (type personalAccessToken, bypassTwoFactor true; spec §4.12).
	AdminPAT string
	// CreateTokensSecret is CREATE_TOKENS_FOR_USERS_SECRET (8.x, spec
	// §4.7). Empty means users.createToken always answers "Not authorized".
	CreateTokensSecret string
	// CreateTokensForUsers is CREATE_TOKENS_FOR_USERS=true (6.x/7.x, §4.7).
	CreateTokensForUsers bool
	// Bug40598 reproduces Rocket.Chat 7.13.x bug #40598 (§4.7, §7):
	// users.createToken for a user that never had a login token answers 400
	// "Cannot read properties of undefined (reading 'tokens')" — and still
	// inserts the token.
	Bug40598 bool
	// DisableRateLimit switches the REST rate limiter off, like TEST_MODE
	// (§4.14). Default false: the limiter is on.
	DisableRateLimit bool
	// TwoFactor emulates Rocket.Chat's default two-factor settings (§2.1,
	// §4.0; twofactor.go): users created by users.create are opted in to
	// e-mail 2FA, and every login but resume of a user with TOTP
	// (NewUser.TOTPSecret, EnableTOTP) or e-mail 2FA with a verified
	// address fails with totp-required until it carries the code — from the
	// authenticator app, or the one Rocket.Chat e-mails (Mailbox,
	// LastEmailCode); users.update requires a 2FA code (x-2fa-code =
	// sha256-hex of the password) unless the caller uses a PAT with
	// bypassTwoFactor or was created less than 30 minutes ago. Default
	// false, like TEST_MODE.
	TwoFactor bool
	// MaxResumeTokens is MAX_RESUME_LOGIN_TOKENS (default 50, §2.2).
	MaxResumeTokens int
	// BcryptCost is the bcrypt cost of stored passwords (default 10, like
	// Meteor). Tests may lower it to bcrypt.MinCost.
	BcryptCost int
	// Settings overrides initial settings (§2.3), e.g.
	// "Accounts_iframe_enabled": true, "Accounts_iframe_url",
	// "Accounts_Iframe_api_url", "Accounts_Iframe_api_method",
	// "Iframe_Integration_receive_enable", "Iframe_Integration_receive_origin",
	// "Iframe_Integration_send_enable", "Iframe_Integration_send_target_origin".
	// Unknown keys become public settings.
	Settings map[string]any
	// OAuthServices are the Custom OAuth services (and the built-in
	// WordPress provider) whose access tokens POST /api/v1/login accepts
	// ({serviceName, accessToken, expiresIn}; see OAuthService) and that
	// GET /api/v1/settings.oauth lists.
	OAuthServices []OAuthService
	// OAuthEnterprise says the workspace's licence has the oauth-enterprise
	// module. From profile 9.0 on, without it every Custom OAuth service is
	// switched off: absent from settings.oauth, and its access-token logins
	// fail with "Unexpected AccessToken service <name>" (REST: 500 Internal
	// server error). Built-in providers are not gated. Ignored before 9.0.
	OAuthEnterprise bool
	// BuiltinOAuthRemoved emulates RocketChat/Rocket.Chat PR #41992 (opened
	// for 9.0.0, not known to be merged): the built-in WordPress provider
	// and its settings are gone, whatever the profile.
	BuiltinOAuthRemoved bool
	// MongoURL, when set, keeps the users collection in that MongoDB
	// (e.g. "mongodb://127.0.0.1:27017/rocketchat"; FerretDB v1 works),
	// shaped like Rocket.Chat's (spec §5), so that rcsso's direct-MongoDB
	// minters and the emulator share the users: tokens rcsso pushes log in
	// through /api/v1/login {resume} and X-Auth-Token, an iframe token it
	// sets logs in through {iframe:true, token}. An existing user with
	// AdminUsername is adopted as the admin. Call Server.Close when done.
	// Default: users in memory.
	MongoURL string
	// MongoDatabase is the database of MongoURL (default: the URL's path,
	// else "rocketchat", Rocket.Chat's usual name).
	MongoDatabase string
	// SettingsDelay is how long after the web client page's load event its
	// public settings arrive: on a first visit Rocket.Chat's client connects
	// (DDP) and fetches them only after the bundle has loaded, and it hears
	// host commands only from then on (rocketchat-2026.md §1.6; the listener
	// is a useEffect keyed on Iframe_Integration_receive_enable in
	// RocketChat/Rocket.Chat apps/meteor/client/views/root/hooks/useIframeCommands.ts
	// @03de61f886ab7ad2c85b998b8bb5201778938be0, and reads the settings per
	// message in apps/meteor/client/startup/iframeCommands.ts
	// @7b75dd7eee367b31413ab2b3ae601cb588835ad0). Default 150 ms; negative
	// means at once (still after the load event).
	SettingsDelay time.Duration
	// SupportExpires is when Rocket.Chat's support for the emulated version
	// ends, as the signed supported-versions list of a workspace registered
	// with Rocket.Chat Cloud says; GET /api/info then carries it
	// (supportedversions.go). Zero: /api/info has no supportedVersions (a
	// workspace that is not registered, or offline).
	SupportExpires time.Time
	// DataFile, when set, keeps the emulator's state (settings, roles,
	// permissions and, in memory mode, the users) in this JSON file: read
	// at New when it exists (its settings then win over Settings), written
	// after every request that may change state (persist.go).
	DataFile string
	// Logger receives request logs at debug level (default: discarded).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// EnableIframeAuth turns on iframe authentication (spec §1.2, §2.3):
// Accounts_iframe_enabled=true plus Accounts_iframe_url (the IFrame URL),
// Accounts_Iframe_api_url (the API URL) and Accounts_Iframe_api_method
// (default "POST"). Empty URLs are left unset.
func (c *Config) EnableIframeAuth(iframeURL, apiURL, apiMethod string) {
	if c.Settings == nil {
		c.Settings = map[string]any{}
	}
	c.Settings["Accounts_iframe_enabled"] = true
	if iframeURL != "" {
		c.Settings["Accounts_iframe_url"] = iframeURL
	}
	if apiURL != "" {
		c.Settings["Accounts_Iframe_api_url"] = apiURL
	}
	if apiMethod == "" {
		apiMethod = "POST"
	}
	c.Settings["Accounts_Iframe_api_method"] = apiMethod
}

// Flags registers the `rcsso emulate` options that map onto cfg on fs
// (--admin-username, --admin-password, --admin-user-id, --admin-pat,
// --create-tokens-secret, --create-tokens-for-users, --profile,
// --iframe-url, --api-url, --api-method, --disable-rate-limit,
// --max-resume-tokens, --oauth-enterprise, --settings-delay, --data,
// --two-factor, --support-expires, and the Iframe Integration and framing
// settings --iframe-integration-receive, --iframe-integration-origins,
// --iframe-integration-send, --iframe-integration-target-origin,
// --iframe-restrict-access). --listen
// belongs to the caller. Call the returned function after fs.Parse: it
// applies --iframe-url/--api-url through EnableIframeAuth when either was
// given.
func Flags(fs *flag.FlagSet, cfg *Config) (apply func()) {
	fs.StringVar(&cfg.Profile, "profile", cfg.Profile, "emulated Rocket.Chat version profile: "+ProfileNames)
	fs.StringVar(&cfg.AdminUsername, "admin-username", cfg.AdminUsername, "username of the initial admin (default admin)")
	fs.StringVar(&cfg.AdminPassword, "admin-password", cfg.AdminPassword, "password of the initial admin (required)")
	fs.StringVar(&cfg.AdminUserID, "admin-user-id", cfg.AdminUserID, "fixed _id of the admin (default random)")
	fs.StringVar(&cfg.AdminPAT, "admin-pat", cfg.AdminPAT, "personal access token to create for the admin")
	fs.StringVar(&cfg.CreateTokensSecret, "create-tokens-secret", cfg.CreateTokensSecret, "CREATE_TOKENS_FOR_USERS_SECRET (8.x)")
	fs.BoolVar(&cfg.CreateTokensForUsers, "create-tokens-for-users", cfg.CreateTokensForUsers, "CREATE_TOKENS_FOR_USERS=true (6.x/7.x)")
	fs.BoolVar(&cfg.DisableRateLimit, "disable-rate-limit", cfg.DisableRateLimit, "switch the REST rate limiter off (like TEST_MODE)")
	// --two-factor: Config.TwoFactor, Rocket.Chat's checkCodeForUser at
	// login (RocketChat/Rocket.Chat apps/meteor/app/2fa/server/code/index.ts
	// @f16baf07fafc8bdd26538b8969566885fd7aaf4a; twofactor.go).
	fs.BoolVar(&cfg.TwoFactor, "two-factor", cfg.TwoFactor, "Rocket.Chat's default two-factor authentication: e-mail 2FA for new users, TOTP and e-mail codes at login (mails at /_emu/mailbox), x-2fa-code on protected endpoints")
	fs.IntVar(&cfg.MaxResumeTokens, "max-resume-tokens", cfg.MaxResumeTokens, "MAX_RESUME_LOGIN_TOKENS (default 50)")
	fs.BoolVar(&cfg.OAuthEnterprise, "oauth-enterprise", cfg.OAuthEnterprise, "the licence has the oauth-enterprise module (9.0: Custom OAuth works)")
	fs.DurationVar(&cfg.SettingsDelay, "settings-delay", cfg.SettingsDelay, "how long after page load the web client's public settings arrive (default 150ms)")
	fs.StringVar(&cfg.DataFile, "data", cfg.DataFile, "keep settings, roles, permissions and users in this JSON `file` across restarts")
	fs.Func("support-expires", "end of Rocket.Chat's support for the emulated version, as /api/info's supportedVersions reports it (`date` YYYY-MM-DD or RFC 3339)", func(v string) error {
		t, err := parseDate(v)
		if err != nil {
			return err
		}
		cfg.SupportExpires = t
		return nil
	})
	setting := func(name, key, usage string, parse func(string) (any, error)) {
		fs.Func(name, usage+" ("+key+")", func(v string) error {
			x, err := parse(v)
			if err != nil {
				return err
			}
			if cfg.Settings == nil {
				cfg.Settings = map[string]any{}
			}
			cfg.Settings[key] = x
			return nil
		})
	}
	boolean := func(v string) (any, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return nil, errors.New("want true or false")
		}
		return b, nil
	}
	text := func(v string) (any, error) { return v, nil }
	setting("iframe-integration-receive", "Iframe_Integration_receive_enable", "accept iframe integration commands from host pages (true/false)", boolean)
	setting("iframe-integration-origins", "Iframe_Integration_receive_origin", "host page origins whose commands are accepted, comma-separated, exact (default *)", text)
	setting("iframe-integration-send", "Iframe_Integration_send_enable", "send iframe integration events to the host page (true/false)", boolean)
	setting("iframe-integration-target-origin", "Iframe_Integration_send_target_origin", "the host page origin events are sent to (default *)", text)
	setting("iframe-restrict-access", "Iframe_Restrict_Access", "send X-Frame-Options: sameorigin, like Rocket.Chat's default (true/false)", boolean)
	iframeURL := fs.String("iframe-url", "", "Accounts_iframe_url (enables iframe authentication)")
	apiURL := fs.String("api-url", "", "Accounts_Iframe_api_url (enables iframe authentication)")
	apiMethod := fs.String("api-method", "POST", "Accounts_Iframe_api_method")
	return func() {
		if *iframeURL != "" || *apiURL != "" {
			cfg.EnableIframeAuth(*iframeURL, *apiURL, *apiMethod)
		}
	}
}

// profile is a parsed Config.Profile: the emulated Rocket.Chat version as
// major*100+minor, so profiles compare in release order (profile7 <
// profile87 < profile9).
type profile int

// The profiles. Each names the version GET /api/info reports; the web
// client's generation follows from it (clientGen).
const (
	profile5  profile = 504 // 5.4.0: XHR client (generation X)
	profile6  profile = 610 // 6.10.0: fetch client before the refactor (F1)
	profile7  profile = 710 // 7.10.0: fetch client after refactor #36022 (F2)
	profile8  profile = 800 // 8.0.0: current client (L)
	profile87 profile = 807 // 8.7.0: createToken permission check restored (#40768), server-side OAuth flow
	profile9  profile = 900 // 9.0.0: Custom OAuth needs the oauth-enterprise module; 403 error-forbidden (#43214)
)

var profiles = []struct {
	p     profile
	names []string
}{
	{profile5, []string{"5", "5.x", "5.4", "5.4.0"}},
	{profile6, []string{"6", "6.x", "6.10", "6.10.0"}},
	{profile7, []string{"7", "7.x", "7.10", "7.10.0"}},
	{profile8, []string{"", "8", "8.x", "8.0", "8.0.0"}},
	{profile87, []string{"8.7", "8.7.x", "8.7.0"}},
	{profile9, []string{"9", "9.x", "9.0", "9.0.0"}},
}

// ProfileNames lists the accepted Config.Profile values, oldest first.
const ProfileNames = "5.x, 6.x, 7.x, 8.x (default), 8.7 or 9.0"

func parseProfile(s string) (profile, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, e := range profiles {
		for _, n := range e.names {
			if s == n {
				return e.p, nil
			}
		}
	}
	return 0, fmt.Errorf("rcemu: unknown profile %q (want %s)", s, ProfileNames)
}

// String is the profile's short name: "6.x", "8.7", "9.0".
func (p profile) String() string {
	if p == profile87 || p == profile9 {
		return fmt.Sprintf("%d.%d", int(p)/100, int(p)%100)
	}
	return fmt.Sprintf("%d.x", int(p)/100)
}

// version is what GET /api/info reports.
func (p profile) version() string { return fmt.Sprintf("%d.%d.0", int(p)/100, int(p)%100) }

// clientGen is the web client generation of a Rocket.Chat version (see
// rocketchat-2026.md §1.1): "x" 3.x–6.1 (XHR), "f1" 6.2–7.7 (fetch,
// RocketChat/Rocket.Chat apps/meteor/client/views/root/MainLayout/useIframeLogin.ts),
// "f2" 7.8–7.10 (after refactor #36022: apps/meteor/client/hooks/iframe/useIframe.ts),
// "l" 7.11 and later (after #36866 and #36919: apps/meteor/client/views/root/hooks/useIframe.ts
// and useIframeLoginListener.ts).
func (p profile) clientGen() string {
	switch {
	case p < 602:
		return "x"
	case p < 708:
		return "f1"
	case p < 711:
		return "f2"
	}
	return "l"
}

func (c *Config) withDefaults() (Config, error) {
	out := *c
	if out.AdminPassword == "" {
		return out, errors.New("rcemu: AdminPassword is required")
	}
	if out.AdminUsername == "" {
		out.AdminUsername = "admin"
	}
	if out.AdminEmail == "" {
		out.AdminEmail = out.AdminUsername + "@rcemu.invalid"
	}
	if out.MaxResumeTokens <= 0 {
		out.MaxResumeTokens = 50
	}
	if out.BcryptCost == 0 {
		out.BcryptCost = 10
	}
	switch {
	case out.SettingsDelay == 0:
		out.SettingsDelay = 150 * time.Millisecond
	case out.SettingsDelay < 0:
		out.SettingsDelay = 0
	}
	if out.Logger == nil {
		out.Logger = slog.New(slog.DiscardHandler)
	}
	if out.Now == nil {
		out.Now = time.Now
	}
	return out, nil
}
