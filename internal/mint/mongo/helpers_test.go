package mongo

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
	"github.com/rcsso/rcsso/internal/testing/mongotest"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// connect opens Users on uri and closes it when the test ends.
func connect(t *testing.T, uri string) *Users {
	t.Helper()
	u, err := Connect(uri)
	if err != nil {
		t.Fatalf("Connect: %v", err)
	}
	t.Cleanup(func() { _ = u.Close(context.Background()) })
	return u
}

// newUsers gives the test its own database.
func newUsers(t *testing.T) *Users {
	t.Helper()
	return connect(t, mongotest.Start(t))
}

func newProv(t *testing.T, u *Users, st store.Store) *Provisioner {
	t.Helper()
	if st == nil {
		st = memory.New()
	}
	return NewProvisioner(u, st, ProvisionerOptions{}, nil)
}

func jane() identity.Identity {
	return identity.Identity{Subject: "local:jane", Source: "local", Username: "jane.doe", Name: "Jane Doe",
		Email: "jane@example.com", EmailVerified: true}
}

// doc reads a whole user document.
func doc(t *testing.T, u *Users, id string) bson.Raw {
	t.Helper()
	var m bson.Raw
	if err := u.coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&m); err != nil {
		t.Fatalf("reading user %s: %v", id, err)
	}
	return m
}

func count(t *testing.T, u *Users, filter bson.D) int64 {
	t.Helper()
	n, err := u.coll.CountDocuments(t.Context(), filter)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// tokens returns services.resume.loginTokens of user id.
func tokens(t *testing.T, u *Users, id string) bson.A {
	t.Helper()
	st, err := u.readTokens(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return st.tokens
}

// insertRC inserts a user the way Rocket.Chat's users.create does
// (password, e-mail 2FA opt-in), optionally with extra services.
func insertRC(t *testing.T, u *Users, id, username, email string, services bson.D) {
	t.Helper()
	now := time.Now().UTC()
	if services == nil {
		services = bson.D{{Key: "password", Value: bson.D{{Key: "bcrypt", Value: "$2b$10$x"}}}}
	}
	_, err := u.coll.InsertOne(t.Context(), bson.D{
		{Key: "_id", Value: id}, {Key: "createdAt", Value: now}, {Key: "_updatedAt", Value: now},
		{Key: "username", Value: username}, {Key: "name", Value: username},
		{Key: "emails", Value: bson.A{bson.D{{Key: "address", Value: email}, {Key: "verified", Value: true}}}},
		{Key: "type", Value: "user"}, {Key: "status", Value: "offline"}, {Key: "active", Value: true},
		{Key: "roles", Value: bson.A{"user"}}, {Key: "settings", Value: bson.D{}}, {Key: "services", Value: services},
	})
	if err != nil {
		t.Fatalf("inserting %s: %v", username, err)
	}
}

func pat(hashed, name string) bson.D {
	return bson.D{{Key: "hashedToken", Value: hashed}, {Key: "type", Value: "personalAccessToken"},
		{Key: "createdAt", Value: bson.DateTime(1700000000000)}, {Key: "lastTokenPart", Value: "abcdef"},
		{Key: "name", Value: name}, {Key: "bypassTwoFactor", Value: true}}
}

var (
	idRe     = regexp.MustCompile(`^[23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz]{17}$`)
	secretRe = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
)

// newUsersURI gives the test its own database and returns its URL.
func newUsersURI(t *testing.T) string {
	t.Helper()
	return mongotest.Start(t)
}

// mongotestServer is an embedded FerretDB the test can stop and restart.
func mongotestServer(t *testing.T) *mongotest.Server {
	t.Helper()
	return mongotest.StartServer(t)
}

func contextWithTimeout(t *testing.T, d time.Duration) (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.Context(), d)
}

func contains(err error, s string) bool { return err != nil && strings.Contains(err.Error(), s) }

// waitFor retries f (each try bounded by 2 s) until it succeeds or 20 s
// have passed.
func waitFor(t *testing.T, f func(ctx context.Context) (any, error)) any {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		v, err := f(ctx)
		cancel()
		if err == nil {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after 20 s: %v", err)
		}
	}
}
