package mongo

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rcsso/rcsso/internal/mint"
)

const iframeTokenPath = "services.iframe.token"

// ErrEmail2FA means Rocket.Chat would answer "totp-required" to an iframe
// login of the user: it has services.email2fa.enabled and a verified
// e-mail, and e-mail two-factor authentication is on (spec §2.1). Use
// mongo-resume for such users.
// It wraps mint.ErrCannotMint.
var ErrEmail2FA = fmt.Errorf("the user has e-mail two-factor authentication, which Rocket.Chat applies to iframe logins (totp-required); use mode mongo-resume, or turn off Accounts_TwoFactorAuthentication_By_Email_Enabled: %w", mint.ErrCannotMint)

// IframeMinter is minting mode "mongo-iframe": it sets the linked user's
// services.iframe.token to a fresh random value (256 bits, base64url
// without padding: 43 characters) and answers it as mint.IframeToken
// ({"token": …}). Web and desktop clients only; the value is plaintext in
// MongoDB; see the package documentation for e-mail 2FA. Each Mint
// replaces the previous value (its holder is logged out of nothing, but
// can no longer log in with it). It implements mint.Minter, mint.Validator
// and mint.Revoker.
type IframeMinter struct {
	// Users is Rocket.Chat's users collection (required).
	Users *Users
	// SkipEmail2FACheck mints even for users with e-mail 2FA (for servers
	// whose 2FA settings are not in rocketchat_settings, e.g. forced by
	// environment variables).
	SkipEmail2FACheck bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

func (m *IframeMinter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// Mint implements mint.Minter. It needs req.Link.UserID. Errors wrap
// ErrNoUser, ErrEmail2FA or the MongoDB error (outages also
// mint.ErrUnavailable).
func (m *IframeMinter) Mint(ctx context.Context, req mint.Request) (_ mint.Token, err error) {
	defer markOutage(&err)
	uid := req.Link.UserID
	if uid == "" {
		return mint.Token{}, fmt.Errorf("mongo-iframe: %s has no Rocket.Chat user id (not provisioned)", req.Identity.Subject)
	}
	if !m.SkipEmail2FACheck {
		blocked, err := m.email2FA(ctx, uid)
		if err != nil {
			return mint.Token{}, fmt.Errorf("mongo-iframe: checking e-mail 2FA of user %s: %w", uid, err)
		}
		if blocked {
			return mint.Token{}, fmt.Errorf("mongo-iframe: user %s: %w", uid, ErrEmail2FA)
		}
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	tok := base64.RawURLEncoding.EncodeToString(b[:])
	update := bson.D{{Key: "$set", Value: bson.D{{Key: iframeTokenPath, Value: tok}, {Key: "_updatedAt", Value: mongoTime(m.now())}}}}
	res, err := m.Users.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: uid}}, update)
	if err != nil {
		return mint.Token{}, fmt.Errorf("mongo-iframe: setting the iframe token of user %s: %w", uid, err)
	}
	if res.MatchedCount == 0 {
		return mint.Token{}, fmt.Errorf("mongo-iframe: setting the iframe token of user %s: %w", uid, ErrNoUser)
	}
	return mint.Token{Value: tok, Kind: mint.IframeToken, UserID: uid}, nil
}

// email2FA reports whether Rocket.Chat would demand an e-mail code at an
// iframe login of user uid: the user has services.email2fa.enabled and a
// verified e-mail, and the settings Accounts_TwoFactorAuthentication_Enabled
// and Accounts_TwoFactorAuthentication_By_Email_Enabled are true (their
// default when absent from rocketchat_settings).
func (m *IframeMinter) email2FA(ctx context.Context, uid string) (bool, error) {
	var u struct {
		Emails   []emailDoc `bson:"emails"`
		Services struct {
			Email2FA struct {
				Enabled bool `bson:"enabled"`
			} `bson:"email2fa"`
		} `bson:"services"`
	}
	proj := bson.D{{Key: "emails", Value: 1}, {Key: "services.email2fa", Value: 1}}
	err := m.Users.coll.FindOne(ctx, bson.D{{Key: "_id", Value: uid}}, options.FindOne().SetProjection(proj)).Decode(&u)
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return false, ErrNoUser
	}
	if err != nil {
		return false, err
	}
	verified := false
	for _, e := range u.Emails {
		verified = verified || e.Verified
	}
	if !u.Services.Email2FA.Enabled || !verified {
		return false, nil
	}
	for _, id := range []string{"Accounts_TwoFactorAuthentication_Enabled", "Accounts_TwoFactorAuthentication_By_Email_Enabled"} {
		on, err := m.Users.settingBool(ctx, id, true)
		if err != nil || !on {
			return false, err
		}
	}
	return true, nil
}

// settingBool reads a boolean setting {_id, value} from
// rocketchat_settings; def when absent or not a boolean.
func (u *Users) settingBool(ctx context.Context, id string, def bool) (bool, error) {
	var s struct {
		Value any `bson:"value"`
	}
	err := u.settings.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&s)
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return def, nil
	}
	if err != nil {
		return def, fmt.Errorf("reading setting %s: %w", id, err)
	}
	if v, ok := s.Value.(bool); ok {
		return v, nil
	}
	return def, nil
}

// Validate implements mint.Validator: services.iframe.token still equals
// the token. mint.ErrRejected otherwise.
func (m *IframeMinter) Validate(ctx context.Context, t mint.Token) (err error) {
	defer markOutage(&err)
	if t.UserID == "" || t.Value == "" {
		return mint.ErrRejected
	}
	filter := bson.D{{Key: "_id", Value: t.UserID}, {Key: iframeTokenPath, Value: t.Value}}
	err = m.Users.coll.FindOne(ctx, filter, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return mint.ErrRejected
	}
	if err != nil {
		return fmt.Errorf("mongo-iframe: validating the iframe token of user %s: %w", t.UserID, err)
	}
	return nil
}

// Revoke implements mint.Revoker: it unsets the iframe token and, because
// the Rocket.Chat session an iframe login opened is an ordinary resume token
// rcsso cannot tell apart from the person's other sessions, removes every
// resume token of the user (personal access tokens stay), as Rocket.Chat's
// own users.logout does. A website logout therefore ends the person's chat
// sessions everywhere in this mode.
func (m *IframeMinter) Revoke(ctx context.Context, t mint.Token) (err error) {
	defer markOutage(&err)
	if t.UserID == "" || t.Value == "" {
		return nil
	}
	filter := bson.D{{Key: "_id", Value: t.UserID}, {Key: iframeTokenPath, Value: t.Value}}
	update := bson.D{
		{Key: "$unset", Value: bson.D{{Key: iframeTokenPath, Value: ""}}},
		{Key: "$set", Value: bson.D{{Key: "_updatedAt", Value: mongoTime(m.now())}}},
	}
	if _, err := m.Users.coll.UpdateOne(ctx, filter, update); err != nil {
		return fmt.Errorf("mongo-iframe: unsetting the iframe token of user %s: %w", t.UserID, err)
	}
	err = m.Users.modifyTokens(ctx, t.UserID, m.now, func(tokens bson.A) (bson.A, bool) {
		out := slices.DeleteFunc(slices.Clone(tokens), func(v any) bool {
			e := parseEntry(v)
			return e.doc && !e.pat
		})
		return out, len(out) != len(tokens)
	})
	if err != nil && !errors.Is(err, ErrNoUser) {
		return fmt.Errorf("mongo-iframe: ending the chat sessions of user %s: %w", t.UserID, err)
	}
	return nil
}
