package mongo

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/provision"
	"github.com/rcsso/rcsso/internal/sealer"
	"github.com/rcsso/rcsso/internal/store/memory"
)

var _ mint.Provisioner = (*Provisioner)(nil)

func TestProvisionNewUserDocument(t *testing.T) {
	u := newUsers(t)
	st := memory.New()
	clk := newClock()
	p := NewProvisioner(u, st, ProvisionerOptions{Now: clk.Now}, nil)
	l, err := p.Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	if !idRe.MatchString(l.UserID) || l.Username != "jane.doe" || l.Subject != "local:jane" {
		t.Fatalf("link = %+v", l)
	}
	if got, err := st.GetLink(t.Context(), "local:jane"); err != nil || got.UserID != l.UserID {
		t.Fatalf("stored link = %+v, %v", got, err)
	}
	var d bson.D
	if err := u.coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: l.UserID}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	now := bson.NewDateTimeFromTime(clk.Now())
	want := bson.D{
		{Key: "_id", Value: l.UserID}, {Key: "createdAt", Value: now}, {Key: "_updatedAt", Value: now},
		{Key: "username", Value: "jane.doe"}, {Key: "name", Value: "Jane Doe"},
		{Key: "emails", Value: bson.A{bson.D{{Key: "address", Value: "jane@example.com"}, {Key: "verified", Value: true}}}},
		{Key: "type", Value: "user"}, {Key: "status", Value: "offline"}, {Key: "active", Value: true},
		{Key: "roles", Value: bson.A{"user"}}, {Key: "settings", Value: bson.D{}}, {Key: "services", Value: bson.D{}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("document =\n%v\nwant\n%v", d, want)
	}
	// Again: found through the link, no second document.
	l2, err := p.Ensure(t.Context(), jane())
	if err != nil || l2.UserID != l.UserID {
		t.Fatalf("second Ensure = %+v, %v", l2, err)
	}
	if n := count(t, u, bson.D{}); n != 1 {
		t.Fatalf("%d documents, want 1", n)
	}
}

// TestProvisionedUserHasNoEmail2FA: Rocket.Chat's iframe login fails with
// totp-required for users with services.email2fa.enabled and a verified
// e-mail (spec §2.1); users rcsso inserts must not have it.
func TestProvisionedUserHasNoEmail2FA(t *testing.T) {
	u := newUsers(t)
	l, err := newProv(t, u, nil).Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	m := doc(t, u, l.UserID)
	services, ok := m.Lookup("services").DocumentOK()
	if !ok {
		t.Fatalf("services = %v", m.Lookup("services"))
	}
	if _, err := services.LookupErr("email2fa"); err == nil {
		t.Fatalf("provisioned user has services.email2fa: %v", services)
	}
	if _, err := services.LookupErr("password"); err == nil {
		t.Fatalf("provisioned user has a password: %v", services)
	}
	if n := count(t, u, bson.D{{Key: "services.email2fa.enabled", Value: true}}); n != 0 {
		t.Fatalf("%d users with email2fa", n)
	}
}

