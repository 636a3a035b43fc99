// Package oauthprovider makes rcsso a small OAuth 2.0 provider (RFC 6749
// authorization code grant, optional RFC 7636 PKCE) with exactly one client:
// Rocket.Chat, configured with a Custom OAuth service that points at rcsso.
// It serves three routes (mounted by the caller, prefix stripped):
//
//	GET  authorize  people who click "Log in with <website>" on Rocket.Chat's
//	                login page or in the mobile apps; the visitor is
//	                identified through the identity chain, or sent to the
//	                login page with return_to
//	POST token      code → access token (client_secret_basic or
//	                client_secret_post)
//	GET  identity   access token (query parameter access_token or
//	                Authorization: Bearer) → the person as JSON
//
// The minting mode "oauth" uses IssueAccessToken directly: rcsso hands
// Rocket.Chat an access token in POST /api/v1/login {serviceName,
// accessToken, expiresIn}, Rocket.Chat calls the identity route with it and
// creates or merges the user itself (protocol spec §4.1).
//
// Codes and access tokens are self-contained AES-GCM-sealed blobs
// (internal/sealer) carrying the subject, the profile and the expiry, so
// nothing is stored. Codes live 60 s and are single-use: redeemed codes are
// recorded in rcsso's store (Config.Once), so every instance behind a load
// balancer refuses a replay, or, without a store, in a bounded in-process
// set. Access tokens live 5 minutes by default: they only serve the one
// login.
package oauthprovider

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/sealer"
)

// Defaults for Config.
const (
	DefaultAccessTokenTTL  = 5 * time.Minute
	DefaultCodeTTL         = 60 * time.Second
	DefaultMaxPendingCodes = 1 << 16
)

// maxTokenLen bounds the encoded codes and access tokens the provider
// accepts (characters); real ones are a few hundred.
const maxTokenLen = 8 << 10

// Config configures a Provider.
type Config struct {
	// ServiceName is the Custom OAuth service's name in Rocket.Chat
	// (lower-case letters, digits and '_'), e.g. "rcsso".
	ServiceName string
	// ClientID and ClientSecret are the "Id" and "Secret" entered in
	// Rocket.Chat's Custom OAuth settings. Both required.
	ClientID     string
	ClientSecret string
	// RocketChatURL is Rocket.Chat's Site_Url (scheme, host, optional path).
	// The only redirect_uris accepted are RocketChatURL + "/_oauth/" +
	// ServiceName, the callback Rocket.Chat shows in its settings, and
	// RocketChatURL + "/oauth/" + ServiceName + "/callback", the callback of
	// the server-side OAuth flow of Rocket.Chat 8.7 (setting
	// Accounts_OAuth_Use_Modern_Flow; RocketChat/Rocket.Chat
	// apps/meteor/server/lib/oauth/addPassportCustomOAuth.ts
	// @07961f6fd44e170a3d6229ff7edfe22e52f61655).
	RocketChatURL string
	// BaseURL is the absolute URL under which browsers reach the provider's
	// routes, e.g. "https://sso.example.com/oauth"; the return_to of an
	// unidentified visitor is BaseURL + "/authorize?…".
	BaseURL string
	// LoginURL is where authorize sends visitors the identity chain does not
	// recognise, with return_to=<the authorize URL> added (rcsso's login
	// page, "<public_url>/login"). Empty: they get a 401 page.
	LoginURL string
	// Identity recognises the visitor at authorize (rcsso's identity
	// chain).
	Identity interface {
		Identify(r *http.Request) (identity.Identity, error)
	}
	// Once, when set, records redeemed codes in rcsso's store (UseOnce), so
	// a code redeemed on one rcsso instance is refused by every other and
	// after a restart. Nil keeps them in this process (bounded by
	// MaxPendingCodes).
	Once interface {
		UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error)
	}
	// Sealer seals codes and access tokens. Required. Give the provider a
	// key of its own (derived from the store key): the blobs are bearer
	// credentials.
	Sealer *sealer.Sealer
	// Username maps an identity onto the Rocket.Chat username that the
	// identity route reports (Rocket.Chat's "Username field" is
	// "username"). Default: provision.MapUsername(id.Username, id.Subject).
	Username func(identity.Identity) string
	// AccessTokenTTL is the access tokens' lifetime (DefaultAccessTokenTTL
	// when ≤ 0).
	AccessTokenTTL time.Duration
	// CodeTTL is the authorization codes' lifetime (DefaultCodeTTL when ≤ 0).
	CodeTTL time.Duration
	// MaxPendingCodes bounds the set of redeemed, not yet expired codes
	// (DefaultMaxPendingCodes when ≤ 0). When it is full the token route
	// answers 503 temporarily_unavailable rather than forget a code.
	MaxPendingCodes int
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives one record per issued code and token (subject only,
	// never a secret). Default: discard.
	Logger *slog.Logger
}

