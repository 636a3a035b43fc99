// Package mongotest gives tests a MongoDB: an embedded FerretDB v1.24.0
// (SQLite handler, listening on 127.0.0.1, data in t.TempDir()), or the
// real MongoDB named by the environment variable RCSSO_MONGO_URL. Test
// support only; production code never imports it.
//
// FerretDB's silent divergences from MongoDB are listed in package
// internal/rcemu/mongoembed; code tested here must stay within what both
// implement.
package mongotest

import (
	"context"
	"crypto/rand"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rcsso/rcsso/internal/rcemu/mongoembed"
)

// EnvURL names the environment variable holding a real MongoDB URL
// (e.g. "mongodb://127.0.0.1:27017/?replicaSet=rs0"). When it is set,
// Start uses that server instead of FerretDB.
const EnvURL = "RCSSO_MONGO_URL"

// Start returns a MongoDB connection string whose path is a database name
// unique to this test ("mongodb://host:port/t_<name>_<random>"), in the
// form Rocket.Chat's MONGO_URL takes. The server (FerretDB) is stopped, or
// the database (real MongoDB) dropped, when the test ends.
func Start(t testing.TB) (uri string) {
	t.Helper()
	if env := os.Getenv(EnvURL); env != "" {
		return startReal(t, env)
	}
	return StartServer(t).URI()
}

func startReal(t testing.TB, env string) string {
	t.Helper()
	u, err := url.Parse(env)
	if err != nil {
		t.Fatalf("mongotest: %s is not a URL: %v", EnvURL, err)
	}
	db := DatabaseName(t)
	u.Path = "/" + db
	uri := u.String()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := mongo.Connect(options.Client().ApplyURI(env))
		if err != nil {
			t.Errorf("mongotest: connecting to drop %s: %v", db, err)
			return
		}
		defer func() { _ = c.Disconnect(ctx) }()
		if err := c.Database(db).Drop(ctx); err != nil {
			t.Errorf("mongotest: dropping %s: %v", db, err)
		}
	})
	return uri
}

// DatabaseName is a fresh database name for t: "t_", up to 40 characters
// of the test name (letters, digits and '_' only) and 8 random characters;
// at most 51 bytes, valid for MongoDB and FerretDB.
func DatabaseName(t testing.TB) string {
	var b strings.Builder
	for _, r := range strings.ToLower(t.Name()) {
		if b.Len() >= 40 {
			break
		}
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return "t_" + b.String() + "_" + strings.ToLower(rand.Text()[:8])
}

// Server is an embedded FerretDB that a test can stop and start again on
// the same port and data (to test a MongoDB that goes away).
type Server struct {
	t    testing.TB
	dir  string
	db   string
	addr string
	srv  *mongoembed.Server
}

// StartServer starts an embedded FerretDB for t (whatever RCSSO_MONGO_URL
// says: a real server cannot be stopped by a test) and stops it when the
// test ends. Disconnect clients first (register their cleanup later) or
// the stop waits FerretDB's 3-second grace period.
func StartServer(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, dir: t.TempDir(), db: DatabaseName(t), addr: "127.0.0.1:0"}
	s.Restart()
	t.Cleanup(s.Stop)
	return s
}

// URI is the connection string with the test's database as its path,
// e.g. "mongodb://127.0.0.1:40123/t_testfoo_ab12cd34". It does not change
// across Stop and Restart.
func (s *Server) URI() string {
	return "mongodb://" + s.addr + "/" + s.db
}

// Stop stops the server (idempotent); connections fail until Restart.
func (s *Server) Stop() {
	if s.srv != nil {
		s.srv.Stop()
		s.srv = nil
	}
}

// Restart starts the server again on the same address and data directory
// (a no-op while it runs). It fails the test when the port was taken
// meanwhile.
func (s *Server) Restart() {
	s.t.Helper()
	if s.srv != nil {
		return
	}
	srv, err := mongoembed.Start(mongoembed.Config{Dir: s.dir, Addr: s.addr})
	if err != nil {
		s.t.Fatalf("mongotest: %v", err)
	}
	s.srv, s.addr = srv, srv.Addr()
}
