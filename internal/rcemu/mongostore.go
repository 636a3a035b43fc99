package rcemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"reflect"
	"slices"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/connstring"
)

// MongoDB mode (Config.MongoURL). The users collection lives in MongoDB,
// shaped like Rocket.Chat's (spec §5), so that rcsso's direct-MongoDB
// minters (package internal/mint/mongo) and the emulator read and write the
// same documents. The handlers keep working on the in-memory store: every
// s.mu.Lock reloads it from the collection and every s.mu.Unlock writes
// back what the handler changed, field by field — $set/$unset for
// profile fields, a plain $push for new login tokens and a guarded
// read-modify-write for removed ones (FerretDB ignores a partial-document
// $pull) — so that concurrent writes by rcsso to other fields or to the
// token array survive. Each lock therefore costs one read of the whole
// collection: fine for tests and demos, not for thousands of users.
// MongoDB errors are logged at error level; the request then proceeds on
// the data last read. Settings, permissions and counters stay in memory.

// mongoOpTimeout bounds each MongoDB operation of the emulator.
const mongoOpTimeout = 10 * time.Second

// serverMu is Server.mu: a mutex that, in MongoDB mode, loads the users
// collection into the in-memory store on Lock and writes the changes back
// on Unlock.
type serverMu struct {
	sync.Mutex
	mirror *mongoMirror // nil in memory mode
}

// Lock locks, then (MongoDB mode) reloads the users.
func (m *serverMu) Lock() {
	m.Mutex.Lock()
	if m.mirror != nil {
		m.mirror.load()
	}
}

// Unlock (MongoDB mode) writes the users' changes back, then unlocks.
func (m *serverMu) Unlock() {
	if m.mirror != nil {
		m.mirror.flush()
	}
	m.Mutex.Unlock()
}

// mongoMirror keeps store st in step with a users collection.
type mongoMirror struct {
	client *mongo.Client
	coll   *mongo.Collection
	st     *store
	log    *slog.Logger
	now    func() time.Time
	base   map[string]*user // the users as last loaded or written
}

// mongoDatabase is the database of Config: MongoDatabase, else the URL's
// path, else "rocketchat".
func mongoDatabase(c Config) (string, error) {
	cs, err := connstring.ParseAndValidate(c.MongoURL)
	if err != nil {
		return "", fmt.Errorf("rcemu: MongoURL: %w", err)
	}
	switch {
	case c.MongoDatabase != "":
		return c.MongoDatabase, nil
	case cs.Database != "":
		return cs.Database, nil
	}
	return "rocketchat", nil
}