// Provider is the OAuth 2.0 provider. It is safe for concurrent use.
type Provider struct {
	cfg            Config
	callback       string // <Site_Url>/_oauth/<service>
	modernCallback string // <Site_Url>/oauth/<service>/callback (8.7)
	now            func() time.Time
	log            *slog.Logger
	used           usedCodes
	secret         [32]byte // sha256(ClientSecret)
	clientID       [32]byte // sha256(ClientID)
}

// New checks cfg and returns a Provider. Errors name the missing field.
func New(cfg Config) (*Provider, error) {
	switch {
	case cfg.ServiceName == "":
		return nil, errors.New("oauthprovider: ServiceName is required")
	case cfg.ClientID == "" || cfg.ClientSecret == "":
		return nil, errors.New("oauthprovider: ClientID and ClientSecret are required")
	case cfg.Sealer == nil:
		return nil, errors.New("oauthprovider: Sealer is required")
	}
	rc, err := url.Parse(cfg.RocketChatURL)
	if err != nil || (rc.Scheme != "http" && rc.Scheme != "https") || rc.Host == "" {
		return nil, fmt.Errorf("oauthprovider: RocketChatURL %q is not an absolute http(s) URL", cfg.RocketChatURL)
	}
	if b, err := url.Parse(cfg.BaseURL); err != nil || !b.IsAbs() {
		return nil, fmt.Errorf("oauthprovider: BaseURL %q is not an absolute URL", cfg.BaseURL)
	}
	if cfg.AccessTokenTTL <= 0 {
		cfg.AccessTokenTTL = DefaultAccessTokenTTL
	}
	if cfg.CodeTTL <= 0 {
		cfg.CodeTTL = DefaultCodeTTL
	}
	if cfg.MaxPendingCodes <= 0 {
		cfg.MaxPendingCodes = DefaultMaxPendingCodes
	}
	if cfg.Username == nil {
		cfg.Username = func(id identity.Identity) string { return provision.MapUsername(id.Username, id.Subject) }
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.BaseURL = strings.TrimRight(cfg.BaseURL, "/")
	return &Provider{
		cfg:            cfg,
		callback:       CallbackURL(cfg.RocketChatURL, cfg.ServiceName),
		modernCallback: ModernCallbackURL(cfg.RocketChatURL, cfg.ServiceName),
		now:            cfg.Now,
		log:            cfg.Logger,
		used:           usedCodes{m: map[string]time.Time{}, max: cfg.MaxPendingCodes},
		secret:         sha256.Sum256([]byte(cfg.ClientSecret)),
		clientID:       sha256.Sum256([]byte(cfg.ClientID)),
	}, nil
}

// CallbackURL is the redirect URI Rocket.Chat uses for a Custom OAuth
// service: "<Site_Url>/_oauth/<service>" (Meteor's OAuth._redirectUri).
func CallbackURL(rocketChatURL, serviceName string) string {
	return strings.TrimRight(rocketChatURL, "/") + "/_oauth/" + serviceName
}

// ModernCallbackURL is the redirect URI of Rocket.Chat 8.7's server-side
// OAuth flow: "<Site_Url>/oauth/<service>/callback".
func ModernCallbackURL(rocketChatURL, serviceName string) string {
	return strings.TrimRight(rocketChatURL, "/") + "/oauth/" + serviceName + "/callback"
}

// Callback returns the redirect_uri Rocket.Chat's settings show (the
// provider also accepts ModernCallbackURL's).
func (p *Provider) Callback() string { return p.callback }

// validCallback reports whether uri is one of Rocket.Chat's two callbacks
// for the service (exact comparison).
func (p *Provider) validCallback(uri string) bool {
	return uri == p.callback || uri == p.modernCallback
}

// IssueAccessToken returns a new access token for id and its lifetime in
// seconds (the expiresIn of POST /api/v1/login). The token is opaque to its
// holder; the identity route turns it back into id's profile until it
// expires.
func (p *Provider) IssueAccessToken(id identity.Identity) (token string, expiresIn int) {
	exp := p.now().Add(p.cfg.AccessTokenTTL)
	token = p.seal(kindAccessToken, grant{ID: rand.Text(), Exp: exp.UnixMilli(), Profile: p.profile(id)})
	p.log.Debug("oauth access token issued", "subject", id.Subject)
	return token, int(p.cfg.AccessTokenTTL / time.Second)
}

// ---- sealed blobs ----

// Blob kinds; each is sealed with its own associated data, so a code is
// never accepted as an access token or the other way round.
const (
	kindCode        = "code"
	kindAccessToken = "access_token"
)

// profile is the person as the identity route reports it.
type profile struct {
	Subject       string   `json:"s"`
	Username      string   `json:"u"`
	Name          string   `json:"n,omitempty"`
	Email         string   `json:"e,omitempty"`
	EmailVerified bool     `json:"v,omitempty"`
	Avatar        string   `json:"a,omitempty"`
	Roles         []string `json:"r,omitempty"`
	// HasRoles distinguishes "no roles" from "roles not managed" (nil).
	HasRoles bool `json:"hr,omitempty"`
}

// grant is the sealed content of a code or an access token.
type grant struct {
	// ID is random: the single-use key of a code.
	ID string `json:"j"`
	// Exp is the expiry, Unix milliseconds.
	Exp     int64   `json:"x"`
	Profile profile `json:"p"`
	// Codes only: the redirect_uri given at authorize ("" when none was)
	// and the PKCE challenge.
	RedirectURI string `json:"r,omitempty"`
	Challenge   string `json:"c,omitempty"`
	Method      string `json:"m,omitempty"`
}

func (p *Provider) profile(id identity.Identity) profile {
	pr := profile{Subject: id.Subject, Username: p.cfg.Username(id), Name: id.Name, Avatar: id.AvatarURL}
	if id.Email != "" && id.EmailVerified {
		// An unverified address is never passed on: Rocket.Chat marks the
		// e-mail of external accounts verified and may merge by it.
		pr.Email, pr.EmailVerified = id.Email, true
	}
	if id.Roles != nil {
		pr.Roles, pr.HasRoles = id.Roles, true
	}
	return pr
}

// ad binds a blob to its kind and to this provider's client and service.
func (p *Provider) ad(kind string) string {
	return "rcsso oauthprovider\x00" + kind + "\x00" + p.cfg.ServiceName + "\x00" + p.cfg.ClientID
}

func (p *Provider) seal(kind string, g grant) string {
	pt, _ := json.Marshal(g) // plain struct: cannot fail
	return base64.RawURLEncoding.EncodeToString(p.cfg.Sealer.Seal(pt, p.ad(kind)))
}

// errBadBlob means a code or token is malformed, forged, tampered with or
// of the other kind. It carries no detail on purpose.
var errBadBlob = errors.New("oauthprovider: invalid code or token")

// open decodes and authenticates a code or access token of kind (expiry is
// the caller's business). It never panics, whatever s holds.
func (p *Provider) open(kind, s string) (grant, error) {
	if s == "" || len(s) > maxTokenLen {
		return grant{}, errBadBlob
	}
	raw, err := base64.RawURLEncoding.Strict().DecodeString(s) // one encoding per blob
	if err != nil {
		return grant{}, errBadBlob
	}
	pt, err := p.cfg.Sealer.Open(raw, p.ad(kind))
	if err != nil {
		return grant{}, errBadBlob
	}
	var g grant
	if err := json.Unmarshal(pt, &g); err != nil || g.ID == "" || g.Profile.Subject == "" {
		return grant{}, errBadBlob
	}
	return g, nil
}

func (p *Provider) expired(g grant) bool { return p.now().UnixMilli() >= g.Exp }

// ---- single-use codes ----

// usedCodes remembers redeemed codes until they expire. It is bounded:
// when full of unexpired codes it refuses to record more (and the token
// route refuses to redeem), rather than forget one that could be replayed.
type usedCodes struct {
	mu  sync.Mutex
	m   map[string]time.Time // code ID → expiry
	max int
}

// errCodeUsed and errTooManyCodes are use's failures.
var (
	errCodeUsed     = errors.New("code already used")
	errTooManyCodes = errors.New("too many codes redeemed recently")
)

// redeem records code g as redeemed: in the store when Config.Once is set
// (key "oauth-code:<id>"), else in this process.
func (p *Provider) redeem(ctx context.Context, g grant) error {
	exp := time.UnixMilli(g.Exp)
	if p.cfg.Once == nil {
		return p.used.use(g.ID, exp, p.now())
	}
	first, err := p.cfg.Once.UseOnce(ctx, "oauth-code:"+g.ID, exp)
	if err != nil {
		return err
	}
	if !first {
		return errCodeUsed
	}
	return nil
}

// use records id as redeemed (it expires at exp); errCodeUsed when it was
// already, errTooManyCodes when the set is full.
func (u *usedCodes) use(id string, exp, now time.Time) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if _, ok := u.m[id]; ok {
		return errCodeUsed
	}
	if len(u.m) >= u.max {
		for k, e := range u.m {
			if !now.Before(e) {
				delete(u.m, k)
			}
		}
		if len(u.m) >= u.max {
			return errTooManyCodes
		}
	}
	u.m[id] = exp
	return nil
}