func TestProvisionUnverifiedEmailGetsPlaceholder(t *testing.T) {
	u := newUsers(t)
	id := identity.Identity{Subject: "hdr:u1", Username: "bob", Email: "bob@example.com", EmailVerified: false}
	l, err := newProv(t, u, nil).Ensure(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	m := doc(t, u, l.UserID)
	want := provision.Digest("hdr:u1")[:20] + "@users.rcsso.invalid"
	addr, _ := m.Lookup("emails", "0", "address").StringValueOK()
	verified, ok := m.Lookup("emails", "0", "verified").BooleanOK()
	name, _ := m.Lookup("name").StringValueOK()
	if addr != want || !ok || verified || name != "bob" {
		t.Fatalf("document %v; want placeholder %s unverified, name bob", m, want)
	}
}

func TestProvisionAdoptsExistingUser(t *testing.T) {
	u := newUsers(t)
	// Created in Rocket.Chat, e-mail in another case, other username.
	insertRC(t, u, "RCUSER00000000001", "jdoe", "Jane@Example.COM", nil)
	st := memory.New()
	l, err := NewProvisioner(u, st, ProvisionerOptions{Adopt: provision.AdoptVerifiedEmail}, nil).Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	if l.UserID != "RCUSER00000000001" || l.Username != "jdoe" {
		t.Fatalf("link = %+v, want the existing user", l)
	}
	if n := count(t, u, bson.D{}); n != 1 {
		t.Fatalf("%d documents, want 1", n)
	}
	// By username, when the e-mail matches exactly.
	insertRC(t, u, "RCUSER00000000002", "bob", "bob@example.com", nil)
	l, err = NewProvisioner(u, st, ProvisionerOptions{Adopt: provision.AdoptVerifiedEmail}, nil).Ensure(t.Context(), identity.Identity{Subject: "s:bob", Username: "bob", Email: "bob@example.com", EmailVerified: true})
	if err != nil || l.UserID != "RCUSER00000000002" {
		t.Fatalf("link = %+v, %v", l, err)
	}
}

func TestProvisionUsernameTakenByOtherPerson(t *testing.T) {
	u := newUsers(t)
	insertRC(t, u, "RCUSER00000000001", "jane.doe", "other@example.com", nil)
	insertRC(t, u, "RCUSER00000000002", "Sam", "sam@example.com", nil)
	p := newProv(t, u, nil)
	l, err := p.Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	if want := provision.WithSuffix("jane.doe", "local:jane"); l.Username != want || l.UserID == "RCUSER00000000001" {
		t.Fatalf("link = %+v, want username %s", l, want)
	}
	// A case variant of the username counts as taken.
	l, err = p.Ensure(t.Context(), identity.Identity{Subject: "s:sam", Username: "sam", Email: "sam2@example.com", EmailVerified: true})
	if err != nil || l.Username != provision.WithSuffix("sam", "s:sam") {
		t.Fatalf("link = %+v, %v; want the suffixed username", l, err)
	}
	// Every username taken by others (the clean one and both suffixes): ErrConflict.
	insertRC(t, u, "RCUSER00000000003", "max", "max1@example.com", nil)
	insertRC(t, u, "RCUSER00000000004", provision.WithSuffix("max", "s:max"), "max2@example.com", nil)
	insertRC(t, u, "RCUSER00000000005", "max-"+provision.Digest("s:max")[:12], "max3@example.com", nil)
	_, err = p.Ensure(t.Context(), identity.Identity{Subject: "s:max", Username: "max", Email: "max@example.com", EmailVerified: true})
	if !errors.Is(err, ErrConflict) || !errors.Is(err, provision.ErrConflict) {
		t.Fatalf("err = %v, want ErrConflict, which is a provision.ErrConflict (409 like every mode's)", err)
	}
}

func TestProvisionLinkedUserDeleted(t *testing.T) {
	u := newUsers(t)
	st := memory.New()
	p := newProv(t, u, st)
	l1, err := p.Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.coll.DeleteOne(t.Context(), bson.D{{Key: "_id", Value: l1.UserID}}); err != nil {
		t.Fatal(err)
	}
	l2, err := p.Ensure(t.Context(), jane())
	if err != nil || l2.UserID == l1.UserID || l2.UserID == "" {
		t.Fatalf("Ensure after deletion = %+v, %v; want a new user", l2, err)
	}
	if got, _ := st.GetLink(t.Context(), "local:jane"); got.UserID != l2.UserID {
		t.Fatalf("stored link %+v not updated", got)
	}
}

// TestProvisionRace: 20 concurrent first requests for one person in two
// rcsso processes (two brokers and Provisioners with their own MongoDB
// clients, sharing rcsso's store as a deployment does) end with one
// Rocket.Chat user.
func TestProvisionRace(t *testing.T) {
	uri := newUsersURI(t)
	st := memory.New()
	seal, _ := sealer.New(make([]byte, 32))
	brokers := make([]*mint.Broker, 2)
	for i := range brokers {
		brokers[i] = mint.NewBroker(st, seal, linkMinter{}, newProv(t, connect(t, uri), st), mint.BrokerConfig{RevalidateAfter: time.Hour, TTL: time.Hour}, nil)
	}
	var wg sync.WaitGroup
	ids := make([]string, 20)
	errs := make([]error, 20)
	start := make(chan struct{})
	for i := range 20 {
		wg.Go(func() {
			<-start
			tok, err := brokers[i%2].Token(t.Context(), jane(), false)
			ids[i], errs[i] = tok.UserID, err
		})
	}
	close(start)
	wg.Wait()
	for i := range 20 {
		if errs[i] != nil {
			t.Fatalf("goroutine %d: %v", i, errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("goroutine %d got user %s, goroutine 0 got %s", i, ids[i], ids[0])
		}
	}
	u := connect(t, uri)
	if n := count(t, u, bson.D{}); n != 1 {
		t.Fatalf("%d user documents, want 1", n)
	}
}

// linkMinter hands out a fake token for the linked user.
type linkMinter struct{}

func (linkMinter) Mint(_ context.Context, req mint.Request) (mint.Token, error) {
	return mint.Token{Value: "t-" + req.Link.UserID, UserID: req.Link.UserID}, nil
}

// TestProvisionDuplicateKey drives the duplicate-key paths
// deterministically: another process inserts between the look-up and the
// insert.
func TestProvisionDuplicateKey(t *testing.T) {
	u := newUsers(t)
	p := newProv(t, u, nil)
	if err := u.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}

	// A user with the person's username and e-mail appears between the
	// look-up and the insert: not rcsso's creation, so with the default
	// policy it is not linked, and the e-mail makes it a conflict.
	p.beforeInsert = func(username string) {
		if username == "jane.doe" {
			insertRC(t, u, "OTHERPROCESS00001", username, "jane@example.com", bson.D{})
		}
	}
	l, err := p.Ensure(t.Context(), jane())
	if !errors.Is(err, provision.ErrConflict) || l.UserID == "OTHERPROCESS00001" {
		t.Fatalf("Ensure = %+v, %v; want ErrConflict", l, err)
	}
	if n := count(t, u, bson.D{}); n != 1 {
		t.Fatalf("%d documents, want only the other one (nothing half-created)", n)
	}
	// With provisioning.adopt verified-email, the same person is linked.
	adopting := NewProvisioner(u, memory.New(), ProvisionerOptions{Adopt: provision.AdoptVerifiedEmail}, nil)
	if l, err = adopting.Ensure(t.Context(), jane()); err != nil || l.UserID != "OTHERPROCESS00001" {
		t.Fatalf("Ensure (verified-email) = %+v, %v; want the existing user", l, err)
	}

	// Someone else took the username meanwhile: the suffixed one.
	p.beforeInsert = func(username string) {
		if username == "sam" {
			insertRC(t, u, "SOMEONEELSE000001", "sam", "sam.other@example.com", nil)
		}
	}
	l, err = p.Ensure(t.Context(), identity.Identity{Subject: "s:sam", Username: "sam", Email: "sam@example.com", EmailVerified: true})
	if err != nil || l.Username != provision.WithSuffix("sam", "s:sam") || l.UserID == "SOMEONEELSE000001" {
		t.Fatalf("Ensure = %+v, %v; want the suffixed username", l, err)
	}

	// The unique index itself.
	_, err = u.coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "X"}, {Key: "username", Value: "sam"}})
	if !mongodrv.IsDuplicateKeyError(err) {
		t.Fatalf("inserting a second 'sam': %v, want a duplicate-key error", err)
	}
}

