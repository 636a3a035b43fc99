package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/config"
)

// configFlags are the flags shared by commands that read the configuration.
type configFlags struct {
	path      string
	listen    string
	publicURL string
	logLevel  string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.path, "config", os.Getenv("RCSSO_CONFIG"), "YAML configuration `file` (env RCSSO_CONFIG); every key can also be set as RCSSO_<KEY_PATH>")
	fs.StringVar(&c.listen, "listen", "", "override listen (host:port)")
	fs.StringVar(&c.publicURL, "public-url", "", "override public_url")
	fs.StringVar(&c.logLevel, "log-level", "", "override log_level (debug, info, warn, error)")
}

func (c *configFlags) load() (config.Config, error) {
	over := map[string]any{}
	if c.listen != "" {
		over["listen"] = c.listen
	}
	if c.publicURL != "" {
		over["public_url"] = c.publicURL
	}
	if c.logLevel != "" {
		over["log_level"] = c.logLevel
	}
	return config.Load(c.path, os.Environ(), over, app.Schemas()...)
}

func runServe(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("serve", "serve [--config FILE] [--listen ADDR] [--public-url URL] [--log-level LEVEL]", stderr)
	var cf configFlags
	cf.register(fs)
	check := fs.Bool("check", false, "validate the configuration and exit")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := cf.load()
	if err != nil {
		return err
	}
	if err := app.Validate(cfg); err != nil {
		return fmt.Errorf("invalid configuration:\n%w", err)
	}
	if *check {
		fmt.Fprintln(stderr, "configuration is valid")
		return nil
	}
	log := newLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	a, err := app.Build(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer a.Close()
	// SIGHUP reopens the audit log file (logrotate's postrotate).
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				if err := a.Audit.Reopen(); err != nil {
					log.Error("could not reopen the audit log; still writing to the old file", "err", err)
				} else {
					log.Info("audit log reopened", "audit_path", cfg.Audit.Path)
				}
			}
		}
	}()
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if cfg.MetricsListen != "" {
		mln, err := net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return fmt.Errorf("metrics_listen: %w", err)
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", a.Metrics.Handler())
		go func() { _ = app.ServeHTTP(ctx, mln, mux, log) }()
		log.Info("metrics serving", "listen", mln.Addr().String(), "path", "/metrics")
	}
	log.Info("rcsso serving", "version", version, "listen", ln.Addr().String(), "public_url", cfg.PublicURL,
		"api_url", cfg.PublicURL+"/api/rocketchat/token", "iframe_url", cfg.PublicURL+"/login")
	// The deployment checks (rcsso doctor's) once rcsso listens, so that
	// the reach check can reach it: each FAIL is logged at error level.
	go a.LogDoctor(ctx)
	return a.Serve(ctx, ln)
}
