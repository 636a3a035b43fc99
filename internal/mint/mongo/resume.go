package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rcsso/rcsso/internal/mint"
)

// DefaultMaxTokens is Rocket.Chat's MAX_RESUME_LOGIN_TOKENS default
// (spec §2.2).
const DefaultMaxTokens = 50

// DefaultLoginExpiration is Rocket.Chat's Accounts_LoginExpiration
// default (90 days, spec §2.2).
const DefaultLoginExpiration = 90 * 24 * time.Hour

// ResumeMinter is minting mode "mongo-resume": it creates a Meteor resume
// token (Random.secret(): 43 characters of [A-Za-z0-9_-]) for the linked
// user by pushing {when: now, hashedToken: base64(sha256(token))} into
// services.resume.loginTokens, then trims the array to MaxTokens (oldest
// {when} tokens first; personal access tokens are never counted nor
// dropped). It implements mint.Minter, mint.Validator and mint.Revoker;
// tokens are mint.LoginToken.
type ResumeMinter struct {
	// Users is Rocket.Chat's users collection (required).
	Users *Users
	// MaxTokens is the per-user cap (MAX_RESUME_LOGIN_TOKENS); default
	// DefaultMaxTokens.
	MaxTokens int
	// LoginExpiration is Accounts_LoginExpiration: Validate rejects a token
	// whose when is older; default DefaultLoginExpiration.
	LoginExpiration time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger receives a warning when trimming fails after a successful
	// push (the token is returned all the same); default discarded.
	Logger *slog.Logger
}

func (m *ResumeMinter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Mint implements mint.Minter. It needs req.Link.UserID. Errors wrap
// ErrNoUser when the user is not in the collection, else the MongoDB
// error ("mongo-resume: pushing the token for user X: …"). When the push
// succeeded but trimming did not, the token is returned and the failure
// logged: the next mint trims again. MongoDB outages wrap
// mint.ErrUnavailable.
func (m *ResumeMinter) Mint(ctx context.Context, req mint.Request) (_ mint.Token, err error) {
	defer markOutage(&err)
	uid := req.Link.UserID
	if uid == "" {
		return mint.Token{}, fmt.Errorf("mongo-resume: %s has no Rocket.Chat user id (not provisioned)", req.Identity.Subject)
	}
	tok := randomSecret()
	hashed := hashToken(tok)
	now := mongoTime(m.now())
	update := bson.D{
		{Key: "$push", Value: bson.D{{Key: loginTokensPath, Value: bson.D{{Key: "when", Value: now}, {Key: "hashedToken", Value: hashed}}}}},
		{Key: "$set", Value: bson.D{{Key: "_updatedAt", Value: now}}},
	}
	res, err := m.Users.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: uid}}, update)
	if err != nil {
		return mint.Token{}, fmt.Errorf("mongo-resume: pushing the token for user %s: %w", uid, err)
	}
	if res.MatchedCount == 0 {
		return mint.Token{}, fmt.Errorf("mongo-resume: pushing the token for user %s: %w", uid, ErrNoUser)
	}
	max := m.MaxTokens
	if max <= 0 {
		max = DefaultMaxTokens
	}
	err = m.Users.modifyTokens(ctx, uid, m.now, func(a bson.A) (bson.A, bool) { return trimTokens(a, hashed, max) })
	if err != nil {
		log := m.Logger
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		log.Warn("mongo-resume: trimming the login tokens failed; the next mint retries", "rc_user_id", uid, "max", max, "err", err)
	}
	return mint.Token{Value: tok, Kind: mint.LoginToken, UserID: uid}, nil
}

// Validate implements mint.Validator: the token's hash is still in the
// user's services.resume.loginTokens and, unless it is a personal access
// token, its when is less than LoginExpiration ago (what Rocket.Chat's
// resume login checks, spec §2.2). mint.ErrRejected otherwise; other errors
// mean MongoDB could not be asked.
func (m *ResumeMinter) Validate(ctx context.Context, t mint.Token) (err error) {
	defer markOutage(&err)
	if t.UserID == "" || t.Value == "" {
		return mint.ErrRejected
	}
	hashed := hashToken(t.Value)
	var raw bson.Raw
	filter := bson.D{{Key: "_id", Value: t.UserID}, {Key: loginTokensPath + ".hashedToken", Value: hashed}}
	err = m.Users.coll.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: loginTokensPath, Value: 1}})).Decode(&raw)
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return mint.ErrRejected
	}
	if err != nil {
		return fmt.Errorf("mongo-resume: validating the token of user %s: %w", t.UserID, err)
	}
	var tokens bson.A
	if v, err := raw.LookupErr("services", "resume", "loginTokens"); err == nil {
		_ = v.Unmarshal(&tokens)
	}
	exp := m.LoginExpiration
	if exp <= 0 {
		exp = DefaultLoginExpiration
	}
	for _, v := range tokens {
		e := parseEntry(v)
		if e.hashed != hashed {
			continue
		}
		if e.pat || (e.hasWhen && m.now().Before(e.when.Add(exp))) {
			return nil
		}
	}
	return mint.ErrRejected
}

// Revoke implements mint.Revoker: it removes the token from the user's
// services.resume.loginTokens by read-modify-write (a partial-document
// $pull does nothing on FerretDB). A token or user that is gone is not an
// error.
func (m *ResumeMinter) Revoke(ctx context.Context, t mint.Token) (err error) {
	defer markOutage(&err)
	if t.UserID == "" || t.Value == "" {
		return nil
	}
	hashed := hashToken(t.Value)
	err = m.Users.modifyTokens(ctx, t.UserID, m.now, func(a bson.A) (bson.A, bool) { return removeHashed(a, hashed) })
	if errors.Is(err, ErrNoUser) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("mongo-resume: removing the token of user %s: %w", t.UserID, err)
	}
	return nil
}
