package rcemu

import (
	"context"
	"net/http"
	"reflect"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"

	"github.com/rcsso/rcsso/internal/testing/mongotest"
)

// mongoModePrefix: newTestServer gives tests run under TestMongoMode a
// MongoDB (mongotest: embedded FerretDB, or RCSSO_MONGO_URL).
const mongoModePrefix = "TestMongoMode/"

// TestMongoMode runs a representative subset of the emulator's tests,
// unchanged, with the users collection in MongoDB.
func TestMongoMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		f    func(*testing.T)
	}{
		{"LoginBodyVariants", TestLoginBodyVariants},
		{"LoginInactiveUser", TestLoginInactiveUser},
		{"ResumeLoginReturnsSameToken", TestResumeLoginReturnsSameToken},
		{"ResumeTokenExpiry", TestResumeTokenExpiry},
		{"IframeLogin", TestIframeLogin},
		{"TokenCapEvictsOldest", TestTokenCapEvictsOldest},
		{"TokenCapConfigurable", TestTokenCapConfigurable},
		{"Me", TestMe},
		{"LogoutPerProfile", TestLogoutPerProfile},
		{"DDPLogin", TestDDPLogin},
		{"TwoFactorEmulation", TestTwoFactorEmulation},
		{"TOTPLogin", TestTOTPLogin},
		{"EmailCodeLogin", TestEmailCodeLogin},
		{"UsersCreateSuccessShape", TestUsersCreateSuccessShape},
		{"UsersCreateConcurrentSameUsername", TestUsersCreateConcurrentSameUsername},
		{"UsersInfo", TestUsersInfo},
		{"UsersUpdate", TestUsersUpdate},
		{"CreateTokenGating", TestCreateTokenGating},
		{"CreateTokenBug40598", TestCreateTokenBug40598},
		{"UsersListDeleteActiveLogout", TestUsersListDeleteActiveLogout},
		// Rooms and teams stay in memory; their members are MongoDB users.
		{"GroupsNeedMembership", TestGroupsNeedMembership},
		{"TeamsAddMembersMembersRemove", TestTeamsAddMembersMembersRemove},
	} {
		t.Run(tc.name, tc.f)
	}
	t.Run("Document", testMongoDocument)
	t.Run("DirectWrites", testMongoDirectWrites)
	t.Run("AdminAdopted", testMongoAdminAdopted)
	t.Run("FlushKeepsConcurrentWrites", testMongoFlushKeepsConcurrentWrites)
}

// mongoUsers opens the users collection the emulator uses.
func mongoUsers(t *testing.T, uri string) *mongo.Collection {
	t.Helper()
	cs, err := connstring.ParseAndValidate(uri)
	if err != nil {
		t.Fatal(err)
	}
	c, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect(context.Background()) })
	return c.Database(cs.Database).Collection("users")
}

// testMongoDocument: users.create and a login leave a document shaped like
// Rocket.Chat's (spec §5).
func testMongoDocument(t *testing.T) {
	uri := mongotest.Start(t)
	clock := newFakeClock()
	s, ts := newTestServer(t, Config{MongoURL: uri, DisableRateLimit: true, Now: clock.Now})
	admin := adminClient(t, s, ts)
	id := createUser(t, admin, "jane.doe", "jane@example.com", "pw")
	_, tok := login(t, newClient(t, ts), "jane.doe", "pw")

	coll := mongoUsers(t, uri)
	var d bson.D
	if err := coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range d {
		keys = append(keys, e.Key)
	}
	want := []string{"_id", "createdAt", "_updatedAt", "username", "name", "emails", "type", "status", "active", "roles", "settings", "services", "lastLogin"}
	if !reflect.DeepEqual(keys, want) {
		t.Fatalf("keys = %v, want %v", keys, want)
	}
	var raw bson.Raw
	_ = coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: id}}).Decode(&raw)
	if h, _ := raw.Lookup("services", "password", "bcrypt").StringValueOK(); len(h) < 59 {
		t.Fatalf("services.password.bcrypt = %q", h)
	}
	if h, _ := raw.Lookup("services", "resume", "loginTokens", "0", "hashedToken").StringValueOK(); h != hashToken(tok) {
		t.Fatalf("hashedToken = %q, want base64(sha256(token))", h)
	}
	if w, ok := raw.Lookup("services", "resume", "loginTokens", "0", "when").TimeOK(); !ok || !w.Equal(clock.Now()) {
		t.Fatalf("when = %v", raw.Lookup("services", "resume", "loginTokens", "0", "when"))
	}
	if a, _ := raw.Lookup("emails", "0", "address").StringValueOK(); a != "jane@example.com" {
		t.Fatalf("emails = %v", raw.Lookup("emails"))
	}
	if _, err := raw.LookupErr("services", "email2fa"); err == nil {
		t.Fatal("services.email2fa set without Config.TwoFactor")
	}
}

