// Package app builds a running rcsso from a validated configuration: store,
// token sealer, Rocket.Chat client, identity sources, provisioner, minter,
// token broker and HTTP server. `rcsso serve`, `rcsso demo` and the
// end-to-end tests all start rcsso through it.
package app

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
	"github.com/rcsso/rcsso/internal/identity/header"
	jwtsrc "github.com/rcsso/rcsso/internal/identity/jwt"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/identity/oidc"
	"github.com/rcsso/rcsso/internal/identity/whoami"
	"github.com/rcsso/rcsso/internal/metrics"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/createtoken"
	mongomint "github.com/rcsso/rcsso/internal/mint/mongo"
	oauthmint "github.com/rcsso/rcsso/internal/mint/oauth"
	passwordmint "github.com/rcsso/rcsso/internal/mint/password"
	"github.com/rcsso/rcsso/internal/oauthprovider"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/server"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/websession"
)

// App is a built rcsso.
type App struct {
	Config  config.Config
	Store   store.Store
	Broker  *mint.Broker
	Handler *server.Server
	Metrics *metrics.Metrics
	RC      *rocketchat.Client
	log     *slog.Logger
	closers []func()
}

// Build validates cfg and wires every part. It asks Rocket.Chat for its
// version (to decide whether users.createToken takes a secret) but does not
// fail when Rocket.Chat is down: /readyz reports that.
func Build(ctx context.Context, cfg config.Config, log *slog.Logger) (*App, error) {
	if err := Validate(cfg); err != nil {
		return nil, err
	}
	pub, _ := url.Parse(cfg.PublicURL)
	rcURL, _ := url.Parse(cfg.RocketChat.URL)
	rcOrigin := config.Origin(rcURL)
	var websiteOrigins []string
	for _, o := range cfg.Website.Origins {
		u, _ := url.Parse(o)
		websiteOrigins = append(websiteOrigins, config.Origin(u))
	}

	sc, _ := storeConfig(cfg.Store) // checked by Validate
	st, err := sc.Open(ctx, log)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = st.Close()
		}
	}()
	key, err := encryptionKey(cfg.Store, sc, log)
	if err != nil {
		return nil, err
	}
	keys := [][]byte{key}
	for _, k := range cfg.Store.PreviousEncryptionKeys {
		old, _ := config.DecodeKey(k) // checked by Validate
		keys = append(keys, old)
	}
	seal, err := sealer.New(keys...)
	if err != nil {
		return nil, err
	}

	apiBase := cfg.RocketChat.URL
	if cfg.RocketChat.APIURL != "" {
		apiBase = cfg.RocketChat.APIURL
	}
	rc, err := rocketchat.New(rocketchat.Options{BaseURL: apiBase, Timeout: cfg.RocketChat.Timeout, Logger: log, UserAgent: "rcsso",
		MaxConcurrent: cfg.RocketChat.MaxConcurrentCalls, Budget: &rocketchat.Budget{Counter: st, PerMinute: cfg.RocketChat.CallsPerMinute}})
	if err != nil {
		return nil, fmt.Errorf("rocketchat.url: %w", err)
	}
	var admin rcadmin.Auth
	if cfg.RocketChat.AdminToken != "" {
		admin = rcadmin.PAT{UserID: cfg.RocketChat.AdminUserID, AuthToken: cfg.RocketChat.AdminToken}
	} else {
		admin = &rcadmin.Password{RC: rc, Username: cfg.RocketChat.AdminUsername, Password: cfg.RocketChat.AdminPassword}
	}

	secret := cfg.RocketChat.CreateTokensSecret
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, infoErr := rc.Info(ictx)
	cancel()
	switch {
	case infoErr != nil:
		log.Warn("Rocket.Chat does not answer yet; rcsso starts anyway and /readyz reports it", "rocketchat_url", cfg.RocketChat.URL, "err", infoErr)
	case cfg.Minting.Mode == "oauth":
		log.Info("Rocket.Chat answers", "rocketchat_version", info.Version, "mode", "oauth") // the carrier is checked below
	case majorVersion(info.Version) >= 8 && secret == "":
		log.Warn("Rocket.Chat 8.x requires CREATE_TOKENS_FOR_USERS_SECRET for users.createToken: set rocketchat.create_tokens_secret to the same value", "rocketchat_version", info.Version)
	case majorVersion(info.Version) > 0 && majorVersion(info.Version) < 8 && secret != "":
		log.Info("Rocket.Chat before 8.0 takes no createToken secret (it needs CREATE_TOKENS_FOR_USERS=true); not sending it", "rocketchat_version", info.Version)
		secret = ""
	default:
		log.Info("Rocket.Chat answers", "rocketchat_version", info.Version)
	}
	adminKey := "rocketchat.admin_user_id/admin_token"
	if cfg.RocketChat.AdminToken == "" {
		adminKey = "rocketchat.admin_username/admin_password"
	}
	capa := &capability{rc: rc, admin: admin, secret: secret, adminKey: adminKey, mode: cfg.Minting.Mode, need: neededPermissions(cfg)}
	capa.credentialsOnly = cfg.Minting.Mode == "password"
	if infoErr == nil && (cfg.Minting.Mode == "create-token" || cfg.Minting.Mode == "password") {
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := capa.Check(cctx)
		cancel()
		switch {
		case errors.Is(err, ErrIncapable):
			return nil, err
		case err != nil:
			log.Warn("could not check Rocket.Chat's token minting yet; /readyz reports it", "err", err)
		default:
			log.Info("Rocket.Chat accepts rcsso's token minting", "mode", cfg.Minting.Mode, "rocketchat_version", capa.version)
		}
	}

	sameSite, secure := cookiePolicy(cfg, pub, rcURL, log)
	cookieName := cfg.Session.CookieName
	if cookieName == "" {
		cookieName = "rcsso_session"
		if secure {
			cookieName = "__Host-rcsso_session"
		}
	}
	hot := hotcache.New(st, hotcache.Options{Size: cfg.Cache.Size, MaxAge: cfg.Cache.MaxAge, Logger: log})
	if err := hot.Start(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	defer func() {
		if !ok {
			hot.Close()
		}
	}()
	sessions := websession.New(st, websession.Options{CookieName: cookieName, Secure: secure, SameSite: sameSite, TTL: cfg.Session.TTL,
		Partitioned: cfg.Session.Partitioned != "off", Cache: hot})

	usernames, _ := provision.NewUsernameRule(cfg.Provision.UsernamePattern) // checked by Validate
	adopt, _ := provision.ParseAdoptPolicy(cfg.Provision.Adopt)              // checked by Validate
	var usernameTmpl *template.Template
	if cfg.Provision.UsernameTemplate != "" {
		usernameTmpl = template.Must(template.New("username").Option("missingkey=zero").Parse(cfg.Provision.UsernameTemplate))
	}
	pcfg := provision.Config{
		Roles:                  cfg.Provision.Roles,
		JoinDefaultChannels:    cfg.Provision.JoinDefaultChannels,
		PlaceholderEmailDomain: cfg.Provision.PlaceholderEmailDomain,
		Adopt:                  adopt,
		Usernames:              usernames,
		UsernameTemplate:       usernameTmpl,
	}
	if cfg.Minting.Mode == "password" {
		pcfg.PasswordSealer = seal
	}
	prov := provision.New(rc, admin, st, pcfg, log)
	var minter mint.Minter = &createtoken.Minter{ResumeSession: mint.ResumeSession{RC: rc}, Admin: admin, Secret: secret}
	if cfg.Minting.Mode == "password" {
		log.Warn("minting mode password is the last resort: Rocket.Chat allows 10 password logins a minute per IP, so at most 10 new chat sessions a minute; prefer create-token or oauth")
		minter = &passwordmint.Minter{ResumeSession: mint.ResumeSession{RC: rc}, Sealer: seal}
	}
	var ensurer mint.Provisioner = prov
	var deprov server.Deprovisioner = prov
	var oauthMinter *oauthmint.Minter
	var carriers *oauthmint.Detector
	if cfg.Minting.Mode == "oauth" {
		// Rocket.Chat creates or merges the user during the login; admin
		// credentials are optional and only serve deprovisioning. The
		// service it logs in through is detected now and at run time:
		// Rocket.Chat 9.0 switches Custom OAuth off without a Premium
		// licence (Detector).
		carriers = &oauthmint.Detector{RC: rc, ServiceName: cfg.Minting.OAuth.ServiceName, IdentityPath: "/oauth/identity"}
		if infoErr == nil {
			cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
			c, err := carriers.Current(cctx)
			cancel()
			switch {
			case errors.Is(err, ErrIncapable):
				return nil, err
			case err != nil:
				log.Warn("could not ask Rocket.Chat which OAuth services it runs yet; /readyz reports it", "err", err)
			case c.Builtin:
				log.Warn("minting mode oauth logs people in through "+c.Note+
					"; people whose chat account came from the Custom OAuth service are not found by WordPress (it has no Merge users) and their logins fail with \"Username already exists\": minting mode create-token keeps them",
					"service", c.Service, "rocketchat_version", info.Version)
			default:
				log.Info("minting mode oauth logs people in through "+c.Note, "service", c.Service, "rocketchat_version", info.Version)
			}
		}
		oauthMinter = &oauthmint.Minter{ResumeSession: mint.ResumeSession{RC: rc}, ServiceName: cfg.Minting.OAuth.ServiceName, Carriers: carriers} // Issuer: below
		minter, ensurer = oauthMinter, oauthmint.Provisioner{Store: st}
		if cfg.RocketChat.AdminToken == "" && cfg.RocketChat.AdminPassword == "" {
			deprov = nil
		}
	}
	var mongoUsers *mongomint.Users
	if cfg.Minting.Mode == "mongo-resume" || cfg.Minting.Mode == "mongo-iframe" {
		mongoUsers, err = mongomint.Connect(cfg.Minting.Mongo.URL)
		if err != nil {
			return nil, fmt.Errorf("minting.mongo.url: %w", err)
		}
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		if err := mongoUsers.Ping(pctx); err != nil {
			log.Warn("Rocket.Chat's MongoDB does not answer yet; /readyz reports it", "err", err)
		} else if err := mongoUsers.EnsureIndexes(pctx); err != nil {
			cancel()
			_ = mongoUsers.Close(context.Background())
			return nil, fmt.Errorf("%w: rcsso cannot write Rocket.Chat's users collection (%v); give the MongoDB user in minting.mongo.url the readWrite role on Rocket.Chat's database", ErrIncapable, err)
		}
		cancel()
		ensurer = mongomint.NewProvisioner(mongoUsers, st, mongomint.Config{Roles: cfg.Provision.Roles,
			PlaceholderEmailDomain: cfg.Provision.PlaceholderEmailDomain, Adopt: adopt, Usernames: usernames, UsernameTemplate: usernameTmpl}, log)
		if cfg.Minting.Mode == "mongo-resume" {
			minter = &mongomint.ResumeMinter{Users: mongoUsers, MaxTokens: cfg.Minting.Mongo.MaxTokens, Logger: log}
		} else {
			log.Warn("minting mode mongo-iframe answers {\"token\"}: web and desktop only (the mobile apps need loginToken), the value sits in MongoDB in plaintext, and e-mail 2FA blocks it; prefer mongo-resume")
			minter = &mongomint.IframeMinter{Users: mongoUsers}
		}
		if cfg.RocketChat.AdminToken == "" && cfg.RocketChat.AdminPassword == "" {
			deprov = nil
		}
	}
	broker := mint.NewBroker(st, seal, minter, ensurer, mint.BrokerConfig{
		RevalidateAfter: cfg.Minting.RevalidateAfter,
		TTL:             cfg.Minting.TokenTTL,
		MinMintInterval: cfg.Minting.MinInterval,
		Cache:           hot,
	}, log)

	returnTo := server.ReturnToFilter(pub, rcOrigin, websiteOrigins)
	var chain identity.Chain
	for _, s := range cfg.Identity {
		name := s.Name
		if name == "" {
			name = s.Type
		}
		mapping := claimsMapping(s.Claims)
		switch s.Type {
		case "header":
			prefixes := make([]netip.Prefix, 0, len(s.TrustedProxies))
			for _, p := range s.TrustedProxies {
				pp, _ := config.ParsePrefix(p)
				prefixes = append(prefixes, pp)
			}
			chain = append(chain, header.New(header.Config{Name: name, UserHeader: s.UserHeader, EmailHeader: s.EmailHeader, NameHeader: s.NameHeader,
				GroupsHeader: s.GroupsHeader, RoleMap: s.Claims.RoleMap, TrustedProxies: prefixes, EmailVerified: s.EmailVerified}))
		case "local":
			chain = append(chain, local.New(name, st, sessions))
		case "jwt":
			jc := jwtsrc.Config{Name: name, Cookie: s.Cookie, Header: s.AuthorizationHeader, Algorithms: s.Algorithms,
				JWKSURL: s.JWKSURL, Issuer: s.Issuer, Audience: s.Audience, Leeway: s.Leeway, RequireExp: !s.AllowMissingExp,
				Mapping: mapping, Logger: log}
			if s.SecretFile != "" {
				b, err := os.ReadFile(s.SecretFile)
				if err != nil {
					return nil, fmt.Errorf("identity source %q: secret_file: %w", name, err)
				}
				jc.Secret = []byte(strings.TrimRight(string(b), "\r\n"))
			}
			if s.PublicKeyFile != "" {
				b, err := os.ReadFile(s.PublicKeyFile)
				if err != nil {
					return nil, fmt.Errorf("identity source %q: public_key_file: %w", name, err)
				}
				jc.PublicKeyPEM = b
			}
			src, err := jwtsrc.New(ctx, jc)
			if err != nil {
				return nil, fmt.Errorf("identity source %q (jwt): %w", name, err)
			}
			chain = append(chain, src)
		case "whoami":
			src, err := whoami.New(whoami.Config{Name: name, URL: s.URL, Cookies: s.Cookies, Headers: s.Headers,
				Timeout: s.Timeout, CacheTTL: s.CacheTTL, Mapping: mapping, Logger: log})
			if err != nil {
				return nil, fmt.Errorf("identity source %q (whoami): %w", name, err)
			}
			chain = append(chain, src)
		case "oidc":
			src, err := oidc.New(ctx, oidc.Config{
				Name:          name,
				Label:         s.Label,
				Issuer:        s.Issuer,
				ClientID:      s.ClientID,
				ClientSecret:  s.ClientSecret,
				Scopes:        s.Scopes,
				RedirectURL:   strings.TrimRight(cfg.PublicURL, "/") + "/auth/" + name + "/callback",
				Mapping:       mapping,
				Sessions:      sessions,
				StateKey:      deriveKey(key, "rcsso oidc state "+name),
				SecureCookies: secure,
				SafeReturnTo:  returnTo,
				OnLogout: func(ctx context.Context, subject string) error {
					_, err := broker.Forget(ctx, subject, true)
					return err
				},
				Logger: log,
			})
			if err != nil {
				return nil, fmt.Errorf("identity source %q (oidc): %w", name, err)
			}
			chain = append(chain, src)
		}
	}

	var extra map[string]http.Handler
	if oauthMinter != nil {
		provKey, err := sealer.New(deriveKey(key, "rcsso oauth provider"))
		if err != nil {
			return nil, err
		}
		base := strings.TrimRight(cfg.PublicURL, "/")
		provider, err := oauthprovider.New(oauthprovider.Config{
			ServiceName:   cfg.Minting.OAuth.ServiceName,
			ClientID:      cfg.Minting.OAuth.ClientID,
			ClientSecret:  cfg.Minting.OAuth.ClientSecret,
			RocketChatURL: cfg.RocketChat.URL,
			BaseURL:       base + "/oauth",
			LoginURL:      base + "/login",
			Identity:      chain,
			Sealer:        provKey,
			Username:      usernameMapper(usernames, usernameTmpl),
			Logger:        log,
		})
		if err != nil {
			return nil, fmt.Errorf("minting.oauth: %w", err)
		}
		oauthMinter.Issuer = provider
		extra = map[string]http.Handler{"/oauth/": provider.Handler()}
		log.Info("OAuth provider for Rocket.Chat's Custom OAuth service", "service", cfg.Minting.OAuth.ServiceName,
			"url", base, "callback", provider.Callback())
	}

	met := metrics.New(broker)
	srv := server.New(server.Options{
		Observe:                met.Observe,
		NoStorageAccessHeaders: !cfg.Session.StorageAccessHeaders,
		PublicURL:              pub,
		RocketChatOrigin:       rcOrigin,
		WebsiteOrigins:         websiteOrigins,
		WebsiteName:            cfg.Website.Name,
		WebsiteLoginURL:        cfg.Website.LoginURL,
		Identity:               chain,
		Sessions:               sessions,
		Broker:                 broker,
		Store:                  st,
		RC:                     rc,
		Logger:                 log,
		WebhookSecret:          []byte(cfg.Webhooks.Secret),
		DiagnosticsToken:       cfg.Diagnostics.Token,
		Ready: func(ctx context.Context) error {
			switch {
			case mongoUsers != nil:
				if err := mongoUsers.Ping(ctx); err != nil {
					return fmt.Errorf("Rocket.Chat's MongoDB (minting.mongo.url): %w", err)
				}
				return nil
			case carriers != nil:
				_, err := carriers.Current(ctx)
				return err
			case cfg.Minting.Mode != "create-token" && cfg.Minting.Mode != "password":
				return nil
			}
			return capa.Check(ctx)
		},
		MintingVia: func() string {
			if carriers == nil {
				return ""
			}
			if c, ok := carriers.Last(); ok {
				return "OAuth service " + c.Service + ": " + c.Note
			}
			return ""
		},
		Deprovisioner:  deprov,
		UnknownSubject: provision.ErrUnknownSubject,
		Extra:          extra,
	})
	ok = true
	a := &App{Config: cfg, Store: st, Broker: broker, Handler: srv, Metrics: met, RC: rc, log: log, closers: []func(){hot.Close}}
	if mongoUsers != nil {
		a.closers = append(a.closers, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = mongoUsers.Close(ctx)
		})
	}
	return a, nil
}

