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
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"text/template"
	"time"

	"github.com/rcsso/rcsso/internal/audit"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/doctor"
	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/metrics"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/mint/mode"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/provision/rooms"
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
	// Doctor checks the deployment (rcsso doctor's checks); LogDoctor
	// logs its findings.
	Doctor *doctor.Doctor
	// Identity is the chain of identity sources, in configuration order:
	// Identify(r) names the visitor of a request that carries rcsso's
	// cookies (identity.ErrNotLoggedIn when none recognises them). The
	// demo website uses it to show who is logged in.
	Identity identity.Chain
	// Audit is the audit log (audit.path); Reopen it after log rotation.
	Audit   *audit.Recorder
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

	rec, err := audit.Open(cfg.Audit.Path, os.Stdout)
	if err != nil {
		return nil, err
	}
	sc, _ := storeConfig(cfg.Store) // checked by Validate
	st, err := sc.Open(ctx, log)
	if err != nil {
		_ = rec.Close()
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			_ = st.Close()
			_ = rec.Close()
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

	rc, admin, adminKey, err := rocketChat(cfg, log, &rocketchat.Budget{Counter: st, PerMinute: cfg.RocketChat.CallsPerMinute})
	if err != nil {
		return nil, err
	}
	ictx, cancel := context.WithTimeout(ctx, 5*time.Second)
	info, infoErr := rc.Info(ictx)
	cancel()
	if infoErr != nil {
		log.Warn("Rocket.Chat does not answer yet; rcsso starts anyway and /readyz reports it", "rocketchat_url", cfg.RocketChat.URL, "err", infoErr)
	} else {
		log.Info("Rocket.Chat answers", "rocketchat_version", info.Version, "mode", cfg.Minting.Mode)
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
	sources, _ := sourceConfigs(cfg.Identity) // checked by Validate
	mc, _ := modeConfig(cfg)                  // checked by Validate
	var chain identity.Chain
	backend, err := mc.Open(ctx, mode.Deps{
		RC: rc, Info: info, InfoErr: infoErr,
		Admin: admin, AdminKey: adminKey, CreateTokensSecret: cfg.RocketChat.CreateTokensSecret,
		RocketChatURL: cfg.RocketChat.URL, PublicURL: pub,
		Store: st, Sealer: seal,
		Key: func(purpose string) []byte { return deriveKey(key, purpose) },
		Provision: provision.Config{
			Roles:                  cfg.Provision.Roles,
			JoinDefaultChannels:    cfg.Provision.JoinDefaultChannels,
			PlaceholderEmailDomain: cfg.Provision.PlaceholderEmailDomain,
			Adopt:                  adopt,
			Usernames:              usernames,
			UsernameTemplate:       usernameTmpl,
		},
		Permissions: extraPermissions(cfg, sources),
		Identity:    func() identity.Chain { return chain },
		Logger:      log,
	})
	if err != nil {
		return nil, err
	}
	if backend.Close != nil {
		defer func() {
			if !ok {
				backend.Close()
			}
		}()
	}
	policies := map[string]identity.Policy{}
	for _, src := range cfg.Identity {
		p := identity.Policy{Groups: src.Allow.Groups, Roles: src.Allow.Roles, EmailDomains: src.Allow.EmailDomains}
		if !p.Empty() {
			policies[src.SourceName()] = p
		}
	}
	bcfg := mint.BrokerConfig{
		Policies:        policies,
		RevalidateAfter: cfg.Minting.RevalidateAfter,
		TTL:             cfg.Minting.TokenTTL,
		MinMintInterval: cfg.Minting.MinInterval,
		Cache:           hot,
	}
	var roomSync *rooms.Syncer
	if len(cfg.Provision.Rooms) > 0 { // Validate checked the service account is set
		grants := make([]rooms.Grant, 0, len(cfg.Provision.Rooms))
		for _, g := range cfg.Provision.Rooms {
			grants = append(grants, rooms.Grant{Group: g.Group, Channels: g.Channels, PrivateGroups: g.PrivateGroups, Teams: g.Teams})
		}
		roomSync = rooms.New(rc, admin, st, rooms.Config{Grants: grants}, log)
		bcfg.Rooms = roomSync
	}
	broker := mint.NewBroker(st, seal, backend.Minter, backend.Provisioner, bcfg, log)

	returnTo := server.ReturnToFilter(pub, rcOrigin, websiteOrigins)
	for i, sc := range sources {
		name := cfg.Identity[i].SourceName()
		src, err := sc.Open(ctx, identity.Deps{
			Name:          name,
			Store:         st,
			Sessions:      sessions,
			PublicURL:     pub,
			SecureCookies: secure,
			SafeReturnTo:  returnTo,
			Key:           func(purpose string) []byte { return deriveKey(key, purpose) },
			OnLogout: func(ctx context.Context, subject string) error {
				audit.Record(ctx, audit.Event{Event: audit.Logout, Subject: subject, Source: name,
					Reason: "identity source logout (" + cfg.Identity[i].Type + ")"})
				_, err := broker.Forget(ctx, subject, true)
				return err
			},
			Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("identity source %q (%s): %w", name, cfg.Identity[i].Type, err)
		}
		if c, isCloser := src.(io.Closer); isCloser { // a directory's connection pool
			defer func() {
				if !ok {
					_ = c.Close()
				}
			}()
		}
		chain = append(chain, src)
	}
	warnings := readinessWarnings(roomSync, chain)

	doc := newDoctor(cfg, mc, mode.Deps{RC: rc, Info: info, InfoErr: infoErr, Admin: admin, AdminKey: adminKey,
		CreateTokensSecret: cfg.RocketChat.CreateTokensSecret, RocketChatURL: cfg.RocketChat.URL, PublicURL: pub,
		Permissions: extraPermissions(cfg, sources), Logger: log})
	met := metrics.New(broker)
	var proxies []netip.Prefix
	for _, p := range cfg.TrustedProxies {
		pp, _ := config.ParsePrefix(p) // checked by Validate
		proxies = append(proxies, pp)
	}
	srv := server.New(server.Options{
		TrustedProxies:         proxies,
		Observe:                met.Observe,
		NoStorageAccessHeaders: !cfg.Session.StorageAccessHeaders,
		PublicURL:              pub,
		RocketChatOrigin:       rcOrigin,
		WebsiteOrigins:         websiteOrigins,
		WebsiteName:            cfg.Website.Name,
		WebsiteLoginURL:        cfg.Website.LoginURL,
		NativeLogin:            cfg.Website.NativeLogin,
		Identity:               chain,
		Sessions:               sessions,
		Broker:                 broker,
		Store:                  st,
		RC:                     rc,
		Logger:                 log,
		Audit:                  rec,
		WebhookSecret:          []byte(cfg.Webhooks.Secret),
		DiagnosticsToken:       cfg.Diagnostics.Token,
		Ready:                  backend.Ready,
		Doctor:                 doc.Run,
		MintingVia:             backend.Via,
		Warnings:               warnings,
		Deprovisioner:          backend.Deprovisioner,
		UnknownSubject:         backend.UnknownSubject,
		Extra:                  backend.Routes,
	})
	ok = true
	a := &App{Config: cfg, Store: st, Broker: broker, Handler: srv, Metrics: met, RC: rc, Doctor: doc, Identity: chain, Audit: rec, log: log,
		closers: []func(){hot.Close}}
	if backend.Close != nil {
		a.closers = append(a.closers, backend.Close)
	}
	for _, src := range chain {
		if c, isCloser := src.(io.Closer); isCloser {
			a.closers = append(a.closers, func() { _ = c.Close() })
		}
	}
	if roomSync != nil {
		// Checks the rooms of provisioning.rooms now and every 5 minutes
		// (/readyz "rooms").
		rctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		done := make(chan struct{})
		go func() { defer close(done); roomSync.Run(rctx) }()
		a.closers = append(a.closers, func() { stop(); <-done })
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

// drainTimeout bounds how long Close waits for background profile and
// rooms syncs.
const drainTimeout = 10 * time.Second

// Close waits (at most drainTimeout) for the background profile and rooms
// syncs in flight, then releases the store and other connections. Call it
// after the HTTP server stopped.
func (a *App) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), drainTimeout)
	if err := a.Broker.Drain(ctx); err != nil {
		a.log.Warn("closing while background syncs still run; they are done again on the person's next visit", "err", err)
	}
	cancel()
	for _, c := range a.closers {
		c()
	}
	defer a.Audit.Close()
	return a.Store.Close()
}

// readinessWarnings is /readyz's warnings (server.Options.Warnings): the
// rooms sync's state ("rooms"), and for each identity source with a
// backend (identity.Checker, e.g. an LDAP directory) whether it answers
// ("identity_<name>"); nil when there is nothing to report. A source that
// is down does not make rcsso unready: people already logged in keep
// their chat, and the login form says the source is unavailable.
func readinessWarnings(roomSync *rooms.Syncer, chain identity.Chain) func(context.Context) map[string]string {
	var checkers []identity.Checker
	for _, src := range chain {
		if c, ok := src.(identity.Checker); ok {
			checkers = append(checkers, c)
		}
	}
	if roomSync == nil && len(checkers) == 0 {
		return nil
	}
	return func(ctx context.Context) map[string]string {
		m := make(map[string]string, 1+len(checkers))
		if roomSync != nil {
			m["rooms"] = roomSync.Status()
		}
		for _, c := range checkers {
			state := "ok"
			if err := c.Check(ctx); err != nil {
				state = "warn: " + err.Error()
			}
			m["identity_"+c.Name()] = state
		}
		return m
	}
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

// deriveKey derives a 32-byte purpose-specific key from the store key.
func deriveKey(key []byte, purpose string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}
