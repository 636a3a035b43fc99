//go:build ferretdb

package main

import (
	"log/slog"
	"os"

	"github.com/rcsso/rcsso/internal/rcemu"
	"github.com/rcsso/rcsso/internal/rcemu/mongoembed"
)

// startEmbeddedMongo starts FerretDB (mongoembed) in dir (a temporary
// directory when empty) on addr and points cfg.MongoURL at its database
// "rocketchat". stop shuts it down and removes a temporary directory.
func startEmbeddedMongo(cfg *rcemu.Config, dir, addr string, log *slog.Logger) (stop func(), err error) {
	temp := dir == ""
	if temp {
		if dir, err = os.MkdirTemp("", "rcsso-emulate-mongo-"); err != nil {
			return nil, err
		}
	}
	srv, err := mongoembed.Start(mongoembed.Config{Dir: dir, Addr: addr})
	if err != nil {
		if temp {
			_ = os.RemoveAll(dir)
		}
		return nil, err
	}
	cfg.MongoURL = "mongodb://" + srv.Addr() + "/rocketchat"
	log.Info("embedded MongoDB-compatible server (FerretDB) started", "mongo_url", cfg.MongoURL, "dir", dir)
	return func() {
		srv.Stop()
		if temp {
			_ = os.RemoveAll(dir)
		}
	}, nil
}
