package demo

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/rcemu"
)

// Options configure a demo run.
type Options struct {
	// SiteAddr, RcssoAddr and RocketChatAddr are listen addresses; a taken
	// port is replaced by a free one on the same host.
	SiteAddr, RcssoAddr, RocketChatAddr string
	// Profile is the emulated Rocket.Chat version (8.x, 7.x, 6.x).
	Profile string
	Logger  *slog.Logger
}

// Running is a started demo.
type Running struct {
	SiteURL, RcssoURL, RocketChatURL string
	// Username and Password are the demo account's credentials.
	Username, Password string
	Emulator           *rcemu.Server
	App                *app.App

	g      *errgroup.Group
	cancel context.CancelFunc
}

// Start starts the Rocket.Chat emulator, rcsso (local accounts, memory
// store) and the demo website, all on loopback, and creates the demo
// account. Stop (or cancelling ctx) stops them.
func Start(ctx context.Context, o Options) (*Running, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	log := o.Logger
	var lns []net.Listener
	closeAll := func() {
		for _, ln := range lns {
			_ = ln.Close()
		}
	}
	for _, addr := range []string{o.SiteAddr, o.RcssoAddr, o.RocketChatAddr} {
		ln, err := listenOrAny(addr)
		if err != nil {
			closeAll()
			return nil, err
		}
		lns = append(lns, ln)
	}
	r := &Running{
		SiteURL:       "http://" + lns[0].Addr().String(),
		RcssoURL:      "http://" + lns[1].Addr().String(),
		RocketChatURL: "http://" + lns[2].Addr().String(),
		Username:      "demo",
		Password:      rand.Text()[:16],
	}
	adminPAT, secret := rand.Text(), rand.Text()
	emuCfg := rcemu.Config{
		Profile:              o.Profile,
		AdminPassword:        rand.Text(),
		AdminPAT:             adminPAT,
		CreateTokensSecret:   secret,
		CreateTokensForUsers: true,
		Settings: map[string]any{"Site_Name": "Example Corp Chat", "Site_Url": r.RocketChatURL,
			// Host push flow (embed.js): commands from the demo site, events to it.
			"Iframe_Integration_receive_enable": true, "Iframe_Integration_receive_origin": r.SiteURL,
			"Iframe_Integration_send_enable": true, "Iframe_Integration_send_target_origin": r.SiteURL},
		Logger: log,
	}
	emuCfg.EnableIframeAuth(r.RcssoURL+"/login", r.RcssoURL+"/api/rocketchat/token", "POST")
	emu, err := rcemu.New(emuCfg)
	if err != nil {
		closeAll()
		return nil, err
	}
	r.Emulator = emu
	// A chat worth looking at: two more default channels besides #general,
	// which the visitor joins when rcsso creates their user
	// (provisioning.join_default_channels below), and a welcome in #general
	// (messages live in the emulator's memory until the demo stops).
	for _, c := range [][2]string{{"support", "Questions about Example Corp's products"}, {"random", "Anything else"}} {
		if _, err := emu.AddRoom(rcemu.NewRoom{Name: c[0], Topic: c[1], Default: true}); err != nil {
			closeAll()
			return nil, err
		}
	}
	if err := emu.PostMessage("general", emu.AdminID(), "Welcome to Example Corp's chat! rcsso signed you in with your website login: no second password. Say hello below."); err != nil {
		closeAll()
		return nil, err
	}

	cfg := config.Default()
	cfg.Listen = lns[1].Addr().String()
	cfg.PublicURL = r.RcssoURL
	cfg.RocketChat.URL = r.RocketChatURL
	cfg.RocketChat.AdminUserID = emu.AdminID()
	cfg.RocketChat.AdminToken = adminPAT
	cfg.RocketChat.CreateTokensSecret = secret
	cfg.Store = config.Store{Type: "memory"}
	cfg.Website = config.Website{Name: "Example Corp", Origins: []string{r.SiteURL}}
	cfg.Provision.JoinDefaultChannels = true

	ctx, cancel := context.WithCancel(ctx)
	r.cancel = cancel
	g, gctx := errgroup.WithContext(ctx)
	r.g = g
	g.Go(func() error { return app.ServeHTTP(gctx, lns[2], emu.Handler(), log) })
	a, err := app.Build(ctx, cfg, log)
	if err != nil {
		cancel()
		closeAll()
		_ = g.Wait()
		return nil, err
	}
	r.App = a
	acct, err := local.NewAccount(r.Username, r.Password, "Demo Visitor", "demo@example.com", time.Now())
	if err == nil {
		err = a.Store.CreateAccount(ctx, acct)
	}
	if err != nil {
		cancel()
		closeAll()
		_ = g.Wait()
		_ = a.Close()
		return nil, err
	}
	g.Go(func() error { return a.Serve(gctx, lns[1]) })
	g.Go(func() error {
		site := Site(SiteOptions{SiteURL: r.SiteURL, RcssoURL: r.RcssoURL, RocketChatURL: r.RocketChatURL,
			Visitor: a.Identity.Identify, Logger: log})
		return app.ServeHTTP(gctx, lns[0], site, log)
	})
	return r, nil
}

// Wait blocks until the demo stops (ctx cancelled or a server failed).
func (r *Running) Wait() error {
	err := r.g.Wait()
	_ = r.App.Close()
	return err
}

// Stop stops every server and waits for them.
func (r *Running) Stop() error {
	r.cancel()
	return r.Wait()
}

// Banner is what `rcsso demo` prints.
func (r *Running) Banner() string {
	return fmt.Sprintf(`rcsso demo is running (Ctrl-C stops it).

  Open        %s/
  Log in as   %s / %s

  Then open the chat: it is already signed in as %q; say hello in #general.
  Rocket.Chat emulator %s (profile %s), rcsso %s
`, r.SiteURL, r.Username, r.Password, r.Username, r.RocketChatURL, r.Emulator.Profile(), r.RcssoURL)
}

// listenOrAny listens on addr, or on another free port of the same host
// when addr is taken.
func listenOrAny(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		return ln, nil
	}
	host, _, splitErr := net.SplitHostPort(addr)
	if splitErr != nil {
		return nil, err
	}
	return net.Listen("tcp", net.JoinHostPort(host, "0"))
}
