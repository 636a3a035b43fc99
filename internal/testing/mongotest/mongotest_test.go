package mongotest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

func connect(t *testing.T, uri string) *mongo.Database {
	t.Helper()
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		t.Fatal(err)
	}
	if cs.Database == "" {
		t.Fatalf("URI %q has no database", uri)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c.Database(cs.Database)
}

func TestStart(t *testing.T) {
	uri := Start(t)
	db := connect(t, uri)
	ctx := t.Context()
	coll := db.Collection("users")
	if _, err := coll.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "username", Value: 1}}, Options: options.Index().SetUnique(true)}); err != nil {
		t.Fatal(err)
	}
	if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "a"}, {Key: "username", Value: "jane"}}); err != nil {
		t.Fatal(err)
	}
	_, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "b"}, {Key: "username", Value: "jane"}})
	if !mongo.IsDuplicateKeyError(err) {
		t.Fatalf("second insert: err = %v, want a duplicate-key error", err)
	}
	var got bson.M
	if err := coll.FindOne(ctx, bson.D{{Key: "username", Value: "jane"}}).Decode(&got); err != nil || got["_id"] != "a" {
		t.Fatalf("FindOne = %v, %v", got, err)
	}
}

func TestDatabasesAreSeparate(t *testing.T) {
	a, b := Start(t), Start(t)
	if a == b {
		t.Fatalf("two Start calls returned the same URI %q", a)
	}
	ctx := t.Context()
	if _, err := connect(t, a).Collection("c").InsertOne(ctx, bson.D{{Key: "x", Value: 1}}); err != nil {
		t.Fatal(err)
	}
	n, err := connect(t, b).Collection("c").CountDocuments(ctx, bson.D{})
	if err != nil || n != 0 {
		t.Fatalf("other database has %d documents (%v), want 0", n, err)
	}
}

func TestStopRestart(t *testing.T) {
	s := StartServer(t)
	db := connect(t, s.URI())
	coll := db.Collection("c")
	if _, err := coll.InsertOne(t.Context(), bson.D{{Key: "_id", Value: "kept"}}); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: "kept"}}).Err()
	cancel()
	if err == nil || errors.Is(err, mongo.ErrNoDocuments) {
		t.Fatalf("FindOne while stopped: err = %v, want a connection error", err)
	}
	s.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		err = coll.FindOne(ctx, bson.D{{Key: "_id", Value: "kept"}}).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("FindOne after restart: %v", err)
		}
	}
}

func TestDatabaseName(t *testing.T) {
	n := DatabaseName(t)
	if !strings.HasPrefix(n, "t_testdatabasename_") || len(n) > 63 {
		t.Fatalf("DatabaseName = %q", n)
	}
	for _, r := range n {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '_') {
			t.Fatalf("DatabaseName = %q has %q", n, r)
		}
	}
}