// testMongoDirectWrites: what a bridge writes straight into MongoDB (spec
// §2.1, §2.2) logs in; what it removes stops working.
func testMongoDirectWrites(t *testing.T) {
	uri := mongotest.Start(t)
	s, ts := newTestServer(t, Config{MongoURL: uri, DisableRateLimit: true})
	admin := adminClient(t, s, ts)
	id := createUser(t, admin, "frank", "frank@example.com", "pw")
	coll := mongoUsers(t, uri)
	ctx := t.Context()

	tok := randomSecret()
	_, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$push", Value: bson.D{{Key: "services.resume.loginTokens",
		Value: bson.D{{Key: "when", Value: time.Now()}, {Key: "hashedToken", Value: hashToken(tok)}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(t, ts)
	r := c.post("/api/v1/login", map[string]any{"resume": tok}).wantStatus(t, http.StatusOK)
	if r.str("data.userId") != id || r.str("data.authToken") != tok {
		t.Fatalf("resume login: %s", r.raw)
	}
	c.as(id, tok).get("/api/v1/me").wantStatus(t, http.StatusOK)

	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "services.iframe.token", Value: "direct-iframe"}}}})
	if err != nil {
		t.Fatal(err)
	}
	r = c.post("/api/v1/login", map[string]any{"iframe": true, "token": "direct-iframe"}).wantStatus(t, http.StatusOK)
	if r.str("data.userId") != id {
		t.Fatalf("iframe login: %s", r.raw)
	}
	r = c.post("/_emu/ddp-login", map[string]any{"iframe": true, "token": "direct-iframe"}).wantStatus(t, http.StatusOK)
	if r.str("id") != id || r.str("type") != "iframe" {
		t.Fatalf("DDP iframe login: %s", r.raw)
	}
	if u, _ := s.UserByID(id); u.ResumeTokens != 3 || u.IframeToken != "direct-iframe" {
		t.Fatalf("after the logins: %+v", u)
	}

	// Gone from MongoDB: rejected.
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{
		{Key: "$set", Value: bson.D{{Key: "services.resume.loginTokens", Value: bson.A{}}}},
		{Key: "$unset", Value: bson.D{{Key: "services.iframe.token", Value: ""}}}})
	if err != nil {
		t.Fatal(err)
	}
	c.as(id, tok).get("/api/v1/me").wantStatus(t, http.StatusUnauthorized)
	c.post("/api/v1/login", map[string]any{"iframe": true, "token": "direct-iframe"}).wantStatus(t, http.StatusUnauthorized)

	// A user inserted directly (as rcsso's provisioner does) is a user.
	_, err = coll.InsertOne(ctx, bson.D{{Key: "_id", Value: "DIRECTUSER0000001"}, {Key: "createdAt", Value: time.Now()},
		{Key: "_updatedAt", Value: time.Now()}, {Key: "username", Value: "direct"}, {Key: "name", Value: "Direct"},
		{Key: "emails", Value: bson.A{bson.D{{Key: "address", Value: "direct@example.com"}, {Key: "verified", Value: true}}}},
		{Key: "type", Value: "user"}, {Key: "status", Value: "offline"}, {Key: "active", Value: true},
		{Key: "roles", Value: bson.A{"user"}}, {Key: "settings", Value: bson.D{}}, {Key: "services", Value: bson.D{}}})
	if err != nil {
		t.Fatal(err)
	}
	r = admin.get("/api/v1/users.info?username=direct").wantStatus(t, http.StatusOK)
	if r.str("user._id") != "DIRECTUSER0000001" {
		t.Fatalf("users.info: %s", r.raw)
	}
	// users.create sees the username taken in MongoDB.
	r = admin.post("/api/v1/users.create", map[string]any{"username": "direct", "email": "x@example.com", "password": "p", "name": "X"})
	if r.status != http.StatusBadRequest {
		t.Fatalf("users.create with a username taken in MongoDB: %s", r.raw)
	}
}

