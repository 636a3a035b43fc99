package mongo

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"github.com/rcsso/rcsso/internal/mint"
)

// DefaultDatabase is the database used when a MongoDB URL names none
// (Rocket.Chat's MONGO_URL normally ends in "/rocketchat").
const DefaultDatabase = "rocketchat"

// ErrNoUser means the Rocket.Chat user id is not in the users collection
// (deleted in Rocket.Chat, or the wrong database).
var ErrNoUser = errors.New("no such user in Rocket.Chat's users collection")

// markOutage wraps *err with mint.ErrUnavailable when it says MongoDB
// cannot be reached: no server could be selected (down, wrong host, server
// selection timeout), the connection failed mid-operation (the driver's
// NetworkError label), the connection pool had no free connection in time,
// or the client was disconnected. Deferred by every exported method that
// talks to MongoDB, so the server answers 503 for a MongoDB outage.
func markOutage(err *error) {
	if *err == nil || errors.Is(*err, mint.ErrUnavailable) {
		return
	}
	var sel topology.ServerSelectionError
	var wait topology.WaitQueueTimeoutError
	if errors.As(*err, &sel) || errors.As(*err, &wait) || errors.Is(*err, mongodrv.ErrClientDisconnected) || mongodrv.IsNetworkError(*err) {
		*err = fmt.Errorf("%w: %w", mint.ErrUnavailable, *err)
	}
}

// Users is Rocket.Chat's users collection (spec §5) and the
// rocketchat_settings collection next to it. It is safe for concurrent use.
type Users struct {
	coll     *mongodrv.Collection
	settings *mongodrv.Collection
	client   *mongodrv.Client // set when Connect opened it

	idxMu   sync.Mutex
	idxDone bool
}

// Connect returns the users collection of the MongoDB that url names, in
// the form of Rocket.Chat's MONGO_URL, e.g.
// "mongodb://mongo:27017/rocketchat?replicaSet=rs0": the path is the
// database (DefaultDatabase when empty). It does not contact the server;
// the first operation does, bounded by its context. Close releases it.
func Connect(url string) (*Users, error) {
	cs, err := connstring.ParseAndValidate(url)
	if err != nil {
		return nil, fmt.Errorf("mongo: parsing the MongoDB URL: %w", redactURLError(err, url))
	}
	db := cs.Database
	if db == "" {
		db = DefaultDatabase
	}
	c, err := mongodrv.Connect(options.Client().ApplyURI(url))
	if err != nil {
		return nil, fmt.Errorf("mongo: %w", redactURLError(err, url))
	}
	u := New(c.Database(db))
	u.client = c
	return u, nil
}

// redactURLError keeps a password in url out of error messages.
func redactURLError(err error, url string) error {
	cs, perr := connstring.Parse(url)
	if perr != nil || cs.Password == "" || !strings.Contains(err.Error(), cs.Password) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), cs.Password, "xxxxx"))
}

// New wraps the users collection of db (a Rocket.Chat database) for a
// caller that manages the client itself.
func New(db *mongodrv.Database) *Users {
	return &Users{coll: db.Collection("users"), settings: db.Collection("rocketchat_settings")}
}

// Collection is the users collection.
func (u *Users) Collection() *mongodrv.Collection { return u.coll }

// Close disconnects a client opened by Connect (a no-op for New).
func (u *Users) Close(ctx context.Context) error {
	if u.client == nil {
		return nil
	}
	return u.client.Disconnect(ctx)
}

// Ping checks that the server answers.
func (u *Users) Ping(ctx context.Context) error {
	return u.coll.Database().Client().Ping(ctx, nil)
}

// EnsureIndexes makes sure the users collection has unique indexes on
// username and emails.address, creating them as Meteor's accounts package
// does ({unique: true, sparse: true}, names "username_1" and
// "emails.address_1") when missing. An existing non-unique index on either
// key is an error: rcsso relies on them to create each person once. A
// successful check is remembered.
func (u *Users) EnsureIndexes(ctx context.Context) error {
	u.idxMu.Lock()
	defer u.idxMu.Unlock()
	if u.idxDone {
		return nil
	}
	keys := []string{"username", "emails.address"}
	for _, k := range keys {
		// One index per command: FerretDB v1 drops the connection on a
		// createIndexes with several.
		m := mongodrv.IndexModel{Keys: bson.D{{Key: k, Value: 1}}, Options: options.Index().SetUnique(true).SetSparse(true)}
		if _, err := u.coll.Indexes().CreateOne(ctx, m); err != nil {
			// 85 IndexOptionsConflict, 86 IndexKeySpecsConflict: an index
			// on the key exists with other options; checked below.
			var ce mongodrv.CommandError
			if !errors.As(err, &ce) || (ce.Code != 85 && ce.Code != 86) {
				return fmt.Errorf("creating the unique index on users.%s: %w", k, err)
			}
		}
	}
	// MongoDB answers success when an identical index exists; FerretDB
	// also when a non-unique one does. Check what is there.
	if err := u.checkUnique(ctx, keys); err != nil {
		return err
	}
	u.idxDone = true
	return nil
}

