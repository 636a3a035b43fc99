// Package config loads rcsso's configuration: YAML file < environment
// variables RCSSO_<PATH> < command-line flags, then Validate() checks it and
// reports every problem with the key that has it and how to fix it.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/go-viper/mapstructure/v2"
	"github.com/knadh/koanf/parsers/yaml"
	"github.com/knadh/koanf/providers/confmap"
	"github.com/knadh/koanf/providers/file"
	"github.com/knadh/koanf/v2"
	yamlv3 "go.yaml.in/yaml/v3"
)

// Config is the whole rcsso configuration. Keys are snake_case in YAML; the
// environment variable for a key is RCSSO_ followed by its path upper-cased
// with dots replaced by underscores (rocketchat.url → RCSSO_ROCKETCHAT_URL).
// The lists "identity" and "provisioning.rooms" are set from the
// environment as one YAML/JSON value each (RCSSO_IDENTITY='[{"type":"local"}]',
// RCSSO_PROVISIONING_ROOMS; envLists).
type Config struct {
	// Listen is the TCP address rcsso serves on, e.g. "127.0.0.1:8080".
	Listen string `koanf:"listen"`
	// PublicURL is where browsers reach rcsso (scheme, host, optional path
	// prefix), e.g. "https://sso.example.com". Cookie security follows its scheme.
	PublicURL string `koanf:"public_url"`
	// MetricsListen, when set (e.g. "127.0.0.1:9090"), serves Prometheus
	// metrics at /metrics on that separate address.
	MetricsListen string `koanf:"metrics_listen"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `koanf:"log_level"`
	// LogFormat is text or json.
	LogFormat string `koanf:"log_format"`
	// TrustedProxies are the reverse proxies in front of rcsso (IP
	// addresses or CIDR prefixes) whose X-Forwarded-For header names the
	// client: failed-login limits, logs and the audit log then count the
	// client, not the proxy. Empty: the TCP peer is the client.
	TrustedProxies []string `koanf:"trusted_proxies"`

	RocketChat RocketChat       `koanf:"rocketchat"`
	Identity   []IdentitySource `koanf:"identity"`
	Store      Store            `koanf:"store"`
	Minting    Minting          `koanf:"minting"`
	Session    Session          `koanf:"session"`
	Website    Website          `koanf:"website"`
	Provision  Provision        `koanf:"provisioning"`
	Webhooks   Webhooks         `koanf:"webhooks"`
	// Diagnostics guards the Rocket.Chat part of GET /diagnostics.
	Diagnostics Diagnostics `koanf:"diagnostics"`
	// Cache is each instance's in-process cache of sessions and tokens.
	Cache Cache `koanf:"cache"`
	// Audit is where the audit log goes (docs/audit.md).
	Audit Audit `koanf:"audit"`
}

// Audit configures the audit log: one JSON line per provision, mint,
// re-validation, revoke, logout, deprovision, refused access, failed login
// and admin action (docs/audit.md lists the fields). Tokens and passwords
// are never in it.
type Audit struct {
	// Path is a file the lines are appended to (created 0600; on SIGHUP
	// rcsso serve reopens it, for logrotate), "-" or empty for standard
	// output (the default: journald or the container runtime collects it
	// apart from the log, which goes to standard error), or "off".
	Path string `koanf:"path"`
}

// Cache sizes each rcsso instance's hot cache: the website sessions and
// the decrypted Rocket.Chat tokens the API URL reads on every request,
// kept coherent across instances through the store's change feed.
type Cache struct {
	// Size is how many people (and as many website sessions) each instance
	// keeps, about 0.5 KiB each; 0 reads the store on every request.
	Size int `koanf:"size"`
	// MaxAge is how long an entry is trusted without hearing of a change
	// (the safety net should a change-feed message be lost).
	MaxAge time.Duration `koanf:"max_age"`
}

// Diagnostics configures GET /diagnostics. Anyone may open it and sees only
// their own part (whether this browser is logged in on the website and
// whether its API URL calls carried rcsso's cookie). Rocket.Chat's version,
// its settings, framing headers and the minting check are shown only to a
// request with "Authorization: Bearer <token>" (never in a URL).
type Diagnostics struct {
	// Token is the operator credential: at least 32 random characters, e.g.
	// from: head -c32 /dev/urandom | base64. Empty: nobody sees the
	// Rocket.Chat part. Prefer token_file.
	Token     string `koanf:"token"`
	TokenFile string `koanf:"token_file"`
}

// Webhooks configures the signed back-channel webhooks the website's back
// end calls: POST /webhooks/logout and POST /webhooks/deprovision.
type Webhooks struct {
	// Secret is the HMAC-SHA256 key (at least 32 characters); empty turns
	// the webhooks off.
	Secret     string `koanf:"secret"`
	SecretFile string `koanf:"secret_file"`
}

// RocketChat says where Rocket.Chat is and how rcsso authenticates to it.
// Give either a personal access token (admin_user_id + admin_token, preferred:
// create it with "Ignore Two Factor Authentication" on) or a service
// account's admin_username + admin_password. Secrets may instead be read from
// files (admin_token_file, admin_password_file, create_tokens_secret_file).
type RocketChat struct {
	// URL is Rocket.Chat's site URL; its origin is the only origin allowed to
	// call the API URL and to frame the IFrame URL.
	URL string `koanf:"url"`
	// APIURL is where rcsso itself calls Rocket.Chat's REST API when that
	// differs from url (an internal address such as http://rocketchat:3000);
	// default: url.
	APIURL                 string        `koanf:"api_url"`
	AdminUserID            string        `koanf:"admin_user_id"`
	AdminToken             string        `koanf:"admin_token"`
	AdminTokenFile         string        `koanf:"admin_token_file"`
	AdminUsername          string        `koanf:"admin_username"`
	AdminPassword          string        `koanf:"admin_password"`
	AdminPasswordFile      string        `koanf:"admin_password_file"`
	CreateTokensSecret     string        `koanf:"create_tokens_secret"`
	CreateTokensSecretFile string        `koanf:"create_tokens_secret_file"`
	Timeout                time.Duration `koanf:"timeout"`
	// MaxConcurrentCalls bounds rcsso's requests in flight to Rocket.Chat
	// per instance; more wait their turn.
	MaxConcurrentCalls int `koanf:"max_concurrent_calls"`
	// CallsPerMinute is rcsso's budget, per route and shared by every
	// instance on the store, of the calls Rocket.Chat rate-limits for
	// ordinary users (login, me, logout): keep it below Rocket.Chat's
	// API_Enable_Rate_Limiter_Limit_Calls_Default (10). 0 paces nothing.
	CallsPerMinute int `koanf:"calls_per_minute"`
}

// IdentitySource configures one way of learning who the visitor is. Sources
// are tried in order; the first that recognises the visitor wins. Which keys
// apply depends on Type.
type IdentitySource struct {
	// Type is the source type: header, local, ldap, jwt, whoami, oidc, oauth2
	// or saml (docs/identity-sources.md).
	Type string `koanf:"type"`
	// Name identifies the source in logs, subjects ("<name>:<id>") and
	// routes (/auth/<name>/); defaults to Type. Changing it changes every
	// subject of the source.
	Name string `koanf:"name"`
	// Allow is who may have chat at all (groups, roles, email_domains); an
	// empty allow block lets everybody the source recognises in.
	Allow SourceAllow `koanf:"allow"`
	// Options are the type's own keys as written (header: user_header, …),
	// decoded by that type's identity.Config (the app package's
	// sourceTypes).
	Options map[string]any `koanf:",remain"`
}

// SourceAllow is an identity source's access policy (identity.Policy).
type SourceAllow struct {
	Groups       []string `koanf:"groups"`
	Roles        []string `koanf:"roles"`
	EmailDomains []string `koanf:"email_domains"`
}

// SourceName is the source's name: Name, or Type when empty.
func (s IdentitySource) SourceName() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Type
}

// Block is the source's own keys as a Block under "identity[i]".
func (s IdentitySource) Block(i int) Block {
	return Block{Path: fmt.Sprintf("identity[%d]", i), Raw: s.Options}
}

// Store selects rcsso's own state backend. The keys shared by every store
// type are here; the type's own keys (sqlite: path; postgres: postgres.url,
// postgres.url_file; redis: redis.url, …) stay in Options and are decoded by
// that type's store.Config (see the app package's storeTypes).
type Store struct {
	// Type is sqlite (default), memory, postgres or redis.
	Type string `koanf:"type"`
	// EncryptionKey encrypts cached Rocket.Chat tokens at rest (AES-256-GCM):
	// 32 bytes, base64 (std or url) encoded. When empty and
	// encryption_key_file is empty, rcsso keeps a generated key beside a
	// one-host store (sqlite: "<path>.key", mode 0600) and an ephemeral one
	// for memory; a store shared by several hosts (postgres, redis) requires
	// it.
	EncryptionKey     string `koanf:"encryption_key"`
	EncryptionKeyFile string `koanf:"encryption_key_file"`
	// PreviousEncryptionKeys still open tokens sealed before a key
	// rotation (new tokens are sealed with encryption_key). Each value is
	// tagged with a key id, so the right key is tried.
	PreviousEncryptionKeys []string `koanf:"previous_encryption_keys"`
	// Options are the store type's own keys, as written.
	Options map[string]any `koanf:",remain"`
}

// Block is the store type's own keys as a Block under "store".
func (s Store) Block() Block { return Block{Path: "store", Raw: s.Options} }

// Minting selects how rcsso obtains Rocket.Chat tokens and how it reuses
// them. The keys every mode shares are here; a mode's own keys
// (minting.oauth.*, minting.mongo.*) stay in Options and are decoded by that
// mode's Config (the app package's modeTypes).
type Minting struct {
	// Mode is create-token (default), oauth, mongo-resume, mongo-iframe or
	// password.
	Mode string `koanf:"mode"`
	// RevalidateAfter is how long a cached token is handed out without asking
	// Rocket.Chat whether it still works (GET /api/v1/me). Rocket.Chat rate
	// limits /me per client IP for ordinary users (10/min, spec §4.14), so
	// keep this long; the IFrame URL always re-validates.
	RevalidateAfter time.Duration `koanf:"revalidate_after"`
	// TokenTTL is how long a cached token is used at all before a new one is
	// minted; keep it below Rocket.Chat's Accounts_LoginExpiration (90 days).
	TokenTTL time.Duration `koanf:"token_ttl"`
	// MinInterval: at most one new token per person per interval, so no
	// loop can push the person's other sessions out of Rocket.Chat's
	// 50-token list.
	MinInterval time.Duration `koanf:"min_interval"`
	// Options are the mode's own keys, as written.
	Options map[string]any `koanf:",remain"`
}

// Block is the mode's own keys as a Block under "minting".
func (m Minting) Block() Block { return Block{Path: "minting", Raw: m.Options} }

// Session configures rcsso's own website session cookie (identity sources
// local and oidc).
type Session struct {
	// CookieName defaults to "rcsso_session" ("__Host-rcsso_session" over https).
	CookieName string `koanf:"cookie_name"`
	// TTL is the session lifetime.
	TTL time.Duration `koanf:"ttl"`
	// SameSite is auto, lax, strict or none. auto = lax when Rocket.Chat is on
	// the same site as public_url, none (requires https) otherwise.
	SameSite string `koanf:"same_site"`
	// Partitioned adds the CHIPS Partitioned attribute when the cookie is
	// SameSite=None (cross-site deployments): auto (default) or off.
	Partitioned string `koanf:"partitioned"`
	// StorageAccessHeaders answers API URL calls whose cookie the browser
	// held back with Activate-Storage-Access: retry (default true).
	StorageAccessHeaders bool `koanf:"storage_access_headers"`
}

// Website describes the website that embeds the chat.
type Website struct {
	// Name is shown on rcsso's pages ("Log in to <name>").
	Name string `koanf:"name"`
	// Origins are the website's own origins (host pages). They may frame the
	// IFrame URL (when Rocket.Chat is embedded in them), post to /logout, and
	// be return_to targets after a top-level login.
	Origins []string `koanf:"origins"`
	// LoginURL is where visitors log in on the website when no interactive
	// identity source is configured; the IFrame URL links to it.
	LoginURL string `koanf:"login_url"`
	// NativeLogin adds "Log in with a Rocket.Chat account" to the IFrame
	// URL (collapsed): a person without a website account (an admin, a
	// guest) logs in with their own Rocket.Chat password and 2FA code, and
	// the chat gets that Rocket.Chat session. rcsso never stores the
	// password; failed attempts count in the login form's limits and in
	// Rocket.Chat's (all come from rcsso's address). Default false.
	NativeLogin bool `koanf:"native_login"`
}

// Provision configures how Rocket.Chat users are created.
type Provision struct {
	// Roles given to new users; default ["user"].
	Roles []string `koanf:"roles"`
	// JoinDefaultChannels is passed to users.create; default false.
	JoinDefaultChannels bool `koanf:"join_default_channels"`
	// PlaceholderEmailDomain is used for users without an e-mail address
	// (Rocket.Chat requires one); default "users.rcsso.invalid".
	PlaceholderEmailDomain string `koanf:"placeholder_email_domain"`
	// UsernamePattern is Rocket.Chat's UTF8_User_Names_Validation; keep the
	// two equal. Default [0-9a-zA-Z-_.]+.
	UsernamePattern string `koanf:"username_pattern"`
	// UsernameTemplate builds the user name from .Username, .Name, .Email,
	// .EmailLocal or .Subject before it is mapped onto the pattern, e.g.
	// "{{.EmailLocal}}". Default: the source's user name.
	UsernameTemplate string `koanf:"username_template"`
	// Adopt says which Rocket.Chat users rcsso did not create may be linked
	// to a person: never (default) or verified-email (same mapped username
	// and the same e-mail, vouched for by the identity source and verified
	// in Rocket.Chat).
	Adopt string `koanf:"adopt"`
	// Rooms give the members of identity groups Rocket.Chat rooms and
	// teams: on login and in the background of the API URL each person
	// joins what their groups give and leaves what rcsso added for a group
	// they are no longer in (memberships rcsso did not add are never
	// touched). Needs the service account's credentials. YAML only.
	Rooms []RoomGrant `koanf:"rooms"`
}

// RoomGrant is one entry of provisioning.rooms: what the members of Group
// (an identity group, compared exactly) get. Names are Rocket.Chat's room
// and team names, without "#".
type RoomGrant struct {
	Group         string   `koanf:"group"`
	Channels      []string `koanf:"channels"`
	PrivateGroups []string `koanf:"private_groups"`
	Teams         []string `koanf:"teams"`
}

// Default returns the embedded defaults.
func Default() Config {
	return Config{
		Listen:    "127.0.0.1:8080",
		PublicURL: "http://127.0.0.1:8080",
		LogLevel:  "info",
		LogFormat: "text",
		RocketChat: RocketChat{
			URL:                "http://127.0.0.1:3000",
			Timeout:            10 * time.Second,
			MaxConcurrentCalls: 8,
			CallsPerMinute:     8,
		},
		Identity: []IdentitySource{{Type: "local"}},
		Store:    Store{Type: "sqlite"},
		Minting: Minting{
			Mode:            "create-token",
			RevalidateAfter: time.Hour,
			TokenTTL:        30 * 24 * time.Hour,
			MinInterval:     30 * time.Second,
		},
		Session: Session{TTL: 12 * time.Hour, SameSite: "auto", Partitioned: "auto", StorageAccessHeaders: true},
		Website: Website{Name: "the website"},
		Provision: Provision{
			Roles:                  []string{"user"},
			PlaceholderEmailDomain: "users.rcsso.invalid",
		},
		Cache: Cache{Size: 10000, MaxAge: 5 * time.Minute},
	}
}

// Load reads the configuration: defaults < YAML file at path (if path is
// not empty) < environment (RCSSO_*) < overrides (flag values keyed by
// config path, e.g. "listen"). Secrets named by *_file keys are read.
// It does not call Validate.
//
// schemas name the keys of the typed blocks (a store type's, …) so that
// their RCSSO_* variables are known too (the app package's Schemas).
func Load(path string, environ []string, overrides map[string]any, schemas ...Schema) (Config, error) {
	k := koanf.New(".")
	if path != "" {
		if err := k.Load(file.Provider(path), yaml.Parser()); err != nil {
			if strings.Contains(err.Error(), "cannot unmarshal") {
				return Config{}, fmt.Errorf("config: reading %s: the file must be a YAML mapping of keys at the top level (listen:, rocketchat:, identity:, …; see rcsso.example.yaml)", path)
			}
			return Config{}, fmt.Errorf("config: reading %s: %w", path, err)
		}
	}
	env, err := envValues(environ, schemas)
	if err != nil {
		return Config{}, err
	}
	if err := k.Load(confmap.Provider(env, "."), nil); err != nil {
		return Config{}, fmt.Errorf("config: environment: %w", err)
	}
	if len(overrides) > 0 {
		if err := k.Load(confmap.Provider(overrides, "."), nil); err != nil {
			return Config{}, fmt.Errorf("config: flags: %w", err)
		}
	}
	cfg := Default()
	if k.Exists("identity") {
		cfg.Identity = nil // a configured list replaces the default one
	}
	dc := &mapstructure.DecoderConfig{
		DecodeHook: mapstructure.ComposeDecodeHookFunc(
			durationHook(),
			boolHook(),
			mapstructure.StringToSliceHookFunc(","),
		),
		WeaklyTypedInput: true,
		ErrorUnused:      true,
		TagName:          "koanf",
	}
	if err := k.UnmarshalWithConf("", &cfg, koanf.UnmarshalConf{DecoderConfig: dc}); err != nil {
		return Config{}, fmt.Errorf("config: %s", cleanDecodeError(err))
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if err := cfg.readSecretFiles(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// cleanDecodeError turns mapstructure's messages into ones that name the
// key and the fix, without the library's own wording ("has invalid
// keys: x" becomes "x: unknown key …").
func cleanDecodeError(err error) string {
	msg := strings.ReplaceAll(err.Error(), "decoding failed due to the following error(s):\n\n", "")
	var lines []string
	for _, l := range strings.Split(msg, "\n") {
		if l = strings.TrimSpace(l); l == "" {
			continue
		}
		if rest, ok := strings.CutPrefix(l, "'"); ok {
			if key, tail, ok := strings.Cut(rest, "'"); ok {
				if keys, ok := strings.CutPrefix(strings.TrimSpace(tail), "has invalid keys: "); ok {
					for k := range strings.SplitSeq(keys, ", ") {
						full := k
						if key != "" {
							full = key + "." + k
						}
						lines = append(lines, full+": unknown key: check its spelling against the configuration reference (README.md, rcsso.example.yaml)")
					}
					continue
				}
				tail = strings.TrimSpace(tail)
				tail = strings.TrimSpace(strings.TrimPrefix(tail, "expected type"))
				if want, got, ok := strings.Cut(tail, ", got unconvertible type "); ok {
					tail = "must be " + humanType(strings.Trim(want, "'")) + " (got " + humanType(strings.Trim(got, "'")) + ")"
				}
				l = key + ": " + strings.TrimSpace(strings.TrimPrefix(tail, "error decoding:"))
			}
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\nconfig: ")
}

// Schema names the keys of a typed block that sits under Prefix ("store"):
// the koanf-tagged fields of Type, a struct type.
type Schema struct {
	Prefix string
	Type   reflect.Type
}

// humanType names a Go type as a configuration value.
func humanType(t string) string {
	switch {
	case t == "time.Duration":
		return "a duration such as 10s or 12h"
	case t == "string":
		return "a text value"
	case t == "bool":
		return "true or false"
	case strings.HasPrefix(t, "int"), strings.HasPrefix(t, "uint"):
		return "a whole number"
	case strings.HasPrefix(t, "[]"):
		return "a list"
	case strings.HasPrefix(t, "map"):
		return "a mapping of keys"
	}
	return t
}

// envLists are the lists of blocks that are set from the environment as
// one YAML or JSON value each, with an example for the error message.
var envLists = map[string]struct{ path, example string }{
	"RCSSO_IDENTITY":           {"identity", `[{"type":"local"}]`},
	"RCSSO_PROVISIONING_ROOMS": {"provisioning.rooms", `[{"group":"sales","channels":["sales"]}]`},
}

// envValues maps RCSSO_* variables onto config paths.
func envValues(environ []string, schemas []Schema) (map[string]any, error) {
	paths := leafPaths(reflect.TypeFor[Config](), "")
	for _, s := range schemas {
		paths = append(paths, leafPaths(s.Type, s.Prefix)...)
	}
	byEnv := make(map[string]string, len(paths))
	for _, p := range paths {
		byEnv["RCSSO_"+strings.ToUpper(strings.ReplaceAll(p, ".", "_"))] = p
	}
	out := map[string]any{}
	var errs []error
	for _, kv := range environ {
		name, val, ok := strings.Cut(kv, "=")
		// RCSSO_TEST_* belong to rcsso's test suite (where its servers'
		// programs are: RCSSO_TEST_PG_BIN, …); no configuration key
		// starts with "test".
		if !ok || !strings.HasPrefix(name, "RCSSO_") || name == "RCSSO_CONFIG" || strings.HasPrefix(name, "RCSSO_TEST_") {
			continue
		}
		if l, ok := envLists[name]; ok {
			var list []map[string]any
			if err := yamlv3.Unmarshal([]byte(val), &list); err != nil {
				errs = append(errs, fmt.Errorf("config: %s: must be a YAML or JSON list such as '%s': %v", name, l.example, err))
				continue
			}
			out[l.path] = toAnyList(list)
			continue
		}
		p, ok := byEnv[name]
		if !ok {
			errs = append(errs, fmt.Errorf("config: environment variable %s does not name a configuration key (known: RCSSO_LISTEN, RCSSO_ROCKETCHAT_URL, …; see README)", name))
			continue
		}
		out[p] = val
	}
	return out, errors.Join(errs...)
}

func toAnyList(list []map[string]any) []any {
	out := make([]any, len(list))
	for i, m := range list {
		out[i] = m
	}
	return out
}

// leafPaths lists the dotted koanf paths of t's scalar fields (lists of
// scalars included, lists of structs excluded).
func leafPaths(t reflect.Type, prefix string) []string {
	var out []string
	for f := range t.Fields() {
		tag := f.Tag.Get("koanf")
		if tag == "" {
			continue
		}
		p := tag
		if prefix != "" {
			p = prefix + "." + tag
		}
		if tag == ",remain" {
			continue // a typed block's keys: named by its Schema
		}
		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Duration]():
			out = append(out, leafPaths(f.Type, p)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			// set as a whole (envLists)
		default:
			out = append(out, p)
		}
	}
	return out
}

func (c *Config) readSecretFiles() error {
	var errs []error
	read := func(key string, value *string, path string) {
		if path == "" {
			return
		}
		if *value != "" {
			errs = append(errs, fmt.Errorf("config: %s and %s_file are both set: keep one", key, key))
			return
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s_file: %v", key, err))
			return
		}
		*value = strings.TrimRight(string(b), "\r\n")
		if *value == "" {
			errs = append(errs, fmt.Errorf("config: %s_file: %s is empty", key, path))
		}
	}
	read("rocketchat.admin_token", &c.RocketChat.AdminToken, c.RocketChat.AdminTokenFile)
	read("rocketchat.admin_password", &c.RocketChat.AdminPassword, c.RocketChat.AdminPasswordFile)
	read("rocketchat.create_tokens_secret", &c.RocketChat.CreateTokensSecret, c.RocketChat.CreateTokensSecretFile)
	read("store.encryption_key", &c.Store.EncryptionKey, c.Store.EncryptionKeyFile)
	read("webhooks.secret", &c.Webhooks.Secret, c.Webhooks.SecretFile)
	read("diagnostics.token", &c.Diagnostics.Token, c.Diagnostics.TokenFile)
	return errors.Join(errs...)
}

// Validate checks the whole configuration and returns every problem found,
// each naming its key and what to do (errors.Join of them), or nil.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, fmt.Errorf("config: %s: %s", key, fmt.Sprintf(format, a...)))
	}
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "must be host:port such as 127.0.0.1:8080 (got %q)", c.Listen)
	}
	if c.MetricsListen != "" {
		if _, _, err := net.SplitHostPort(c.MetricsListen); err != nil {
			bad("metrics_listen", "must be host:port such as 127.0.0.1:9090 (got %q)", c.MetricsListen)
		}
	}
	pub, err := ParseOrigin(c.PublicURL, true)
	if err != nil {
		bad("public_url", "%v", err)
	}
	if !slices.Contains([]string{"debug", "info", "warn", "error"}, c.LogLevel) {
		bad("log_level", "must be debug, info, warn or error (got %q)", c.LogLevel)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		bad("log_format", "must be text or json (got %q)", c.LogFormat)
	}
	for _, p := range c.TrustedProxies {
		if _, err := ParsePrefix(p); err != nil {
			bad("trusted_proxies", "%q is not an IP address or CIDR prefix such as 10.0.0.0/8", p)
		}
	}
	if _, err := ParseOrigin(c.RocketChat.URL, true); err != nil {
		bad("rocketchat.url", "%v", err)
	}
	rc := c.RocketChat
	hasPAT := rc.AdminUserID != "" || rc.AdminToken != ""
	hasPassword := rc.AdminUsername != "" || rc.AdminPassword != ""
	switch {
	case hasPAT && hasPassword:
		bad("rocketchat", "set either admin_user_id + admin_token (a personal access token) or admin_username + admin_password, not both")
	case hasPAT && (rc.AdminUserID == "" || rc.AdminToken == ""):
		bad("rocketchat.admin_token", "a personal access token needs both admin_user_id and admin_token (Rocket.Chat shows both when you create it under My Account → Personal Access Tokens)")
	case hasPassword && (rc.AdminUsername == "" || rc.AdminPassword == ""):
		bad("rocketchat.admin_password", "a service account needs both admin_username and admin_password")
	}
	if rc.APIURL != "" {
		if _, err := ParseOrigin(rc.APIURL, true); err != nil {
			bad("rocketchat.api_url", "%v", err)
		}
	}
	if rc.Timeout <= 0 {
		bad("rocketchat.timeout", "must be a positive duration such as 10s")
	}
	if rc.MaxConcurrentCalls < 1 {
		bad("rocketchat.max_concurrent_calls", "must be at least 1 (default 8)")
	}
	if rc.CallsPerMinute < 0 {
		bad("rocketchat.calls_per_minute", "must not be negative: 0 paces nothing, the default 8 stays below Rocket.Chat's default limit of 10")
	}
	if c.Cache.Size < 0 {
		bad("cache.size", "must not be negative: 0 turns the cache off (default 10000 people)")
	}
	if c.Cache.MaxAge <= 0 {
		bad("cache.max_age", "must be a positive duration such as 5m")
	}
	switch p := c.Audit.Path; p {
	case "", "-", "off":
	default:
		if fi, err := os.Stat(filepath.Dir(p)); err != nil || !fi.IsDir() {
			bad("audit.path", "the directory of %s does not exist; create it, or give \"-\" for standard output or \"off\"", p)
		}
	}
	if len(c.Identity) == 0 {
		bad("identity", "list at least one identity source, e.g. [{type: local}]")
	}
	names := map[string]bool{}
	for i, s := range c.Identity {
		key := fmt.Sprintf("identity[%d]", i)
		name := s.SourceName()
		if s.Type == "" {
			bad(key+".type", "missing: use header, local, ldap, jwt, whoami, oidc, oauth2 or saml")
			continue
		}
		if names[name] {
			bad(key+".name", "two identity sources are named %q: give each a distinct name", name)
		}
		names[name] = true
		if !validName(name) {
			bad(key+".name", "%q: use letters, digits, '-' and '_' only (it appears in URLs and subjects)", name)
		}
		for _, d := range s.Allow.EmailDomains {
			if d == "" || strings.ContainsAny(d, "@ /") || !strings.Contains(d, ".") {
				bad(key+".allow.email_domains", "%q is not a domain such as example.com (no @, no scheme)", d)
			}
		}
	}
	for i, k := range c.Store.PreviousEncryptionKeys {
		if _, err := DecodeKey(k); err != nil {
			bad(fmt.Sprintf("store.previous_encryption_keys[%d]", i), "%v", err)
		}
	}
	if len(c.Store.PreviousEncryptionKeys) > 0 && c.Store.EncryptionKey == "" {
		bad("store.encryption_key", "set the new key explicitly when previous_encryption_keys is used")
	}
	if c.Store.EncryptionKey != "" {
		if _, err := DecodeKey(c.Store.EncryptionKey); err != nil {
			bad("store.encryption_key", "%v", err)
		}
	}
	if c.Minting.RevalidateAfter <= 0 {
		bad("minting.revalidate_after", "must be a positive duration such as 1h")
	}
	if c.Minting.TokenTTL <= 0 || c.Minting.TokenTTL > 90*24*time.Hour {
		bad("minting.token_ttl", "must be positive and at most 2160h (Rocket.Chat's default login expiration of 90 days)")
	}
	if c.Webhooks.Secret != "" && len(c.Webhooks.Secret) < 32 {
		bad("webhooks.secret", "use at least 32 random characters, e.g. from: head -c32 /dev/urandom | base64")
	}
	if c.Diagnostics.Token != "" && (len(c.Diagnostics.Token) < 32 || strings.TrimSpace(c.Diagnostics.Token) != c.Diagnostics.Token) {
		bad("diagnostics.token", "use at least 32 random characters without surrounding spaces, e.g. from: head -c32 /dev/urandom | base64")
	}
	if c.Minting.MinInterval < 0 {
		bad("minting.min_interval", "must not be negative")
	}
	if c.Session.TTL <= 0 {
		bad("session.ttl", "must be a positive duration such as 12h")
	}
	switch c.Session.SameSite {
	case "auto", "lax", "strict":
	case "none":
		if pub != nil && pub.Scheme != "https" {
			bad("session.same_site", "none requires public_url to be https (browsers drop SameSite=None cookies without Secure)")
		}
	default:
		bad("session.same_site", "must be auto, lax, strict or none (got %q)", c.Session.SameSite)
	}
	if c.Session.Partitioned != "auto" && c.Session.Partitioned != "off" {
		bad("session.partitioned", "must be auto or off (got %q)", c.Session.Partitioned)
	}
	for i, o := range c.Website.Origins {
		if _, err := ParseOrigin(o, false); err != nil {
			bad(fmt.Sprintf("website.origins[%d]", i), "%v", err)
		}
	}
	if c.Website.LoginURL != "" {
		if _, err := ParseOrigin(c.Website.LoginURL, true); err != nil {
			bad("website.login_url", "%v", err)
		}
	}
	if c.Provision.UsernamePattern != "" {
		if _, err := regexp.Compile(c.Provision.UsernamePattern); err != nil {
			bad("provisioning.username_pattern", "not a valid regular expression: %v", err)
		}
	}
	if c.Provision.UsernameTemplate != "" {
		if _, err := template.New("").Parse(c.Provision.UsernameTemplate); err != nil {
			bad("provisioning.username_template", "not a valid template such as {{.EmailLocal}}: %v", err)
		}
	}
	if len(c.Provision.Roles) == 0 {
		bad("provisioning.roles", "give at least one role, usually [user]")
	}
	switch c.Provision.Adopt {
	case "", "never", "verified-email":
	default:
		bad("provisioning.adopt", "%q is not a policy: use never (default: link only Rocket.Chat users rcsso created) or verified-email", c.Provision.Adopt)
	}
	validateRooms(c.Provision.Rooms, hasPAT || hasPassword, bad)
	return errors.Join(errs...)
}

// validateRooms checks provisioning.rooms: each entry names a group and at
// least one room, every name is a Rocket.Chat name (no "#", no spaces at
// the ends, no control characters, at most 255 bytes), and the service
// account's credentials are set (rcsso adds people to rooms as it).
func validateRooms(rooms []RoomGrant, admin bool, bad func(key, format string, a ...any)) {
	if len(rooms) > 0 && !admin {
		bad("provisioning.rooms", "rcsso adds people to rooms as its Rocket.Chat service account: set rocketchat.admin_user_id + admin_token (or admin_username + admin_password)")
	}
	for i, g := range rooms {
		key := fmt.Sprintf("provisioning.rooms[%d]", i)
		if strings.TrimSpace(g.Group) == "" {
			bad(key+".group", "name the identity group whose members get these rooms, e.g. group: sales")
		}
		if len(g.Channels)+len(g.PrivateGroups)+len(g.Teams) == 0 {
			bad(key, "give the group at least one of channels, private_groups or teams")
		}
		for _, list := range []struct {
			name  string
			names []string
		}{{"channels", g.Channels}, {"private_groups", g.PrivateGroups}, {"teams", g.Teams}} {
			for j, n := range list.names {
				k := fmt.Sprintf("%s.%s[%d]", key, list.name, j)
				switch {
				case strings.HasPrefix(n, "#") || strings.HasPrefix(n, "@"):
					bad(k, "%q: write the name without %q, e.g. %s", n, n[:1], strings.TrimLeft(n, "#@"))
				case n == "" || strings.TrimSpace(n) != n:
					bad(k, "%q: give the Rocket.Chat name, without spaces at the ends", n)
				case len(n) > 255 || strings.ContainsFunc(n, func(r rune) bool { return r < 0x20 || r == 0x7f }):
					bad(k, "%q is not a Rocket.Chat name (at most 255 bytes, no control characters)", n)
				}
			}
		}
	}
}

func validName(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// ParseOrigin parses an absolute http(s) URL. When allowPath is false the
// URL must be a bare origin (scheme://host[:port], no path, query or
// fragment).
func ParseOrigin(s string, allowPath bool) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("must be an absolute http(s) URL such as https://chat.example.com (got %q)", s)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("must not contain credentials, a query or a fragment (got %q)", s)
	}
	if !allowPath && u.Path != "" && u.Path != "/" {
		return nil, fmt.Errorf("must be an origin without a path, such as https://www.example.com (got %q)", s)
	}
	return u, nil
}

// Origin returns the serialized origin ("scheme://host[:port]", lower-case,
// default port dropped) of an absolute URL.
func Origin(u *url.URL) string {
	host := strings.ToLower(u.Hostname())
	port := u.Port()
	if (u.Scheme == "http" && port == "80") || (u.Scheme == "https" && port == "443") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return strings.ToLower(u.Scheme) + "://" + host
}
