//go:build !ferretdb

package main

import (
	"errors"
	"log/slog"

	"github.com/rcsso/rcsso/internal/rcemu"
)

// startEmbeddedMongo is not in the default build: the embedded FerretDB
// server would triple the size of the rcsso binary that sites deploy.
func startEmbeddedMongo(*rcemu.Config, string, string, *slog.Logger) (func(), error) {
	return nil, errors.New("this rcsso was built without the embedded MongoDB-compatible server: give --mongo-url, or build with: go build -tags ferretdb ./cmd/rcsso")
}