func (u *Users) checkUnique(ctx context.Context, keys []string) error {
	cur, err := u.coll.Indexes().List(ctx)
	if err != nil {
		return fmt.Errorf("listing the indexes of users: %w", err)
	}
	var idx []struct {
		Key    bson.D `bson:"key"`
		Unique bool   `bson:"unique"`
	}
	if err := cur.All(ctx, &idx); err != nil {
		return fmt.Errorf("listing the indexes of users: %w", err)
	}
	for _, k := range keys {
		ok := false
		for _, i := range idx {
			ok = ok || (i.Unique && len(i.Key) == 1 && i.Key[0].Key == k)
		}
		if !ok {
			return fmt.Errorf("users.%s has an index that is not unique; rcsso needs a unique one (Rocket.Chat creates {unique: true, sparse: true})", k)
		}
	}
	return nil
}

// userDoc is the part of a users document rcsso reads.
type userDoc struct {
	ID        string     `bson:"_id"`
	Username  string     `bson:"username"`
	Emails    []emailDoc `bson:"emails"`
	CreatedAt time.Time  `bson:"createdAt"`
	Active    *bool      `bson:"active"`
}

// emailDoc is one element of emails (spec §5).
type emailDoc struct {
	Address  string `bson:"address"`
	Verified bool   `bson:"verified"`
}

var userProjection = bson.D{{Key: "_id", Value: 1}, {Key: "username", Value: 1}, {Key: "emails", Value: 1}, {Key: "createdAt", Value: 1}, {Key: "active", Value: 1}}

// findOne returns the user matching filter, nil when none.
func (u *Users) findOne(ctx context.Context, filter bson.D) (*userDoc, error) {
	var d userDoc
	err := u.coll.FindOne(ctx, filter, options.FindOne().SetProjection(userProjection)).Decode(&d)
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// exists reports whether a user with _id id exists.
func (u *Users) exists(ctx context.Context, id string) (bool, error) {
	d, err := u.findOne(ctx, bson.D{{Key: "_id", Value: id}})
	return d != nil, err
}

// byID finds the user with _id id, nil when none.
func (u *Users) byID(ctx context.Context, id string) (*userDoc, error) {
	return u.findOne(ctx, bson.D{{Key: "_id", Value: id}})
}

// byEmail finds the user holding addr in emails.address, case-insensitively
// (an exact match first, then Rocket.Chat's anchored /^addr$/i, each
// confirmed with a lower-cased comparison in Go).
func (u *Users) byEmail(ctx context.Context, addr string) (*userDoc, error) {
	if addr == "" {
		return nil, nil
	}
	d, err := u.findOne(ctx, bson.D{{Key: "emails.address", Value: addr}})
	if d != nil || err != nil {
		return d, err
	}
	return u.byFold(ctx, "emails.address", addr, func(d *userDoc) bool {
		for _, e := range d.Emails {
			if strings.EqualFold(e.Address, addr) {
				return true
			}
		}
		return false
	})
}

// byUsername finds the user with that username: an exact match, else a
// case variant (which Rocket.Chat would also consider taken).
func (u *Users) byUsername(ctx context.Context, username string) (*userDoc, error) {
	d, err := u.findOne(ctx, bson.D{{Key: "username", Value: username}})
	if d != nil || err != nil {
		return d, err
	}
	return u.byFold(ctx, "username", username, func(d *userDoc) bool { return strings.EqualFold(d.Username, username) })
}

func (u *Users) byFold(ctx context.Context, field, value string, confirm func(*userDoc) bool) (*userDoc, error) {
	re := bson.Regex{Pattern: "^" + regexp.QuoteMeta(value) + "$", Options: "i"}
	cur, err := u.coll.Find(ctx, bson.D{{Key: field, Value: re}}, options.Find().SetProjection(userProjection).SetLimit(20))
	if err != nil {
		return nil, err
	}
	var docs []userDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, err
	}
	for i := range docs {
		if confirm(&docs[i]) {
			return &docs[i], nil
		}
	}
	return nil, nil
}

// mongoTime is t in MongoDB's precision (milliseconds), UTC.
func mongoTime(t time.Time) time.Time { return t.UTC().Truncate(time.Millisecond) }

// hashToken is Meteor's Accounts._hashLoginToken: base64 (standard,
// padded) of sha256(token) (spec §2.2).
func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.StdEncoding.EncodeToString(sum[:])
}

const (
	unmistakable = "23456789ABCDEFGHJKLMNPQRSTWXYZabcdefghijkmnopqrstuvwxyz"
	base64Chars  = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"
)

// randomID is Meteor's Random.id(): 17 characters of unmistakable.
func randomID() string { return randomString(17, unmistakable) }

// randomSecret is Meteor's Random.secret(): 43 characters of [A-Za-z0-9_-].
func randomSecret() string { return randomString(43, base64Chars) }

// randomString draws n characters uniformly from alphabet (at most 256)
// with crypto/rand, by rejection sampling.
func randomString(n int, alphabet string) string {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	for len(out) < n {
		_, _ = rand.Read(buf) // never fails (crypto/rand)
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}