func TestEnsureIndexes(t *testing.T) {
	u := newUsers(t)
	if err := u.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
	cur, err := u.coll.Indexes().List(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var idx []bson.M
	if err := cur.All(t.Context(), &idx); err != nil {
		t.Fatal(err)
	}
	found := map[string]bool{}
	for _, i := range idx {
		if i["unique"] == true {
			found[i["name"].(string)] = true
		}
	}
	if !found["username_1"] || !found["emails.address_1"] {
		t.Fatalf("indexes = %v", idx)
	}
	// Idempotent, also for a second process.
	u2 := New(u.coll.Database())
	if err := u2.EnsureIndexes(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func TestEnsureIndexesRejectsNonUnique(t *testing.T) {
	u := newUsers(t)
	_, err := u.coll.Indexes().CreateOne(t.Context(), mongodrv.IndexModel{Keys: bson.D{{Key: "username", Value: 1}}, Options: options.Index().SetName("username_1")})
	if err != nil {
		t.Fatal(err)
	}
	err = u.EnsureIndexes(t.Context())
	if err == nil {
		t.Fatal("EnsureIndexes accepted a non-unique index on username")
	}
	t.Logf("error: %v", err)
}

func TestProvisionMongoDownAndBack(t *testing.T) {
	srv := mongotestServer(t)
	u := connect(t, srv.URI())
	p := newProv(t, u, nil)
	m := &ResumeMinter{Users: u}
	l, err := p.Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}

	srv.Stop()
	bob := identity.Identity{Subject: "s:bob", Username: "bob", Email: "bob@example.com", EmailVerified: true}
	ctx, cancel := contextWithTimeout(t, 300*time.Millisecond)
	_, err = p.Ensure(ctx, bob)
	cancel()
	if err == nil || !contains(err, "mongo provision:") {
		t.Fatalf("Ensure while MongoDB is down: %v", err)
	}
	ctx, cancel = contextWithTimeout(t, 300*time.Millisecond)
	_, err = m.Mint(ctx, mint.Request{Identity: jane(), Link: l})
	cancel()
	if err == nil || !contains(err, "mongo-resume: pushing the token for user "+l.UserID+":") {
		t.Fatalf("Mint while MongoDB is down: %v", err)
	}
	t.Logf("errors read like: %v", err)

	srv.Restart()
	bl := waitFor(t, func(ctx context.Context) (any, error) { return p.Ensure(ctx, bob) })
	tok := waitFor(t, func(ctx context.Context) (any, error) { return m.Mint(ctx, mint.Request{Identity: jane(), Link: l}) }).(mint.Token)
	if err := m.Validate(t.Context(), tok); err != nil {
		t.Fatalf("Validate after restart: %v", err)
	}
	if n := count(t, u, bson.D{{Key: "username", Value: "bob"}}); n != 1 {
		t.Fatalf("%d bob documents after retry, want 1 (link %+v)", n, bl)
	}
}
