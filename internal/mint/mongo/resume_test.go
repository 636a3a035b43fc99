package mongo

import (
	"context"
	"errors"
	"os"
	"reflect"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/testing/mongotest"
)

var (
	_ mint.Validator = (*ResumeMinter)(nil)
	_ mint.Revoker   = (*ResumeMinter)(nil)
	_ mint.Validator = (*IframeMinter)(nil)
	_ mint.Revoker   = (*IframeMinter)(nil)
)

// provisioned returns a users collection with jane provisioned.
func provisioned(t *testing.T) (*Users, store.Link) {
	t.Helper()
	u := newUsers(t)
	l, err := newProv(t, u, nil).Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	return u, l
}

func TestResumeMint(t *testing.T) {
	u, l := provisioned(t)
	clk := newClock()
	m := &ResumeMinter{Users: u, Now: clk.Now}
	tok, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	if tok.Kind != mint.LoginToken || tok.UserID != l.UserID || !secretRe.MatchString(tok.Value) {
		t.Fatalf("token = {Kind %q, UserID %q, %d chars}", tok.Kind, tok.UserID, len(tok.Value))
	}
	got := tokens(t, u, l.UserID)
	want := bson.A{bson.D{{Key: "when", Value: bson.NewDateTimeFromTime(clk.Now())}, {Key: "hashedToken", Value: hashToken(tok.Value)}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("loginTokens = %v, want %v", got, want)
	}
	// base64(std, padded)(sha256): 44 characters ending in "=".
	if h := hashToken(tok.Value); len(h) != 44 || h[43] != '=' {
		t.Fatalf("hashed token %q", h)
	}
	if err := m.Validate(t.Context(), tok); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	other := tok
	other.Value = randomSecret()
	if err := m.Validate(t.Context(), other); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("Validate(unknown token) = %v", err)
	}
	other = tok
	other.UserID = "NOSUCHUSER0000000"
	if err := m.Validate(t.Context(), other); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("Validate(other user) = %v", err)
	}
	// Expired after Accounts_LoginExpiration.
	clk.Advance(DefaultLoginExpiration)
	if err := m.Validate(t.Context(), tok); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("Validate after 90 days = %v", err)
	}
}

func TestResumeMintUnknownUser(t *testing.T) {
	u := newUsers(t)
	m := &ResumeMinter{Users: u}
	_, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: store.Link{Subject: "local:jane", UserID: "NOSUCHUSER0000000"}})
	if !errors.Is(err, ErrNoUser) || !contains(err, "mongo-resume: pushing the token for user NOSUCHUSER0000000") {
		t.Fatalf("Mint = %v", err)
	}
	if n := count(t, u, bson.D{}); n != 0 {
		t.Fatalf("Mint created %d documents", n)
	}
	if _, err := m.Mint(t.Context(), mint.Request{Identity: jane()}); err == nil {
		t.Fatal("Mint without a user id succeeded")
	}
}

// TestResumeCap: 51 mints leave the 50 newest {when} tokens; PATs are not
// counted and stay exactly as they were (spec §2.2).
func TestResumeCap(t *testing.T) {
	u, l := provisioned(t)
	pats := bson.A{pat("PAT-HASH-1", "ci"), pat("PAT-HASH-2", "bot")}
	if _, err := u.coll.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: l.UserID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: loginTokensPath, Value: pats}}}}); err != nil {
		t.Fatal(err)
	}
	clk := newClock()
	m := &ResumeMinter{Users: u, Now: clk.Now}
	var minted []mint.Token
	for range 51 {
		tok, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
		if err != nil {
			t.Fatal(err)
		}
		minted = append(minted, tok)
		clk.Advance(time.Second)
	}
	arr := tokens(t, u, l.UserID)
	var gotPATs bson.A
	resume := 0
	for _, v := range arr {
		if parseEntry(v).pat {
			gotPATs = append(gotPATs, v)
		} else {
			resume++
		}
	}
	if resume != 50 || !reflect.DeepEqual(gotPATs, pats) {
		t.Fatalf("%d resume tokens (want 50), PATs %v (want %v)", resume, gotPATs, pats)
	}
	if err := m.Validate(t.Context(), minted[0]); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("oldest token still valid: %v", err)
	}
	for _, tok := range minted[1:] {
		if err := m.Validate(t.Context(), tok); err != nil {
			t.Fatalf("a token among the newest 50 is rejected: %v", err)
		}
	}
	// A smaller cap trims more on the next mint; PATs stay.
	m.MaxTokens = 3
	if _, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l}); err != nil {
		t.Fatal(err)
	}
	if n := len(tokens(t, u, l.UserID)); n != 5 {
		t.Fatalf("%d tokens, want 3 + 2 PATs", n)
	}
}

