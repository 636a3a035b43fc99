package rcemu

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
)

func TestUsersCreateSuccessShape(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	r := adminClient(t, s, ts).post("/api/v1/users.create", map[string]any{
		"username": "alice", "email": "alice@example.com", "password": "pw", "name": "Alice",
		"verified": true, "roles": []string{"user", "bot"}, "joinDefaultChannels": false,
		"requirePasswordChange": false, "sendWelcomeEmail": false, "customFields": map[string]any{"x": "y"},
	}).wantStatus(t, 200)
	u, _ := r.field("user").(map[string]any)
	for _, k := range []string{"_id", "createdAt", "username", "emails", "type", "status", "active", "roles", "name", "settings", "_updatedAt"} {
		if _, ok := u[k]; !ok {
			t.Fatalf("user lacks %q: %s", k, r.raw)
		}
	}
	if _, ok := u["services"]; ok || strings.Contains(r.raw, "customFields") {
		t.Fatalf("users.create leaked services/undeclared custom fields: %s", r.raw)
	}
	if r.field("success") != true || u["type"] != "user" || u["status"] != "offline" || u["active"] != true ||
		len(u["_id"].(string)) != 17 || r.str("user.createdAt")[19] != '.' {
		t.Fatalf("users.create = %s", r.raw)
	}
	if strings.Trim(u["_id"].(string), unmistakableChars) != "" {
		t.Fatalf("_id %q is not a Random.id()", u["_id"])
	}
	snap, ok := s.UserByUsername("ALICE")
	if !ok || snap.Emails[0] != (Email{"alice@example.com", true}) || strings.Join(snap.Roles, ",") != "user,bot" || s.UserCount() != 1 {
		t.Fatalf("snapshot = %+v, count %d", snap, s.UserCount())
	}
	// Password stored as bcrypt(sha256-hex): the user can log in.
	login(t, newClient(t, ts), "alice", "pw")
	// Default role.
	r = adminClient(t, s, ts).post("/api/v1/users.create", map[string]any{
		"username": "bob", "email": "bob@example.com", "password": "pw", "name": "Bob"}).wantStatus(t, 200)
	if fmt.Sprint(r.field("user.roles")) != "[user]" {
		t.Fatalf("default roles = %v", r.field("user.roles"))
	}
}

