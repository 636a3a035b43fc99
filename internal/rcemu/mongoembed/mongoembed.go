// Package mongoembed runs an embedded FerretDB v1.24.0 (SQLite handler): a
// MongoDB wire-protocol server inside the current process, for the
// emulator's --mongo mode (`rcsso emulate --mongo`) and for tests
// (internal/testing/mongotest). rcsso's serving path never imports it.
//
// FerretDB v1 diverges from MongoDB silently in ways that matter to
// Rocket.Chat's users collection (see
// /work/shared/reference/go-libraries-and-browsers.md §1.3): $slice inside
// $push is ignored, $elemMatch never matches, a partial-document $pull does
// nothing, there are no transactions and no collations, a unique index on
// an array field (emails.address) is not enforced, a createIndexes command
// with several indexes drops the connection, and an update reads the
// document and writes it back without isolation, so concurrent updates of
// one document can lose writes. Code meant to run
// against both uses only equality queries on (dotted) fields, $set, $unset,
// a plain $push and $setOnInsert, and trims arrays by read-modify-write.
// Telemetry is disabled by FerretDB's embedded mode (no network access).
package mongoembed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"sync"

	"github.com/FerretDB/FerretDB/ferretdb"
)

// Config configures Start.
type Config struct {
	// Dir is the directory holding the SQLite files, one per database
	// (required; created if missing). Data survives a Stop and a new Start
	// on the same Dir.
	Dir string
	// Addr is the TCP listen address (default "127.0.0.1:0", a free port).
	Addr string
	// Logger receives FerretDB's logs (default: discarded; FerretDB logs
	// every connection at info level).
	Logger *slog.Logger
}

// Server is a running embedded FerretDB.
type Server struct {
	uri  string
	addr string
	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// newMu serialises ferretdb.New, which writes a package-level variable
// (version.Get().Package) and would race when tests start servers in
// parallel.
var newMu sync.Mutex

// Start starts FerretDB and returns once it accepts connections. Errors:
// an unusable Dir or an address that cannot be listened on.
func Start(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, errors.New("mongoembed: Config.Dir is required")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("mongoembed: %w", err)
	}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	dir := cfg.Dir
	if dir[len(dir)-1] != '/' {
		dir += "/"
	}
	newMu.Lock()
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:  ferretdb.ListenerConfig{TCP: cfg.Addr},
		Handler:   "sqlite",
		SQLiteURL: "file:" + dir,
		Logger:    cfg.Logger,
	})
	newMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("mongoembed: starting FerretDB on %s: %w", cfg.Addr, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		_ = f.Run(ctx)
	}()
	// The listener exists once New returned; MongoDBURI does not block.
	s.uri = f.MongoDBURI()
	u, err := url.Parse(s.uri)
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("mongoembed: FerretDB answered URI %q: %w", s.uri, err)
	}
	s.addr = u.Host
	return s, nil
}

// URI is the server's MongoDB connection string without a database,
// e.g. "mongodb://127.0.0.1:40123/".
func (s *Server) URI() string { return s.uri }

// Addr is the address the server listens on, e.g. "127.0.0.1:40123";
// pass it as Config.Addr to start again on the same port.
func (s *Server) Addr() string { return s.addr }

// Stop closes the listener and every connection and waits until FerretDB
// has closed its SQLite files. Clients still connected delay it by up to
// 3 s (FerretDB's grace period). Calling it again is a no-op.
func (s *Server) Stop() {
	s.once.Do(s.stop)
	<-s.done
}