// attachMongo connects to Config.MongoURL, creates the unique indexes
// Meteor creates on users (username, emails.address; unique, sparse), and
// stores the initial admin: inserted when no user has its username, else
// updated (password, admin role, PAT) and adopted with its _id.
func (s *Server) attachMongo(admin *user) error {
	db, err := mongoDatabase(s.cfg)
	if err != nil {
		return err
	}
	client, err := mongo.Connect(options.Client().ApplyURI(s.cfg.MongoURL))
	if err != nil {
		return fmt.Errorf("rcemu: MongoURL: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), mongoOpTimeout)
	defer cancel()
	fail := func(what string, err error) error {
		_ = client.Disconnect(context.Background())
		return fmt.Errorf("rcemu: MongoDB %s: %w", what, err)
	}
	if err := client.Ping(ctx, nil); err != nil {
		return fail("ping", err)
	}
	coll := client.Database(db).Collection("users")
	for _, k := range []string{"username", "emails.address"} {
		// One index per command (FerretDB v1 drops the connection on
		// several). An existing index on the key is left alone.
		m := mongo.IndexModel{Keys: bson.D{{Key: k, Value: 1}}, Options: options.Index().SetUnique(true).SetSparse(true)}
		if _, err := coll.Indexes().CreateOne(ctx, m); err != nil {
			var ce mongo.CommandError
			if !errors.As(err, &ce) || (ce.Code != 85 && ce.Code != 86) {
				return fail("creating the index on users."+k, err)
			}
		}
	}
	m := &mongoMirror{client: client, coll: coll, st: s.st, log: s.log, now: s.now, base: map[string]*user{}}
	s.mu.mirror = m
	if err := m.reload(); err != nil {
		s.mu.mirror = nil
		return fail("reading users", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.adoptAdmin(admin)
	return nil
}

// Close saves the state (Config.DataFile) and releases the MongoDB
// connection of MongoDB mode. The Server must not be used afterwards.
func (s *Server) Close() error {
	saveErr := s.Save()
	s.mu.Lock()
	m := s.mu.mirror
	s.mu.mirror = nil
	s.mu.Mutex.Unlock()
	if m == nil {
		return saveErr
	}
	ctx, cancel := context.WithTimeout(context.Background(), mongoOpTimeout)
	defer cancel()
	return errors.Join(saveErr, m.client.Disconnect(ctx))
}

// MongoMode reports whether the users live in MongoDB (Config.MongoURL).
func (s *Server) MongoMode() bool { return s.cfg.MongoURL != "" }

// load reloads the users, logging failures.
func (m *mongoMirror) load() {
	if err := m.reload(); err != nil {
		m.log.Error("rcemu: reading users from MongoDB failed; using the last copy", "err", err)
	}
}

// reload replaces the store's users by the collection's, in natural
// (insertion) order.
func (m *mongoMirror) reload() error {
	ctx, cancel := context.WithTimeout(context.Background(), mongoOpTimeout)
	defer cancel()
	cur, err := m.coll.Find(ctx, bson.D{})
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	fresh := newStore()
	fresh.seq = m.st.seq
	base := map[string]*user{}
	for cur.Next(ctx) {
		u, err := userFromBSON(cur.Current, &fresh.seq)
		if err != nil {
			m.log.Warn("rcemu: skipping a users document the emulator cannot read", "err", err)
			continue
		}
		fresh.insert(u)
		base[u.id] = u.clone()
	}
	if err := cur.Err(); err != nil {
		return err
	}
	*m.st = *fresh
	m.base = base
	return nil
}

// flush writes what changed since the last load, logging failures.
func (m *mongoMirror) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), mongoOpTimeout)
	defer cancel()
	for _, id := range m.st.order {
		u := m.st.users[id]
		b := m.base[id]
		var err error
		if b == nil {
			_, err = m.coll.InsertOne(ctx, userToBSON(u))
		} else {
			err = m.update(ctx, b, u)
		}
		if err != nil {
			m.log.Error("rcemu: writing a user to MongoDB failed", "rc_user_id", id, "err", err)
			continue
		}
		m.base[id] = u.clone()
	}
	for id := range m.base {
		if m.st.users[id] == nil {
			if _, err := m.coll.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
				m.log.Error("rcemu: deleting a user in MongoDB failed", "rc_user_id", id, "err", err)
				continue
			}
			delete(m.base, id)
		}
	}
}

