package rcemu

import (
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Server is an in-memory Rocket.Chat stand-in: the REST subset rcsso uses
// (spec §4), the users collection (§5), settings (§2.3), the API rate
// limiter (§4.14) and a web client that performs the iframe-login protocol
// like Rocket.Chat's (§1, §3). It is safe for concurrent use.
type Server struct {
	cfg     Config
	profile profile
	log     *slog.Logger
	now     func() time.Time
	started time.Time

	mu        serverMu // guards everything below (MongoDB mode: see mongostore.go)
	st        *store
	rooms     *roomDB // rooms, teams, memberships and messages (rooms.go, chat.go)
	settings  map[string]any
	roles     map[string]*role       // roles collection by _id (permissions.go)
	roleOrder []string               // role _ids in creation order
	perms     map[string]*permission // permissions collection by _id
	adminID   string
	stats     Stats

	mailMu sync.Mutex
	mails  []Mail // the 2FA mailbox (twofactor.go)

	oauthIDs        []string    // login service configuration _id per Config.OAuthServices
	oauthEnterprise atomic.Bool // the licence's oauth-enterprise module (Config.OAuthEnterprise)

	saveMu sync.Mutex // serialises Save (persist.go)

	flows   oauthFlows // the 8.7 server-side OAuth flow (oauthflow.go)
	limiter *rateLimiter
	routes  map[string]*route
	handler http.Handler
}

// Stats counts requests per endpoint (every request that reaches the
// route, whatever its outcome) and rate-limited answers.
type Stats struct {
	CreateTokenCalls int // POST /api/v1/users.createToken
	UsersCreateCalls int // POST /api/v1/users.create
	UsersUpdateCalls int // POST /api/v1/users.update
	UsersInfoCalls   int // GET /api/v1/users.info
	LoginCalls       int // POST /api/v1/login (REST only)
	LogoutCalls      int // /api/v1/logout
	MeCalls          int // GET /api/v1/me
	DDPLoginCalls    int // the web client's Meteor login method (/_emu/ddp-login)
	MethodLoginCalls int // the login method through POST /api/v1/method.callAnon/login (not rate limited ones)
	RateLimited      int // 429 answers
	SetAvatarCalls   int // POST /api/v1/users.setAvatar
	// Routes counts requests per /api/v1 route name ("channels.invite",
	// "users.info", …), every method and outcome.
	Routes map[string]int
}

// UserSnapshot is a copy of one user document for tests (spec §5).
type UserSnapshot struct {
	ID       string
	Username string
	Name     string
	Emails   []Email
	Active   bool
	Roles    []string
	Status   string
	// ResumeTokens counts {when} login tokens, excluding PATs.
	ResumeTokens int
	// PATs counts personal access tokens.
	PATs int
	// IframeToken is services.iframe.token ("" when unset).
	IframeToken string
	// Email2FA is services.email2fa.enabled.
	Email2FA bool
	// TOTP is services.totp.enabled.
	TOTP bool
	// EmailCodes counts the unexpired-or-not e-mail 2FA codes held in
	// services.emailCode.
	EmailCodes int
	// AvatarURL is the avatarUrl of the last users.setAvatar ("" if none).
	AvatarURL string
}

// New creates a Server with its initial admin.
func New(cfg Config) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p, err := parseProfile(c.Profile)
	if err != nil {
		return nil, err
	}
	c.Profile = p.String()
	s := &Server{
		cfg:      c,
		profile:  p,
		log:      c.Logger,
		now:      c.Now,
		st:       newStore(),
		settings: map[string]any{},
		limiter:  newRateLimiter(),
	}
	s.started = s.now()
	s.rooms = newRoomDB(s.started)
	for k, d := range knownSettings {
		s.settings[k] = d.value
	}
	if p >= profile87 {
		// PR #40876: the server-side OAuth flow's switch (oauthflow.go).
		s.settings["Accounts_OAuth_Use_Modern_Flow"] = false
	}
	s.settings["Accounts_TwoFactorAuthentication_Enabled"] = c.TwoFactor
	for k, v := range c.Settings {
		s.settings[k] = v
	}
	s.flows.states, s.flows.codes = map[string]pendingFlow{}, map[string]loginCode{}
	s.initRoles(s.started)
	s.oauthEnterprise.Store(c.OAuthEnterprise)
	for _, o := range c.OAuthServices {
		if o.Builtin && o.Name != "wordpress" {
			return nil, fmt.Errorf("rcemu: OAuthService %q: only the built-in provider \"wordpress\" is emulated", o.Name)
		}
		s.oauthIDs = append(s.oauthIDs, randomID())
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(sha256Hex(c.AdminPassword)), c.BcryptCost)
	if err != nil {
		return nil, fmt.Errorf("rcemu: hashing the admin password: %w", err)
	}
	id := c.AdminUserID
	if id == "" {
		id = randomID()
	}
	now := s.now()
	admin := &user{
		id: id, username: c.AdminUsername, name: "Administrator",
		emails: []Email{{Address: c.AdminEmail, Verified: true}},
		typ:    "user", status: "offline", active: true, roles: []string{"user", "admin"},
		createdAt: now, updatedAt: now, bcrypt: hash, settings: map[string]any{},
	}
	if c.AdminPAT != "" {
		s.st.seq++
		admin.tokens = append(admin.tokens, tokenEntry{
			hashedToken: hashToken(c.AdminPAT), pat: true, createdAt: now, lastTokenPart: lastPart(c.AdminPAT),
			name: "rcemu", bypassTwoFactor: true, seq: s.st.seq,
		})
		admin.hasResume = true
	}
	if c.DataFile != "" {
		n, err := s.loadData()
		if err != nil {
			return nil, err
		}
		s.log.Info("emulator state read", "data_file", c.DataFile, "users", n)
	}
	if c.MongoURL != "" {
		if err := s.attachMongo(admin); err != nil {
			return nil, err
		}
	} else {
		s.mu.Lock()
		s.adoptAdmin(admin)
		s.mu.Unlock()
	}
	s.routes = s.apiRoutes()
	s.handler = s.buildHandler()
	if err := s.Save(); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

func lastPart(token string) string {
	if len(token) <= 6 {
		return token
	}
	return token[len(token)-6:]
}

// Handler returns the HTTP handler: the REST API under /api, the web client
// at / (and every other path, like Rocket.Chat's single-page app) and the
// emulator's internal endpoints under /_emu/.
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/api/info", s.handleInfo)
	mux.HandleFunc("/api/v1/", s.serveAPI)
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]any{"success": false, "error": "API endpoint does not exist"})
	})
	mux.HandleFunc("GET /_emu/public-settings", s.handleEmuSettings)
	mux.HandleFunc("POST /_emu/ddp-login", s.handleDDPLogin)
	mux.HandleFunc("POST /_emu/ddp-logout", s.handleDDPLogout)
	mux.HandleFunc("POST /_emu/ddp-set-status", s.handleDDPSetStatus)
	mux.HandleFunc("POST /_emu/ddp-me", s.handleDDPMe)
	mux.HandleFunc("POST /_emu/ddp-rooms", s.handleDDPRooms)
	mux.HandleFunc("POST /_emu/ddp-load-history", s.handleDDPLoadHistory)
	mux.HandleFunc("POST /_emu/ddp-send-message", s.handleDDPSendMessage)
	mux.HandleFunc("GET /_emu/mailbox", s.handleMailbox)
	mux.HandleFunc("GET /_emu/client.js", s.serveAsset("client.js", "text/javascript; charset=utf-8"))
	mux.HandleFunc("GET /_emu/client.css", s.serveAsset("client.css", "text/css; charset=utf-8"))
	mux.HandleFunc("GET /oauth/{service}", s.handleOAuthStart)
	mux.HandleFunc("GET /oauth/{service}/callback", s.handleOAuthCallback)
	mux.HandleFunc("GET /favicon.ico", http.NotFound)
	mux.HandleFunc("/", s.serveClient)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		restrict := s.settingBool("Iframe_Restrict_Access")
		xfo := s.settingString("Iframe_X_Frame_Options")
		s.mu.Unlock()
		if restrict && xfo != "" {
			w.Header().Set("X-Frame-Options", xfo)
		}
		s.log.Debug("rcemu request", "method", r.Method, "path", r.URL.Path, "remote", r.RemoteAddr)
		mux.ServeHTTP(w, r)
		if s.cfg.DataFile != "" && saveAfter(r.Method) {
			if err := s.Save(); err != nil {
				s.log.Error("emulator state not saved", "data_file", s.cfg.DataFile, "err", err)
			}
		}
	})
}