func TestUsersCreateValidation(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	admin := adminClient(t, s, ts)
	createUser(t, admin, "Taken.Name", "taken@example.com", "pw")
	base := func(kv ...any) map[string]any {
		m := map[string]any{"username": "newbie", "email": "newbie@example.com", "password": "pw", "name": "Newbie"}
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == nil {
				delete(m, kv[i].(string))
			} else {
				m[kv[i].(string)] = kv[i+1]
			}
		}
		return m
	}
	cases := []struct {
		name string
		body map[string]any
		want string
	}{
		{"unknown key", base("importIds", []string{"x"}),
			`{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}`},
		{"missing email", base("email", nil),
			`{"success":false,"error":"must have required property 'email' [invalid-params]","errorType":"invalid-params"}`},
		{"wrong type", base("active", "maybe"),
			`{"success":false,"error":"must be boolean [invalid-params]","errorType":"invalid-params"}`},
		{"invalid role", base("roles", []string{"wizard"}),
			`{"success":false,"error":"The field Roles consist invalid role name/id [error-action-not-allowed]","errorType":"error-action-not-allowed","details":{"method":"insertOrUpdateUser","action":"Assign_role"}}`},
		{"empty name", base("name", " "),
			`{"success":false,"error":"The field Name is required [error-the-field-is-required]","errorType":"error-the-field-is-required","details":{"method":"insertOrUpdateUser","field":"Name"}}`},
		{"invalid username", base("username", "jane doe"),
			`{"success":false,"error":"jane doe is not a valid username [error-input-is-not-a-valid-field]","errorType":"error-input-is-not-a-valid-field","details":{"method":"insertOrUpdateUser","input":"jane doe","field":"Username"}}`},
		{"empty password", base("password", ""),
			`{"success":false,"error":"The field Password is required [error-the-field-is-required]","errorType":"error-the-field-is-required","details":{"method":"insertOrUpdateUser","field":"Password"}}`},
		{"blocked username", base("username", "Admin"),
			`{"success":false,"error":"Admin is blocked and can't be used! [error-blocked-username]","errorType":"error-blocked-username","details":{"method":"insertOrUpdateUser","field":"Admin"}}`},
		{"blocked here", base("username", "HERE"),
			`{"success":false,"error":"HERE is blocked and can't be used! [error-blocked-username]","errorType":"error-blocked-username","details":{"method":"insertOrUpdateUser","field":"HERE"}}`},
		{"username taken (case-insensitive)", base("username", "taken.name"),
			`{"success":false,"error":"taken.name is already in use :( [error-field-unavailable]","errorType":"error-field-unavailable","details":{"method":"insertOrUpdateUser","field":"taken.name"}}`},
		{"email taken (case-insensitive)", base("email", "TAKEN@example.com"),
			`{"success":false,"error":"TAKEN@example.com is already in use :( [error-field-unavailable]","errorType":"error-field-unavailable","details":{"method":"insertOrUpdateUser","field":"TAKEN@example.com"}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			admin.post("/api/v1/users.create", tc.body).wantStatus(t, 400).wantBody(t, tc.want)
		})
	}
	if s.UserCount() != 1 {
		t.Fatalf("UserCount = %d after failures", s.UserCount())
	}
	// Without create-user (a plain user).
	uid, tok := login(t, newClient(t, ts), "taken.name", "pw")
	newClient(t, ts).as(uid, tok).post("/api/v1/users.create", base()).wantStatus(t, 400).wantBody(t,
		`{"success":false,"error":"Adding user is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed","details":{"method":"insertOrUpdateUser","action":"Adding_user"}}`)
	// A bot granted create-user may create users.
	s.SetPermissionRoles("create-user", "admin", "bot")
	botID, err := s.AddUser(NewUser{Username: "svc", Name: "svc", Password: "pw", Roles: []string{"bot"}})
	if err != nil {
		t.Fatal(err)
	}
	_, botTok := login(t, newClient(t, ts).fromIP("10.0.0.9"), "svc", "pw")
	newClient(t, ts).as(botID, botTok).post("/api/v1/users.create", base()).wantStatus(t, 200)
}

func TestUsersCreateConcurrentSameUsername(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	admin := adminClient(t, s, ts)
	const n = 20
	var wg sync.WaitGroup
	results := make([]resp, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = admin.post("/api/v1/users.create", map[string]any{
				"username": []string{"dup", "DUP", "Dup"}[i%3], "email": fmt.Sprintf("dup%d@example.com", i), "password": "pw", "name": "Dup"})
		}()
	}
	wg.Wait()
	ok := 0
	for _, r := range results {
		switch {
		case r.status == 200:
			ok++
		case r.status == 400 && r.body["errorType"] == "error-field-unavailable":
		default:
			t.Fatalf("unexpected answer %d %s", r.status, r.raw)
		}
	}
	if ok != 1 || s.UserCount() != 1 {
		t.Fatalf("%d successes, %d users; want exactly 1", ok, s.UserCount())
	}
	if got := s.Stats().UsersCreateCalls; got != n {
		t.Fatalf("UsersCreateCalls = %d", got)
	}
}

func TestUsersInfo(t *testing.T) {
	for _, p := range allProfiles {
		t.Run(p, func(t *testing.T) {
			s, ts := newTestServer(t, Config{Profile: p})
			admin := adminClient(t, s, ts)
			id := createUser(t, admin, "Carol", "carol@example.com", "pw")
			r := admin.get("/api/v1/users.info?userId="+id).wantStatus(t, 200)
			if r.field("success") != true || r.str("user._id") != id || r.str("user.username") != "Carol" ||
				r.field("user.emails") == nil || r.field("user.roles") == nil || r.field("user.services") != nil {
				t.Fatalf("users.info as admin: %s", r.raw)
			}
			admin.get("/api/v1/users.info?username=Carol").wantStatus(t, 200)
			// Exact match, like Mongo's findOneByIdOrUsername.
			admin.get("/api/v1/users.info?username=carol").wantStatus(t, 400).
				wantBody(t, `{"success":false,"error":"User not found."}`)
			admin.get("/api/v1/users.info?userId=nope").wantStatus(t, 400).
				wantBody(t, `{"success":false,"error":"User not found."}`)
			admin.get("/api/v1/users.info?username=").wantStatus(t, 400).
				wantBody(t, `{"success":false,"error":"Invalid search query."}`)
			admin.get("/api/v1/users.info").wantStatus(t, 400).wantBody(t, `{"success":false,"error":"must have required property 'userId'\n must have required property 'username'\n must have required property 'importId'\n must match a schema in anyOf [invalid-params]","errorType":"invalid-params"}`)
			admin.get("/api/v1/users.info?userId="+id+"&foo=1").wantStatus(t, 400).wantBody(t, `{"success":false,"error":"must NOT have additional properties\n must have required property 'username'\n must have required property 'importId'\n must match a schema in anyOf [invalid-params]","errorType":"invalid-params"}`)
			// Self sees services (password: true, resume tokens); others'
			// private fields stay hidden from a plain user.
			uid, tok := login(t, newClient(t, ts), "Carol", "pw")
			me := newClient(t, ts).as(uid, tok)
			r = me.get("/api/v1/users.info?userId="+id).wantStatus(t, 200)
			if r.field("user.services.password") != true || r.field("user.services.resume.loginTokens") == nil {
				t.Fatalf("self users.info: %s", r.raw)
			}
			r = me.get("/api/v1/users.info?userId="+s.AdminID()).wantStatus(t, 200)
			if r.field("user.emails") != nil || r.field("user.services") != nil {
				t.Fatalf("users.info of the admin as a plain user: %s", r.raw)
			}
		})
	}
}

func TestUsersUpdate(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "7.x", DisableRateLimit: true})
	admin := adminClient(t, s, ts)
	id := createUser(t, admin, "dave", "dave@example.com", "pw")
	createUser(t, admin, "erin", "erin@example.com", "pw")
	r := admin.post("/api/v1/users.update", map[string]any{"userId": id, "data": map[string]any{
		"name": "Dave D", "email": "Dave2@example.com", "verified": true, "username": "dave2"}}).wantStatus(t, 200)
	if r.str("user.name") != "Dave D" || r.str("user.username") != "dave2" || r.field("success") != true ||
		fmt.Sprint(r.field("user.emails")) != "[map[address:Dave2@example.com verified:true]]" {
		t.Fatalf("users.update: %s", r.raw)
	}
	if _, ok := s.UserByUsername("dave"); ok {
		t.Fatal("old username still indexed")
	}
	admin.post("/api/v1/users.update", map[string]any{"userId": id, "data": map[string]any{"joinDefaultChannels": true}}).
		wantStatus(t, 400).wantBody(t, `{"success":false,"error":"must NOT have additional properties [invalid-params]","errorType":"invalid-params"}`)
	admin.post("/api/v1/users.update", map[string]any{"userId": "", "data": map[string]any{"name": "x"}}).
		wantStatus(t, 400).wantBody(t, `{"success":false,"error":"must NOT have fewer than 1 characters [invalid-params]","errorType":"invalid-params"}`)
	r = admin.post("/api/v1/users.update", map[string]any{"userId": id, "data": map[string]any{"username": "ERIN"}}).wantStatus(t, 400)
	if r.body["errorType"] != "error-field-unavailable" {
		t.Fatalf("rename onto a taken username: %s", r.raw)
	}
	r = admin.post("/api/v1/users.update", map[string]any{"userId": id, "data": map[string]any{"email": "ERIN@example.com"}}).wantStatus(t, 400)
	if r.body["errorType"] != "error-field-unavailable" {
		t.Fatalf("change onto a taken email: %s", r.raw)
	}
	// A plain user may not edit others.
	uid, tok := login(t, newClient(t, ts), "erin", "pw")
	newClient(t, ts).as(uid, tok).post("/api/v1/users.update", map[string]any{"userId": id, "data": map[string]any{"name": "x"}}).
		wantStatus(t, 400).wantBody(t, `{"success":false,"error":"Editing user is not allowed [error-action-not-allowed]","errorType":"error-action-not-allowed","details":{"method":"insertOrUpdateUser","action":"Editing_user"}}`)
	// Deactivation wipes all tokens.
	_, dtok := login(t, newClient(t, ts), "dave2", "pw")
	admin.post("/api/v1/users.update", map[string]any{"userId": id, "data": map[string]any{"active": false}}).wantStatus(t, 200)
	newClient(t, ts).as(id, dtok).get("/api/v1/me").wantStatus(t, 401)
	if u, _ := s.UserByID(id); u.Active || u.ResumeTokens != 0 {
		t.Fatalf("after deactivation: %+v", u)
	}
	// 6.x still accepts joinDefaultChannels.
	s6, ts6 := newTestServer(t, Config{Profile: "6.x"})
	admin6 := adminClient(t, s6, ts6)
	id6 := createUser(t, admin6, "fay", "fay@example.com", "pw")
	admin6.post("/api/v1/users.update", map[string]any{"userId": id6, "data": map[string]any{"joinDefaultChannels": true}}).wantStatus(t, 200)
}

func TestCreateTokenGating(t *testing.T) {
	notAuth := `{"success":false,"error":"Not authorized [error-not-authorized]","errorType":"error-not-authorized"}`
	cases := []struct {
		name   string
		cfg    Config
		body   map[string]any
		status int
	}{
		{"8.x right secret", Config{Profile: "8.x", CreateTokensSecret: "sek"}, map[string]any{"secret": "sek"}, 200},
		{"8.x wrong secret", Config{Profile: "8.x", CreateTokensSecret: "sek"}, map[string]any{"secret": "nope"}, 400},
		{"8.x no secret", Config{Profile: "8.x", CreateTokensSecret: "sek"}, map[string]any{}, 400},
		{"8.x secret unset", Config{Profile: "8.x"}, map[string]any{"secret": ""}, 400},
		{"8.x env flag is not enough", Config{Profile: "8.x", CreateTokensForUsers: true}, map[string]any{}, 400},
		{"7.x env on", Config{Profile: "7.x", CreateTokensForUsers: true}, map[string]any{}, 200},
		{"7.x env on, secret ignored", Config{Profile: "7.x", CreateTokensForUsers: true}, map[string]any{"secret": "x"}, 200},
		{"7.x env off", Config{Profile: "7.x", CreateTokensSecret: "sek"}, map[string]any{"secret": "sek"}, 400},
		{"6.x env on", Config{Profile: "6.x", CreateTokensForUsers: true}, map[string]any{}, 200},
		{"6.x env off", Config{Profile: "6.x"}, map[string]any{}, 400},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s, ts := newTestServer(t, tc.cfg)
			admin := adminClient(t, s, ts)
			id := createUser(t, admin, "gil", "gil@example.com", "pw")
			tc.body["userId"] = id
			r := admin.post("/api/v1/users.createToken", tc.body).wantStatus(t, tc.status)
			if tc.status != 200 {
				r.wantBody(t, notAuth)
				return
			}
			if r.str("data.userId") != id || !tokenRe.MatchString(r.str("data.authToken")) || r.field("success") != true {
				t.Fatalf("createToken: %s", r.raw)
			}
			newClient(t, ts).as(id, r.str("data.authToken")).get("/api/v1/me").wantStatus(t, 200)
			if u, _ := s.UserByID(id); u.ResumeTokens != 1 || s.Stats().CreateTokenCalls != 1 {
				t.Fatalf("after createToken: %+v %+v", u, s.Stats())
			}
		})
	}
}

func TestCreateTokenPermissionsAndParams(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "8.7", CreateTokensSecret: "sek", DisableRateLimit: true})
	admin := adminClient(t, s, ts)
	hank := createUser(t, admin, "hank", "hank@example.com", "pw")
	ivy := createUser(t, admin, "ivy", "ivy@example.com", "pw")
	uid, tok := login(t, newClient(t, ts), "hank", "pw")
	as := newClient(t, ts).as(uid, tok)
	as.post("/api/v1/users.createToken", map[string]any{"userId": ivy, "secret": "sek"}).wantStatus(t, 400).
		wantBody(t, `{"success":false,"error":"Not authorized [error-not-authorized]","errorType":"error-not-authorized"}`)
	as.post("/api/v1/users.createToken", map[string]any{"userId": hank, "secret": "sek"}).wantStatus(t, 200)
	admin.post("/api/v1/users.createToken", map[string]any{"username": "IVY", "secret": "sek"}).wantStatus(t, 200)
	admin.post("/api/v1/users.createToken", map[string]any{"secret": "sek"}).wantStatus(t, 400).wantBody(t,
		`{"success":false,"error":"The required \"userId\" or \"username\" param was not provided [error-user-param-not-provided]","errorType":"error-user-param-not-provided"}`)
	admin.post("/api/v1/users.createToken", map[string]any{"userId": "nope", "secret": "sek"}).wantStatus(t, 400).wantBody(t,
		`{"success":false,"error":"The required \"userId\" or \"username\" param provided does not match any users [error-invalid-user]","errorType":"error-invalid-user"}`)
	// The cap applies to createToken too.
	for range 55 {
		admin.post("/api/v1/users.createToken", map[string]any{"userId": ivy, "secret": "sek"}).wantStatus(t, 200)
	}
	if u, _ := s.UserByID(ivy); u.ResumeTokens != 50 {
		t.Fatalf("ResumeTokens = %d, want 50", u.ResumeTokens)
	}
}

// The caller check of users.createToken by version: 6.x/7.x and 8.7+
// refuse a caller without user-generate-access-token who mints for someone
// else; 8.0–8.6 let anyone holding the secret do it (PR #36570 dropped the
// check, PR #40768 restored it). 9.0 keeps the 400 error-not-authorized.
func TestCreateTokenCallerCheckByVersion(t *testing.T) {
	for _, tc := range []struct {
		profile string
		status  int
	}{{"6.x", 400}, {"7.x", 400}, {"8.x", 200}, {"8.7", 400}, {"9.0", 400}} {
		t.Run(tc.profile, func(t *testing.T) {
			s, ts := newTestServer(t, Config{Profile: tc.profile, CreateTokensSecret: "sek", CreateTokensForUsers: true, DisableRateLimit: true})
			admin := adminClient(t, s, ts)
			createUser(t, admin, "mallory", "mallory@example.com", "pw")
			uid, tok := login(t, newClient(t, ts), "mallory", "pw")
			r := newClient(t, ts).as(uid, tok).post("/api/v1/users.createToken", map[string]any{"userId": s.AdminID(), "secret": "sek"}).wantStatus(t, tc.status)
			if tc.status != 200 {
				r.wantBody(t, `{"success":false,"error":"Not authorized [error-not-authorized]","errorType":"error-not-authorized"}`)
			}
		})
	}
}

func TestCreateTokenBug40598(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "7.x", CreateTokensForUsers: true, Bug40598: true})
	admin := adminClient(t, s, ts)
	id := createUser(t, admin, "jo", "jo@example.com", "pw")
	admin.post("/api/v1/users.createToken", map[string]any{"userId": id}).wantStatus(t, 400).
		wantBody(t, `{"success":false,"error":"Cannot read properties of undefined (reading 'tokens')"}`)
	if u, _ := s.UserByID(id); u.ResumeTokens != 1 {
		t.Fatalf("the token was not inserted: %+v", u)
	}
	admin.post("/api/v1/users.createToken", map[string]any{"userId": id}).wantStatus(t, 200) // retry works
}

func TestUsersListDeleteActiveLogout(t *testing.T) {
	s, ts := newTestServer(t, Config{Profile: "8.x", DisableRateLimit: true})
	admin := adminClient(t, s, ts)
	kim := createUser(t, admin, "kim", "kim@example.com", "pw")
	createUser(t, admin, "lee", "lee@example.com", "pw")
	r := admin.get("/api/v1/users.list?count=2").wantStatus(t, 200)
	if r.field("count") != 2.0 || r.field("total") != 3.0 || r.field("offset") != 0.0 || r.field("success") != true {
		t.Fatalf("users.list: %s", r.raw)
	}
	// users.logout of another user needs logout-other-user.
	uid, tok := login(t, newClient(t, ts), "lee", "pw")
	lee := newClient(t, ts).as(uid, tok)
	lee.post("/api/v1/users.logout", map[string]any{"userId": kim}).wantStatus(t, 403).wantBody(t, `{"success":false,"error":"forbidden"}`)
	lee.post("/api/v1/users.delete", map[string]any{"userId": kim}).wantStatus(t, 403).
		wantBody(t, `{"success":false,"error":"User does not have the permissions required for this action [error-forbidden]"}`)
	_, ktok := login(t, newClient(t, ts), "kim", "pw")
	admin.post("/api/v1/users.logout", map[string]any{"userId": kim}).wantStatus(t, 200).
		wantBody(t, `{"message":"User `+kim+` has been logged out!","success":true}`)
	newClient(t, ts).as(kim, ktok).get("/api/v1/me").wantStatus(t, 401)
	admin.post("/api/v1/users.setActiveStatus", map[string]any{"userId": kim, "activeStatus": false}).wantStatus(t, 200).
		wantBody(t, `{"user":{"_id":"`+kim+`","active":false},"success":true}`)
	admin.post("/api/v1/users.delete", map[string]any{"username": "kim"}).wantStatus(t, 200).wantBody(t, `{"success":true}`)
	if _, ok := s.UserByID(kim); ok || s.UserCount() != 1 {
		t.Fatal("kim not deleted")
	}
	// 7.x route-level 403 text.
	s7, ts7 := newTestServer(t, Config{Profile: "7.x"})
	id7, err := s7.AddUser(NewUser{Username: "g", Password: "pw", Roles: []string{"guest"}})
	if err != nil {
		t.Fatal(err)
	}
	_, gtok := login(t, newClient(t, ts7), "g", "pw")
	newClient(t, ts7).as(id7, gtok).post("/api/v1/users.delete", map[string]any{"userId": id7}).wantStatus(t, http.StatusForbidden).
		wantBody(t, `{"success":false,"error":"User does not have the permissions required for this action [error-unauthorized]"}`)
}

func TestSettingsPublic(t *testing.T) {
	cfg := Config{Profile: "8.x"}
	cfg.EnableIframeAuth("http://sso.test/iframe", "http://sso.test/api", "GET")
	s, ts := newTestServer(t, cfg)
	c := newClient(t, ts)
	r := c.get("/api/v1/settings.public?_id=Accounts_iframe_enabled,Accounts_Iframe_api_method,Iframe_Restrict_Access").wantStatus(t, 200)
	r.wantBody(t, `{"settings":[{"_id":"Accounts_Iframe_api_method","value":"GET"},{"_id":"Accounts_iframe_enabled","value":true}],"count":2,"offset":0,"total":2,"success":true}`)
	s.SetSetting("Accounts_Iframe_api_method", "POST")
	r = c.get("/api/v1/settings.public?_id=Accounts_Iframe_api_method").wantStatus(t, 200)
	if fmt.Sprint(r.field("settings")) != "[map[_id:Accounts_Iframe_api_method value:POST]]" {
		t.Fatalf("after SetSetting: %s", r.raw)
	}
}

func TestFramingHeaders(t *testing.T) {
	s, ts := newTestServer(t, Config{})
	c := newClient(t, ts)
	res, err := http.Get(ts.URL + "/home")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.Header.Get("X-Frame-Options") != "" || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("client headers: %v", res.Header)
	}
	s.SetSetting("Iframe_Restrict_Access", true)
	if got := c.get("/api/info").header.Get("X-Frame-Options"); got != "sameorigin" {
		t.Fatalf("X-Frame-Options = %q", got)
	}
}