// update writes the differences between b (as loaded) and u.
func (m *mongoMirror) update(ctx context.Context, b, u *user) error {
	set, unset := bson.D{}, bson.D{}
	str := func(key, old, cur string) {
		switch {
		case old == cur:
		case cur == "":
			unset = append(unset, bson.E{Key: key, Value: ""})
		default:
			set = append(set, bson.E{Key: key, Value: cur})
		}
	}
	str("username", b.username, u.username)
	str("name", b.name, u.name)
	str("type", b.typ, u.typ)
	str("status", b.status, u.status)
	str("bio", b.bio, u.bio)
	str("nickname", b.nickname, u.nickname)
	str("statusText", b.statusText, u.statusText)
	str("rcemuAvatarUrl", b.avatarURL, u.avatarURL)
	str("services.password.bcrypt", string(b.bcrypt), string(u.bcrypt))
	str("services.iframe.token", b.iframeToken, u.iframeToken)
	if !slices.Equal(b.emails, u.emails) {
		set = append(set, bson.E{Key: "emails", Value: emailsBSON(u.emails)})
	}
	if !slices.Equal(b.roles, u.roles) {
		set = append(set, bson.E{Key: "roles", Value: stringsBSON(u.roles)})
	}
	if b.active != u.active {
		set = append(set, bson.E{Key: "active", Value: u.active})
	}
	if b.requirePWChange != u.requirePWChange {
		set = append(set, bson.E{Key: "requirePasswordChange", Value: u.requirePWChange})
	}
	if !b.updatedAt.Equal(u.updatedAt) {
		set = append(set, bson.E{Key: "_updatedAt", Value: u.updatedAt})
	}
	if !b.lastLogin.Equal(u.lastLogin) && !u.lastLogin.IsZero() {
		set = append(set, bson.E{Key: "lastLogin", Value: u.lastLogin})
	}
	if b.email2fa != u.email2fa {
		if u.email2fa {
			set = append(set, bson.E{Key: "services.email2fa", Value: bson.D{{Key: "enabled", Value: true}, {Key: "changedAt", Value: m.now()}}})
		} else {
			unset = append(unset, bson.E{Key: "services.email2fa", Value: ""})
		}
	}
	if b.totpSecret != u.totpSecret {
		if u.totpSecret != "" {
			set = append(set, bson.E{Key: "services.totp", Value: bson.D{{Key: "enabled", Value: true}, {Key: "secret", Value: u.totpSecret}}})
		} else {
			unset = append(unset, bson.E{Key: "services.totp", Value: ""})
		}
	}
	if !slices.EqualFunc(b.emailCodes, u.emailCodes, func(x, y emailCode) bool { return string(x.hash) == string(y.hash) && x.expire.Equal(y.expire) }) {
		set = append(set, bson.E{Key: "services.emailCode", Value: emailCodesBSON(u.emailCodes)})
	}
	if !reflect.DeepEqual(b.settings, u.settings) {
		set = append(set, bson.E{Key: "settings", Value: settingsBSON(u.settings)})
	}
	for name, id := range u.oauth {
		if b.oauth[name] != id {
			set = append(set, bson.E{Key: "services." + name + ".id", Value: id})
		}
	}
	for name := range b.oauth {
		if _, ok := u.oauth[name]; !ok {
			unset = append(unset, bson.E{Key: "services." + name, Value: ""})
		}
	}

	// Tokens: new ones are $pushed; removed ones go by read-modify-write;
	// an emptied array is $set to [] (users.logout, deactivation).
	old := map[string]bool{}
	for _, t := range b.tokens {
		old[t.hashedToken] = true
	}
	var added bson.A
	cur := map[string]bool{}
	for _, t := range u.tokens {
		cur[t.hashedToken] = true
		if !old[t.hashedToken] {
			added = append(added, tokenBSON(t))
		}
	}
	var removed []string
	for _, t := range b.tokens {
		if !cur[t.hashedToken] {
			removed = append(removed, t.hashedToken)
		}
	}
	upd := bson.D{}
	switch {
	case len(u.tokens) == 0 && (len(b.tokens) > 0 || (u.hasResume && !b.hasResume)):
		set = append(set, bson.E{Key: "services.resume.loginTokens", Value: bson.A{}})
		removed = nil
	case len(added) > 0:
		upd = append(upd, bson.E{Key: "$push", Value: bson.D{{Key: "services.resume.loginTokens", Value: bson.D{{Key: "$each", Value: added}}}}})
	}
	if len(set) > 0 {
		upd = append(upd, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		upd = append(upd, bson.E{Key: "$unset", Value: unset})
	}
	if len(upd) > 0 {
		if _, err := m.coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: u.id}}, upd); err != nil {
			return err
		}
	}
	if len(removed) > 0 {
		return m.removeTokens(ctx, u.id, removed)
	}
	return nil
}