// handleInfo is GET /api/info (spec §6): {"version":…,"success":true}.
func (s *Server) handleInfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeJSON(w, http.StatusMethodNotAllowed, map[string]any{"success": false, "error": "Method not allowed"})
		return
	}
	body := map[string]any{"version": s.profile.version(), "success": true}
	if sv := s.supportedVersions(); sv != "" {
		body["supportedVersions"] = sv
	}
	writeJSON(w, http.StatusOK, body)
}

// Profile returns the version profile in use ("8.x", "7.x" or "6.x").
func (s *Server) Profile() string { return s.profile.String() }

// AdminID returns the initial admin's _id.
func (s *Server) AdminID() string { return s.adminID }

// UserCount returns the number of users, excluding the initial admin.
func (s *Server) UserCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.st.users)
	if _, ok := s.st.users[s.adminID]; ok {
		n--
	}
	return n
}

// UserByUsername returns a snapshot of the user with that username,
// compared case-insensitively.
func (s *Server) UserByUsername(username string) (UserSnapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.findForLogin("username", username)
	if u == nil {
		return UserSnapshot{}, false
	}
	return snapshot(u), true
}

// UserByID returns a snapshot of the user with that _id.
func (s *Server) UserByID(id string) (UserSnapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[id]
	if u == nil {
		return UserSnapshot{}, false
	}
	return snapshot(u), true
}