// Serve serves rcsso on ln until ctx is done, then shuts down gracefully.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	return ServeHTTP(ctx, ln, a.Handler, a.log)
}

// ServeHTTP serves h on ln with rcsso's server timeouts (header 10 s, read
// 30 s, write 60 s, idle 120 s, 64 KiB of headers) until ctx is done, then
// shuts down gracefully within 10 s. Used for rcsso, the metrics listener,
// the emulator and the demo website.
func ServeHTTP(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := hs.Shutdown(sctx)
	if e := <-errc; !errors.Is(e, http.ErrServerClosed) && err == nil {
		err = e
	}
	return err
}

// Close releases the store and other connections.
func (a *App) Close() error {
	for _, c := range a.closers {
		c()
	}
	return a.Store.Close()
}

// cookiePolicy chooses the session cookie's SameSite and Secure attributes.
// Same-site deployments (Rocket.Chat on chat.example.com, rcsso on
// sso.example.com) get Lax: the API URL fetch from Rocket.Chat is same-site
// and carries it even where third-party cookies are blocked. Cross-site ones
// need None (and https), and then depend on third-party cookies.
func cookiePolicy(cfg config.Config, pub, rc *url.URL, log *slog.Logger) (http.SameSite, bool) {
	secure := pub.Scheme == "https"
	same := config.SameSite(pub, rc)
	switch cfg.Session.SameSite {
	case "lax":
		return http.SameSiteLaxMode, secure
	case "strict":
		return http.SameSiteStrictMode, secure
	case "none":
		return http.SameSiteNoneMode, secure
	}
	if same {
		return http.SameSiteLaxMode, secure
	}
	if !secure {
		log.Warn("Rocket.Chat and rcsso are on different sites but public_url is http: the session cookie cannot be SameSite=None, so the API URL will not see it; serve rcsso over https or put both on one site",
			"public_url", cfg.PublicURL, "rocketchat_url", cfg.RocketChat.URL)
		return http.SameSiteLaxMode, false
	}
	log.Warn("Rocket.Chat and rcsso are on different sites: the API URL flow depends on third-party cookies, which Safari, Firefox and Chrome Incognito block; prefer chat.<site> and sso.<site> on one registrable domain",
		"public_url", cfg.PublicURL, "rocketchat_url", cfg.RocketChat.URL)
	return http.SameSiteNoneMode, true
}