// removeTokens drops the entries whose hashedToken is in hashes from the
// user's token array: read it, filter it, and $set it back only if it is
// still exactly what was read (retried on a lost race).
func (m *mongoMirror) removeTokens(ctx context.Context, id string, hashes []string) error {
	drop := map[string]bool{}
	for _, h := range hashes {
		drop[h] = true
	}
	for range 16 {
		var raw bson.Raw
		err := m.coll.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
			options.FindOne().SetProjection(bson.D{{Key: "services.resume.loginTokens", Value: 1}})).Decode(&raw)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		if err != nil {
			return err
		}
		var arr bson.A
		if v, err := raw.LookupErr("services", "resume", "loginTokens"); err == nil {
			if err := v.Unmarshal(&arr); err != nil {
				return err
			}
		}
		next := bson.A{}
		for _, v := range arr {
			if d, ok := v.(bson.D); ok {
				if h, _ := lookupD(d, "hashedToken").(string); drop[h] {
					continue
				}
			}
			next = append(next, v)
		}
		if len(next) == len(arr) {
			return nil
		}
		res, err := m.coll.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: id}, {Key: "services.resume.loginTokens", Value: arr}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "services.resume.loginTokens", Value: next}}}})
		if err != nil {
			return err
		}
		if res.MatchedCount == 1 {
			return nil
		}
	}
	return errors.New("removing login tokens: the array kept changing; gave up")
}

// clone is a deep copy of u.
func (u *user) clone() *user {
	c := *u
	c.emails = slices.Clone(u.emails)
	c.roles = slices.Clone(u.roles)
	c.tokens = slices.Clone(u.tokens)
	c.bcrypt = slices.Clone(u.bcrypt)
	c.emailCodes = slices.Clone(u.emailCodes)
	c.settings = cloneAny(u.settings).(map[string]any)
	if u.oauth != nil {
		c.oauth = maps.Clone(u.oauth)
	}
	return &c
}