// TestResumeCapConcurrent: two rcsso processes minting at once for one
// user never leave more than the cap, and never lose a PAT.
func TestResumeCapConcurrent(t *testing.T) {
	uri := newUsersURI(t)
	u1, u2 := connect(t, uri), connect(t, uri)
	l, err := newProv(t, u1, nil).Ensure(t.Context(), jane())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u1.coll.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: l.UserID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: loginTokensPath, Value: bson.A{pat("PAT-HASH-1", "ci")}}}}}); err != nil {
		t.Fatal(err)
	}
	ms := []*ResumeMinter{{Users: u1, MaxTokens: 5}, {Users: u2, MaxTokens: 5}}
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			_, err := ms[i%2].Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// A last mint trims whatever a lost race left.
	last, err := ms[0].Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	arr := tokens(t, u1, l.UserID)
	if !reflect.DeepEqual(arr[0], pat("PAT-HASH-1", "ci")) {
		t.Fatalf("the PAT changed: %v", arr)
	}
	if err := ms[1].Validate(t.Context(), last); err != nil {
		t.Fatalf("the last token: %v", err)
	}
	if os.Getenv(mongotest.EnvURL) != "" {
		// MongoDB: every $push is atomic, so exactly the cap is left.
		if len(arr) != 6 {
			t.Fatalf("loginTokens = %v; want the PAT + 5 resume tokens", arr)
		}
	} else if len(arr) < 2 || len(arr) > 6 {
		// FerretDB v1 applies an update by reading the document and
		// replacing it, without isolation: concurrent writers to one
		// document lose updates (pushes included), so fewer may be left.
		t.Fatalf("loginTokens = %v; want the PAT + at most 5 resume tokens", arr)
	}
}

// TestTrimLosesRace: a $push between the read and the guarded $set (as
// Rocket.Chat's own login does) makes the write miss and retry; the pushed
// token survives.
func TestTrimLosesRace(t *testing.T) {
	u, l := provisioned(t)
	m := &ResumeMinter{Users: u, MaxTokens: 2}
	for range 2 {
		if _, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l}); err != nil {
			t.Fatal(err)
		}
	}
	calls := 0
	racer := "RACER-HASH"
	err := u.modifyTokens(t.Context(), l.UserID, time.Now, func(a bson.A) (bson.A, bool) {
		calls++
		if calls == 1 {
			// Rocket.Chat logs the user in meanwhile (no _updatedAt change).
			_, err := u.coll.UpdateOne(context.Background(), bson.D{{Key: "_id", Value: l.UserID}},
				bson.D{{Key: "$push", Value: bson.D{{Key: loginTokensPath, Value: bson.D{
					{Key: "when", Value: time.Now().Add(time.Hour)}, {Key: "hashedToken", Value: racer}}}}}})
			if err != nil {
				t.Error(err)
			}
		}
		return trimTokens(a, "", 1)
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 {
		t.Fatalf("edit ran %d times, want 2 (one lost race)", calls)
	}
	arr := tokens(t, u, l.UserID)
	if len(arr) != 1 || parseEntry(arr[0]).hashed != racer {
		t.Fatalf("loginTokens = %v, want only the racer's token", arr)
	}
}

func TestResumeRevoke(t *testing.T) {
	u, l := provisioned(t)
	if _, err := u.coll.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: l.UserID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: loginTokensPath, Value: bson.A{pat("PAT-HASH-1", "ci")}}}}}); err != nil {
		t.Fatal(err)
	}
	m := &ResumeMinter{Users: u}
	a, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.Mint(t.Context(), mint.Request{Identity: jane(), Link: l})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(t.Context(), a); !errors.Is(err, mint.ErrRejected) {
		t.Fatalf("revoked token: Validate = %v", err)
	}
	if err := m.Validate(t.Context(), b); err != nil {
		t.Fatalf("other token: Validate = %v", err)
	}
	if n := len(tokens(t, u, l.UserID)); n != 2 {
		t.Fatalf("%d tokens left, want the PAT and b", n)
	}
	// Gone already, unknown user: no error.
	if err := m.Revoke(t.Context(), a); err != nil {
		t.Fatal(err)
	}
	if err := m.Revoke(t.Context(), mint.Token{Value: a.Value, UserID: "NOSUCHUSER0000000"}); err != nil {
		t.Fatal(err)
	}
}

func TestTrimTokens(t *testing.T) {
	d := func(h string, ms int64) bson.D {
		return bson.D{{Key: "when", Value: bson.DateTime(ms)}, {Key: "hashedToken", Value: h}}
	}
	in := bson.A{d("b", 2), pat("p", "x"), d("a", 1), d("c", 2), "junk", d("k", 0)}
	out, changed := trimTokens(in, "k", 2)
	want := bson.A{pat("p", "x"), d("c", 2), "junk", d("k", 0)}
	if !changed || !reflect.DeepEqual(out, want) {
		t.Fatalf("trimTokens = %v, %v; want %v", out, changed, want)
	}
	if _, changed := trimTokens(want, "k", 2); changed {
		t.Fatal("trimming an array within the cap changed it")
	}
}
