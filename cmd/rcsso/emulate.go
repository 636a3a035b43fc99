package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"

	"github.com/rcsso/rcsso/internal/app"
	"github.com/rcsso/rcsso/internal/rcemu"
)

func runEmulate(ctx context.Context, args []string, _, stderr io.Writer) error {
	fs := newFlagSet("emulate", "emulate --listen ADDR --admin-username U --admin-password P --create-tokens-secret S [--profile VERSION] [--iframe-url URL --api-url URL --api-method POST] [--settings-delay D] [--mongo-url URL | --mongo [--mongo-dir DIR] [--mongo-listen ADDR]]", stderr)
	listen := fs.String("listen", "127.0.0.1:3000", "address to serve the emulator on")
	logLevel := fs.String("log-level", "info", "log level (debug shows every request)")
	cfg := rcemu.Config{}
	apply := rcemu.Flags(fs, &cfg)
	fs.StringVar(&cfg.MongoURL, "mongo-url", "", "keep the users in this MongoDB, like Rocket.Chat's MONGO_URL (e.g. mongodb://127.0.0.1:27017/rocketchat), for rcsso's mongo-resume / mongo-iframe minters")
	embedded := fs.Bool("mongo", false, "keep the users in an embedded MongoDB-compatible server (FerretDB with SQLite) unless --mongo-url is given; its URL is logged")
	mongoDir := fs.String("mongo-dir", "", "data directory of the embedded server (default: a temporary directory removed on exit)")
	mongoListen := fs.String("mongo-listen", "127.0.0.1:0", "listen address of the embedded server (port 0: any free port)")
	if err := parse(fs, args); err != nil {
		return err
	}
	apply()
	if cfg.AdminPassword == "" {
		return errors.New("--admin-password is required (the emulator's admin account)")
	}
	log := newLogger(stderr, *logLevel, "text")
	cfg.Logger = log
	if *embedded && cfg.MongoURL == "" {
		stop, err := startEmbeddedMongo(&cfg, *mongoDir, *mongoListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	emu, err := rcemu.New(cfg)
	if err != nil {
		return err
	}
	defer func() { _ = emu.Close() }()
	if cfg.MongoURL != "" {
		log.Info("users are kept in MongoDB", "mongo_url", redactMongoURL(cfg.MongoURL))
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	log.Info("Rocket.Chat emulator serving", "url", "http://"+ln.Addr().String(), "profile", emu.Profile(), "admin_user_id", emu.AdminID())
	return app.ServeHTTP(ctx, ln, emu.Handler(), log)
}

// redactMongoURL hides a password in a MongoDB URL for logs.
func redactMongoURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