func cloneAny(v any) any {
	switch x := v.(type) {
	case map[string]any:
		if x == nil {
			return map[string]any(nil)
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = cloneAny(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneAny(e)
		}
		return out
	}
	return v
}

// ---- BSON shape (spec §5) ----

// userToBSON is the whole document of u.
func userToBSON(u *user) bson.D {
	d := bson.D{
		{Key: "_id", Value: u.id},
		{Key: "createdAt", Value: u.createdAt},
		{Key: "_updatedAt", Value: u.updatedAt},
		{Key: "username", Value: u.username},
	}
	if u.name != "" {
		d = append(d, bson.E{Key: "name", Value: u.name})
	}
	d = append(d,
		bson.E{Key: "emails", Value: emailsBSON(u.emails)},
		bson.E{Key: "type", Value: u.typ},
		bson.E{Key: "status", Value: u.status},
		bson.E{Key: "active", Value: u.active},
		bson.E{Key: "roles", Value: stringsBSON(u.roles)},
		bson.E{Key: "settings", Value: settingsBSON(u.settings)},
	)
	if !u.lastLogin.IsZero() {
		d = append(d, bson.E{Key: "lastLogin", Value: u.lastLogin})
	}
	if u.requirePWChange {
		d = append(d, bson.E{Key: "requirePasswordChange", Value: true})
	}
	for _, f := range []struct{ k, v string }{{"bio", u.bio}, {"nickname", u.nickname}, {"statusText", u.statusText}, {"rcemuAvatarUrl", u.avatarURL}} {
		if f.v != "" {
			d = append(d, bson.E{Key: f.k, Value: f.v})
		}
	}
	services := bson.D{}
	if u.bcrypt != nil {
		services = append(services, bson.E{Key: "password", Value: bson.D{{Key: "bcrypt", Value: string(u.bcrypt)}}})
	}
	if u.hasResume || len(u.tokens) > 0 {
		arr := bson.A{}
		for _, t := range u.tokens {
			arr = append(arr, tokenBSON(t))
		}
		services = append(services, bson.E{Key: "resume", Value: bson.D{{Key: "loginTokens", Value: arr}}})
	}
	if u.email2fa {
		services = append(services, bson.E{Key: "email2fa", Value: bson.D{{Key: "enabled", Value: true}, {Key: "changedAt", Value: u.createdAt}}})
	}
	if u.iframeToken != "" {
		services = append(services, bson.E{Key: "iframe", Value: bson.D{{Key: "token", Value: u.iframeToken}}})
	}
	if u.totpSecret != "" {
		services = append(services, bson.E{Key: "totp", Value: bson.D{{Key: "enabled", Value: true}, {Key: "secret", Value: u.totpSecret}}})
	}
	if len(u.emailCodes) > 0 {
		services = append(services, bson.E{Key: "emailCode", Value: emailCodesBSON(u.emailCodes)})
	}
	for _, name := range slices.Sorted(maps.Keys(u.oauth)) {
		services = append(services, bson.E{Key: name, Value: bson.D{{Key: "id", Value: u.oauth[name]}}})
	}
	return append(d, bson.E{Key: "services", Value: services})
}

// emailCodesBSON is services.emailCode: [{code: <bcrypt>, expire}]
// (RocketChat/Rocket.Chat apps/meteor/app/2fa/server/code/EmailCheck.ts
// @77afb8ff7efe73c5d146a4de6bea58b2878e9820).
func emailCodesBSON(codes []emailCode) bson.A {
	a := bson.A{}
	for _, c := range codes {
		a = append(a, bson.D{{Key: "code", Value: string(c.hash)}, {Key: "expire", Value: c.expire}})
	}
	return a
}

func emailsBSON(emails []Email) bson.A {
	a := bson.A{}
	for _, e := range emails {
		a = append(a, bson.D{{Key: "address", Value: e.Address}, {Key: "verified", Value: e.Verified}})
	}
	return a
}

func stringsBSON(s []string) bson.A {
	a := bson.A{}
	for _, v := range s {
		a = append(a, v)
	}
	return a
}

func settingsBSON(m map[string]any) any {
	if m == nil {
		return bson.D{}
	}
	return m
}

// tokenBSON is a login-token entry (spec §2.2).
func tokenBSON(t tokenEntry) bson.D {
	if t.pat {
		return bson.D{{Key: "hashedToken", Value: t.hashedToken}, {Key: "type", Value: "personalAccessToken"},
			{Key: "createdAt", Value: t.createdAt}, {Key: "lastTokenPart", Value: t.lastTokenPart},
			{Key: "name", Value: t.name}, {Key: "bypassTwoFactor", Value: t.bypassTwoFactor}}
	}
	return bson.D{{Key: "when", Value: t.when}, {Key: "hashedToken", Value: t.hashedToken}}
}

// knownServices are the services keys that are not Custom OAuth services.
var knownServices = map[string]bool{"password": true, "resume": true, "email2fa": true, "emailCode": true,
	"totp": true, "iframe": true, "email": true}

// userFromBSON reads a users document; seq numbers its tokens.
func userFromBSON(raw bson.Raw, seq *uint64) (*user, error) {
	var d struct {
		ID         string    `bson:"_id"`
		CreatedAt  time.Time `bson:"createdAt"`
		UpdatedAt  time.Time `bson:"_updatedAt"`
		Username   string    `bson:"username"`
		Name       string    `bson:"name"`
		Emails     []bson.D  `bson:"emails"`
		Type       string    `bson:"type"`
		Status     string    `bson:"status"`
		Active     bool      `bson:"active"`
		Roles      []string  `bson:"roles"`
		LastLogin  time.Time `bson:"lastLogin"`
		RequirePW  bool      `bson:"requirePasswordChange"`
		Bio        string    `bson:"bio"`
		Nickname   string    `bson:"nickname"`
		StatusText string    `bson:"statusText"`
		AvatarURL  string    `bson:"rcemuAvatarUrl"`
		Settings   bson.D    `bson:"settings"`
		Services   bson.D    `bson:"services"`
	}
	if err := bson.Unmarshal(raw, &d); err != nil {
		return nil, err
	}
	if d.ID == "" {
		return nil, errors.New("document without a string _id")
	}
	u := &user{
		id: d.ID, username: d.Username, name: d.Name, typ: d.Type, status: d.Status, active: d.Active,
		roles: d.Roles, createdAt: d.CreatedAt, updatedAt: d.UpdatedAt, lastLogin: d.LastLogin,
		requirePWChange: d.RequirePW, bio: d.Bio, nickname: d.Nickname, statusText: d.StatusText,
		avatarURL: d.AvatarURL, settings: fromBSON(d.Settings).(map[string]any),
	}
	for _, e := range d.Emails {
		addr, _ := lookupD(e, "address").(string)
		verified, _ := lookupD(e, "verified").(bool)
		u.emails = append(u.emails, Email{Address: addr, Verified: verified})
	}
	for _, s := range d.Services {
		sd, _ := s.Value.(bson.D)
		switch s.Key {
		case "password":
			if h, ok := lookupD(sd, "bcrypt").(string); ok && h != "" {
				u.bcrypt = []byte(h)
			}
		case "resume":
			u.hasResume = true
			arr, _ := lookupD(sd, "loginTokens").(bson.A)
			for _, v := range arr {
				td, ok := v.(bson.D)
				if !ok {
					continue
				}
				if t, ok := tokenFromBSON(td); ok {
					*seq++
					t.seq = *seq
					u.tokens = append(u.tokens, t)
				}
			}
		case "email2fa":
			u.email2fa, _ = lookupD(sd, "enabled").(bool)
		case "iframe":
			u.iframeToken, _ = lookupD(sd, "token").(string)
		case "totp":
			if on, _ := lookupD(sd, "enabled").(bool); on {
				u.totpSecret, _ = lookupD(sd, "secret").(string)
			}
		case "emailCode":
			arr, _ := s.Value.(bson.A)
			for _, v := range arr {
				cd, ok := v.(bson.D)
				if !ok {
					continue
				}
				if h, ok := lookupD(cd, "code").(string); ok {
					u.emailCodes = append(u.emailCodes, emailCode{hash: []byte(h), expire: dateOf(lookupD(cd, "expire"))})
				}
			}
		default:
			if id, ok := lookupD(sd, "id").(string); ok && !knownServices[s.Key] {
				if u.oauth == nil {
					u.oauth = map[string]string{}
				}
				u.oauth[s.Key] = id
			}
		}
	}
	return u, nil
}

func tokenFromBSON(d bson.D) (tokenEntry, bool) {
	var t tokenEntry
	t.hashedToken, _ = lookupD(d, "hashedToken").(string)
	if t.hashedToken == "" {
		return t, false // a legacy unhashed {token}: left alone
	}
	if lookupD(d, "type") == "personalAccessToken" {
		t.pat = true
		t.createdAt = dateOf(lookupD(d, "createdAt"))
		t.lastTokenPart, _ = lookupD(d, "lastTokenPart").(string)
		t.name, _ = lookupD(d, "name").(string)
		t.bypassTwoFactor, _ = lookupD(d, "bypassTwoFactor").(bool)
		return t, true
	}
	t.when = dateOf(lookupD(d, "when"))
	return t, true
}

func dateOf(v any) time.Time {
	if dt, ok := v.(bson.DateTime); ok {
		return dt.Time().UTC()
	}
	return time.Time{}
}

func lookupD(d bson.D, key string) any {
	for _, e := range d {
		if e.Key == key {
			return e.Value
		}
	}
	return nil
}

// fromBSON turns decoded BSON (bson.D, bson.A) into JSON-like values
// (map[string]any, []any), as the handlers expect.
func fromBSON(v any) any {
	switch x := v.(type) {
	case bson.D:
		m := make(map[string]any, len(x))
		for _, e := range x {
			m[e.Key] = fromBSON(e.Value)
		}
		return m
	case bson.A:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = fromBSON(e)
		}
		return out
	}
	return v
}
