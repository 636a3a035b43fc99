package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/demo"
	"github.com/rcsso/rcsso/internal/identity/local"
	"github.com/rcsso/rcsso/internal/rcemu"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("demo", "demo [--site ADDR] [--rcsso ADDR] [--rocketchat ADDR] [--profile 8.x|7.x|6.x]", stderr)
	siteAddr := fs.String("site", "127.0.0.1:8000", "demo website address (another free port is used if it is taken)")
	rcssoAddr := fs.String("rcsso", "127.0.0.1:8080", "rcsso address (another free port is used if it is taken)")
	rcAddr := fs.String("rocketchat", "127.0.0.1:3000", "Rocket.Chat emulator address (another free port is used if it is taken)")
	profile := fs.String("profile", "8.x", "emulated Rocket.Chat version: 8.x, 7.x or 6.x")
	logLevel := fs.String("log-level", "warn", "log level")
	if err := parse(fs, args); err != nil {
		return err
	}
	log := newLogger(stderr, *logLevel, "text")

	var lns [3]net.Listener
	for i, addr := range []string{*siteAddr, *rcssoAddr, *rcAddr} {
		ln, err := listenOrAny(addr)
		if err != nil {
			return err
		}
		defer ln.Close()
		lns[i] = ln
	}
	siteURL := "http://" + lns[0].Addr().String()
	rcssoURL := "http://" + lns[1].Addr().String()
	rcURL := "http://" + lns[2].Addr().String()

	adminPAT, secret := rand.Text(), rand.Text()
	emuCfg := rcemu.Config{
		Profile:              *profile,
		AdminPassword:        rand.Text(),
		AdminPAT:             adminPAT,
		CreateTokensSecret:   secret,
		CreateTokensForUsers: true,
		Settings:             map[string]any{"Site_Name": "Example Corp Chat", "Site_Url": rcURL},
		Logger:               log,
	}
	emuCfg.EnableIframeAuth(rcssoURL+"/login", rcssoURL+"/api/rocketchat/token", "POST")
	emu, err := rcemu.New(emuCfg)
	if err != nil {
		return err
	}

	cfg := config.Default()
	cfg.Listen = lns[1].Addr().String()
	cfg.PublicURL = rcssoURL
	cfg.LogLevel = *logLevel
	cfg.RocketChat.URL = rcURL
	cfg.RocketChat.AdminUserID = emu.AdminID()
	cfg.RocketChat.AdminToken = adminPAT
	if *profile == "8.x" || *profile == "" {
		cfg.RocketChat.CreateTokensSecret = secret
	}
	cfg.Store = config.Store{Type: "memory"}
	cfg.Website = config.Website{Name: "Example Corp", Origins: []string{siteURL}}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return serveHTTP(gctx, lns[2], emu.Handler(), log) })
	a, err := app.Build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	password := rand.Text()[:16]
	acct, err := local.NewAccount("demo", password, "Demo Visitor", "demo@example.com", time.Now())
	if err != nil {
		return err
	}
	if err := a.Store.CreateAccount(ctx, acct); err != nil {
		return err
	}
	g.Go(func() error { return a.Serve(gctx, lns[1]) })
	g.Go(func() error {
		return serveHTTP(gctx, lns[0], demo.Site(demo.SiteOptions{SiteURL: siteURL, RcssoURL: rcssoURL, RocketChatURL: rcURL}), log)
	})

	fmt.Fprintf(stdout, `rcsso demo is running (Ctrl-C stops it).

  Open        %s/
  Log in as   demo / %s

  Then open the chat: it is already signed in as "demo".
  Rocket.Chat emulator %s (profile %s), rcsso %s
`, siteURL, password, rcURL, emu.Profile(), rcssoURL)
	<-gctx.Done()
	cancel()
	err = g.Wait()
	fmt.Fprintln(stdout, "rcsso demo stopped.")
	return err
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
