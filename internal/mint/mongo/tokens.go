package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	mongodrv "go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

const loginTokensPath = "services.resume.loginTokens"

// rmwAttempts bounds read-modify-write retries after lost races.
const rmwAttempts = 16

// errLostRace means every read-modify-write attempt found the document
// changed by someone else before its write.
var errLostRace = errors.New("the token array kept changing under us; gave up after retries")

// tokenState is services.resume.loginTokens and _updatedAt as read.
type tokenState struct {
	tokens    bson.A        // elements as stored (bson.D for documents)
	present   bool          // the array exists
	updatedAt bson.RawValue // zero Type when the field is absent
}

// readTokens reads the token array of user id; ErrNoUser when absent.
func (u *Users) readTokens(ctx context.Context, id string) (tokenState, error) {
	var raw bson.Raw
	proj := bson.D{{Key: "_updatedAt", Value: 1}, {Key: loginTokensPath, Value: 1}}
	err := u.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(proj)).Decode(&raw)
	if errors.Is(err, mongodrv.ErrNoDocuments) {
		return tokenState{}, ErrNoUser
	}
	if err != nil {
		return tokenState{}, err
	}
	var st tokenState
	if v, err := raw.LookupErr("_updatedAt"); err == nil {
		st.updatedAt = v
	}
	if v, err := raw.LookupErr("services", "resume", "loginTokens"); err == nil {
		if v.Type != bson.TypeArray {
			return tokenState{}, fmt.Errorf("%s of user %s is a BSON %s, not an array", loginTokensPath, id, v.Type)
		}
		if err := v.Unmarshal(&st.tokens); err != nil {
			return tokenState{}, fmt.Errorf("decoding %s of user %s: %w", loginTokensPath, id, err)
		}
		st.present = true
	}
	return st, nil
}

// modifyTokens applies edit to the token array of user id by
// read-modify-write: the $set happens only if the array and _updatedAt
// are still exactly as read (a $push by Rocket.Chat or another rcsso
// process in between makes it retry). edit returns the new array and
// whether anything changed; it may run several times.
func (u *Users) modifyTokens(ctx context.Context, id string, now func() time.Time, edit func(bson.A) (bson.A, bool)) error {
	for range rmwAttempts {
		st, err := u.readTokens(ctx, id)
		if err != nil {
			return err
		}
		if !st.present {
			return nil
		}
		next, changed := edit(slices.Clone(st.tokens))
		if !changed {
			return nil
		}
		filter := bson.D{{Key: "_id", Value: id}, {Key: loginTokensPath, Value: st.tokens}}
		if st.updatedAt.Type != 0 {
			filter = append(filter, bson.E{Key: "_updatedAt", Value: st.updatedAt})
		}
		if next == nil {
			next = bson.A{}
		}
		set := bson.D{{Key: loginTokensPath, Value: next}, {Key: "_updatedAt", Value: bump(now(), st.updatedAt)}}
		res, err := u.coll.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: set}})
		if err != nil {
			return err
		}
		if res.MatchedCount == 1 {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return errLostRace
}

// bump is a new _updatedAt: now, or 1 ms after the old value when the
// clock has not passed it, so that every guarded write changes it.
func bump(now time.Time, old bson.RawValue) time.Time {
	now = mongoTime(now)
	if old.Type == bson.TypeDateTime {
		if prev := old.Time().UTC(); !now.After(prev) {
			return prev.Add(time.Millisecond)
		}
	}
	return now
}

// entry is one element of services.resume.loginTokens.
type entry struct {
	hashed  string
	when    time.Time // zero when absent
	hasWhen bool
	pat     bool // type "personalAccessToken"
	doc     bool // the element is a document at all
}

func parseEntry(v any) entry {
	d, ok := v.(bson.D)
	if !ok {
		return entry{}
	}
	e := entry{doc: true}
	for _, f := range d {
		switch f.Key {
		case "hashedToken":
			e.hashed, _ = f.Value.(string)
		case "type":
			e.pat = f.Value == "personalAccessToken"
		case "when":
			if t, ok := f.Value.(bson.DateTime); ok {
				e.when, e.hasWhen = t.Time().UTC(), true
			}
		}
	}
	return e
}

// trimTokens drops the oldest resume tokens (by when, then array order)
// beyond max, never a personal access token, a non-document element, nor
// the token hashed keep (the one just pushed, even if a skewed clock
// made another token look newer). It returns the new array and whether it
// changed.
func trimTokens(tokens bson.A, keep string, max int) (bson.A, bool) {
	type cand struct {
		i    int
		when time.Time
	}
	var resume []cand
	for i, v := range tokens {
		e := parseEntry(v)
		if e.doc && !e.pat {
			resume = append(resume, cand{i, e.when})
		}
	}
	excess := len(resume) - max
	if excess <= 0 {
		return tokens, false
	}
	slices.SortStableFunc(resume, func(a, b cand) int { return a.when.Compare(b.when) })
	drop := map[int]bool{}
	for _, c := range resume {
		if len(drop) == excess {
			break
		}
		if parseEntry(tokens[c.i]).hashed != keep {
			drop[c.i] = true
		}
	}
	out := make(bson.A, 0, len(tokens)-len(drop))
	for i, v := range tokens {
		if !drop[i] {
			out = append(out, v)
		}
	}
	return out, true
}

// removeHashed drops every element whose hashedToken is hashed.
func removeHashed(tokens bson.A, hashed string) (bson.A, bool) {
	out := slices.DeleteFunc(tokens, func(v any) bool { return parseEntry(v).hashed == hashed })
	return out, len(out) != len(tokens)
}