// testMongoAdminAdopted: a second emulator on the same database adopts the
// existing admin (new password, PAT kept) instead of failing.
func testMongoAdminAdopted(t *testing.T) {
	uri := mongotest.Start(t)
	s1, _ := newTestServer(t, Config{MongoURL: uri})
	s2, ts2 := newTestServer(t, Config{MongoURL: uri, AdminPassword: "new-password"})
	if s2.AdminID() != s1.AdminID() {
		t.Fatalf("admin ids %s, %s", s1.AdminID(), s2.AdminID())
	}
	login(t, newClient(t, ts2), "admin", "new-password")
	adminClient(t, s2, ts2).get("/api/v1/me").wantStatus(t, http.StatusOK)
	if n, err := mongoUsers(t, uri).CountDocuments(t.Context(), bson.D{}); err != nil || n != 1 {
		t.Fatalf("%d users, %v", n, err)
	}
}

// testMongoFlushKeepsConcurrentWrites: what rcsso writes to a user while
// the emulator holds it (between the load at Lock and the write-back at
// Unlock) survives: only changed fields are written, new tokens are
// $pushed and removed ones taken out by a guarded read-modify-write.
func testMongoFlushKeepsConcurrentWrites(t *testing.T) {
	uri := mongotest.Start(t)
	s, _ := newTestServer(t, Config{MongoURL: uri})
	id, err := s.AddUser(NewUser{Username: "frank", Name: "Frank", Email: "frank@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{"t1", "t2"} {
		if err := s.PushResumeToken(id, tok); err != nil {
			t.Fatal(err)
		}
	}
	coll := mongoUsers(t, uri)
	ctx := t.Context()

	s.mu.Lock()
	// rcsso, meanwhile: a token, an iframe token, a new name.
	_, err = coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{
		{Key: "$push", Value: bson.D{{Key: "services.resume.loginTokens", Value: bson.D{{Key: "when", Value: time.Now()}, {Key: "hashedToken", Value: hashToken("x")}}}}},
		{Key: "$set", Value: bson.D{{Key: "services.iframe.token", Value: "rcsso-iframe"}, {Key: "name", Value: "Frank R."}}},
	})
	if err != nil {
		s.mu.Unlock()
		t.Fatal(err)
	}
	// The emulator: logout of t1, a new login t3, a status change.
	u := s.st.users[id]
	u.removeToken(hashToken("t1"))
	s.st.pushResume(u, "t3", time.Now(), 0)
	u.status = "away"
	s.mu.Unlock()

	var raw bson.Raw
	if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	var got []string
	arr, _ := raw.Lookup("services", "resume", "loginTokens").ArrayOK()
	vals, _ := arr.Values()
	for _, v := range vals {
		got = append(got, v.Document().Lookup("hashedToken").StringValue())
	}
	want := []string{hashToken("t2"), hashToken("x"), hashToken("t3")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loginTokens = %v, want t2, x, t3 %v", got, want)
	}
	if raw.Lookup("name").StringValue() != "Frank R." || raw.Lookup("status").StringValue() != "away" ||
		raw.Lookup("services", "iframe", "token").StringValue() != "rcsso-iframe" {
		t.Fatalf("document = %v", raw)
	}
}