// UserIDByResumeToken returns the _id of the user a resume token logs in
// as (Rocket.Chat looks up services.resume.loginTokens.hashedToken, spec
// §2.2), for tests that check whose account a token opens.
func (s *Server) UserIDByResumeToken(token string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, _ := s.st.byToken(hashToken(token))
	if u == nil {
		return "", false
	}
	return u.id, true
}

func snapshot(u *user) UserSnapshot {
	return UserSnapshot{
		ID: u.id, Username: u.username, Name: u.name, Emails: slices.Clone(u.emails), Active: u.active,
		Roles: slices.Clone(u.roles), Status: u.status, ResumeTokens: u.resumeCount(), PATs: u.patCount(),
		IframeToken: u.iframeToken, Email2FA: u.email2fa, AvatarURL: u.avatarURL,
		TOTP: u.totpSecret != "", EmailCodes: len(u.emailCodes),
	}
}

// Stats returns a copy of the request counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.stats
	st.Routes = maps.Clone(s.stats.Routes)
	return st
}

// ResetRateLimits forgets every rate-limiter counter.
func (s *Server) ResetRateLimits() { s.limiter.reset() }

// ErrNoUser is returned by the direct-write helpers for an unknown _id.
var ErrNoUser = errors.New("rcemu: no such user")

// SetIframeToken writes services.iframe.token of a user, as a bridge does
// directly in MongoDB (spec §2.1: no REST endpoint writes it). An empty
// token unsets it.
func (s *Server) SetIframeToken(userID, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[userID]
	if u == nil {
		return ErrNoUser
	}
	u.iframeToken = token
	return nil
}

// PushResumeToken pushes {when: now, hashedToken: base64(sha256(token))}
// into the user's services.resume.loginTokens, as a bridge does directly in
// MongoDB (spec §9 2b). Like a raw $push it does not enforce the token cap.
func (s *Server) PushResumeToken(userID, token string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.st.users[userID]
	if u == nil {
		return ErrNoUser
	}
	s.st.pushResume(u, token, s.now(), 0)
	return nil
}

// NewUser describes a user created directly with AddUser.
type NewUser struct {
	Username, Name, Email, Password string
	Verified                        bool
	Roles                           []string // role _ids or names; default ["user"]
	Inactive                        bool
	// PAT, when set, is stored as a personal access token of the user
	// (bypassTwoFactor true, spec §4.12): a service account for tests.
	PAT string
	// TOTPSecret, when set, turns on TOTP 2FA with this base32 secret
	// (services.totp; see NewTOTPSecret, TOTPCode). It applies with
	// Config.TwoFactor.
	TOTPSecret string
	// Email2FA turns on e-mail 2FA (services.email2fa.enabled); it applies
	// with Config.TwoFactor to a user with a verified e-mail.
	Email2FA bool
}

// AddUser creates a user directly (no REST, no permission checks, no rate
// limit), for test fixtures. Username and e-mail must be unused
// (case-insensitively). It returns the new _id.
func (s *Server) AddUser(nu NewUser) (string, error) {
	if nu.Username == "" {
		return "", errors.New("rcemu: AddUser: empty username")
	}
	var hash []byte
	if nu.Password != "" {
		var err error
		if hash, err = bcrypt.GenerateFromPassword([]byte(sha256Hex(nu.Password)), s.cfg.BcryptCost); err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.usernameTaken(nu.Username, "") {
		return "", fmt.Errorf("rcemu: AddUser: username %q is already in use", nu.Username)
	}
	if nu.Email != "" && s.st.emailTaken(nu.Email, "") {
		return "", fmt.Errorf("rcemu: AddUser: email %q is already in use", nu.Email)
	}
	roles := make([]string, 0, len(nu.Roles))
	for _, r := range nu.Roles {
		id := s.resolveRole(r)
		if id == "" {
			return "", fmt.Errorf("rcemu: AddUser: unknown role %q", r)
		}
		roles = append(roles, id)
	}
	if len(roles) == 0 {
		roles = []string{"user"}
	}
	now := s.now()
	u := &user{
		id: randomID(), username: nu.Username, name: nu.Name, typ: "user", status: "offline", active: !nu.Inactive,
		roles: slices.Clone(roles), createdAt: now, updatedAt: now, bcrypt: hash, settings: map[string]any{},
		totpSecret: nu.TOTPSecret, email2fa: nu.Email2FA,
	}
	if nu.Email != "" {
		u.emails = []Email{{Address: nu.Email, Verified: nu.Verified}}
	}
	if slices.Contains(roles, "bot") {
		u.typ = "bot"
	}
	if nu.PAT != "" {
		s.st.seq++
		u.tokens = append(u.tokens, tokenEntry{hashedToken: hashToken(nu.PAT), pat: true, createdAt: now,
			lastTokenPart: lastPart(nu.PAT), name: "rcemu", bypassTwoFactor: true, seq: s.st.seq})
		u.hasResume = true
	}
	s.st.insert(u)
	return u.id, nil
}

// clientIP is Rocket.Chat's rate-limit key: X-Real-IP, else the socket
// address (spec §4.14).
func clientIP(r *http.Request) string {
	if ip := strings.TrimSpace(r.Header.Get("X-Real-IP")); ip != "" {
		return ip
	}
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}