func majorVersion(v string) int {
	n, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return n
}

// encryptionKey returns the token encryption key: configured, or kept
// beside a one-host store (store.KeyKeeper; created 0600 on first start),
// or ephemeral for a store that dies with the process (memory). A shared
// store without a configured key is refused by Validate.
func encryptionKey(c config.Store, sc store.Config, log *slog.Logger) ([]byte, error) {
	if c.EncryptionKey != "" {
		return config.DecodeKey(c.EncryptionKey)
	}
	kk, ok := sc.(store.KeyKeeper)
	if !ok {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k, nil
	}
	path := kk.KeyPath()
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := config.DecodeKey(string(b))
		if err != nil {
			return nil, fmt.Errorf("store.encryption_key: %s: %w", path, err)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("store.encryption_key: %w", err)
	}
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store.encryption_key: creating %s: %w", path, err)
	}
	defer f.Close()
	if _, err := f.WriteString(base64.StdEncoding.EncodeToString(k) + "\n"); err != nil {
		return nil, fmt.Errorf("store.encryption_key: writing %s: %w", path, err)
	}
	log.Info("generated the token encryption key; back it up with the database", "path", path)
	return k, nil
}

// claimsMapping turns configured claim names into a claims.Mapping.
func claimsMapping(c config.Claims) claims.Mapping {
	return claims.Mapping{Subject: c.Subject, Username: c.Username, Name: c.Name, Email: c.Email,
		EmailVerified: c.EmailVerified, Avatar: c.Avatar, Roles: c.Roles, RoleMap: c.RoleMap}
}

// usernameMapper is the provisioner's username mapping (template, then
// the rule) for identities that Rocket.Chat provisions itself (mode oauth).
func usernameMapper(rule provision.UsernameRule, tmpl *template.Template) func(identity.Identity) string {
	return func(id identity.Identity) string {
		name := id.Username
		if tmpl != nil {
			local, _, _ := strings.Cut(id.Email, "@")
			var b strings.Builder
			err := tmpl.Execute(&b, map[string]string{
				"Username": id.Username, "Name": id.Name, "Email": id.Email, "EmailLocal": local, "Subject": id.Subject,
			})
			if err == nil && strings.TrimSpace(b.String()) != "" {
				name = b.String()
			}
		}
		return rule.Map(name, id.Subject)
	}
}

// deriveKey derives a 32-byte purpose-specific key from the store key.
func deriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}
