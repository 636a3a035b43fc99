// Package doctor is every check rcsso can make of a deployment: Rocket.Chat's
// version and support window, its iframe authentication and Iframe
// Integration settings, whether host pages may frame it, whether its
// origin can reach rcsso's public_url, and what the minting mode needs
// (the service account's permissions, users.createToken, the rate limiter,
// two-factor settings, Custom OAuth, MongoDB). Each check yields lines of
// OK, WARN or FAIL that say what was found and what to change where.
//
// One implementation serves `rcsso doctor`, the start-up log of `rcsso
// serve` and the operator part of /diagnostics. The checks that belong to
// a minting mode come from the mode's package (mode.Checker), built on
// the same functions the mode's start-up refusal uses.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/rcadmin"
	"github.com/rcsso/rcsso/internal/rocketchat"
)

// Status is the verdict of one line.
type Status string

// The verdicts. FAIL: something rcsso needs does not work; WARN: it works
// with a limit or a risk worth knowing; OK: as it should be.
const (
	OK   Status = "OK"
	Warn Status = "WARN"
	Fail Status = "FAIL"
)

// Result is one line of a report.
type Result struct {
	// Check names the check ("iframe-login", "permissions", …).
	Check  string `json:"check"`
	Status Status `json:"status"`
	// Message says what rcsso found.
	Message string `json:"message"`
	// Fix says what to change where ("" for OK lines).
	Fix string `json:"fix,omitempty"`
}

// String is the line as `rcsso doctor` prints it.
func (r Result) String() string {
	s := fmt.Sprintf("%-4s %-18s %s", r.Status, r.Check, r.Message)
	if r.Fix != "" {
		s += "\n     " + strings.Repeat(" ", 18) + " fix: " + r.Fix
	}
	return s
}

// Report is the outcome of one run.
type Report struct {
	// At is when the run started.
	At      time.Time `json:"at"`
	Results []Result  `json:"results"`
	Summary Summary   `json:"summary"`
}

// Summary counts the lines per status.
type Summary struct {
	OK   int `json:"ok"`
	Warn int `json:"warn"`
	Fail int `json:"fail"`
}

// Failed reports whether any line is FAIL.
func (r Report) Failed() bool { return r.Summary.Fail > 0 }

// Check is one check: Run returns its lines (at least one).
type Check struct {
	Name string
	Run  func(ctx context.Context, p *Probe) []Result
}

// Target is the deployment the checks look at.
type Target struct {
	// RC is the Rocket.Chat REST client (rocketchat.api_url or url).
	RC *rocketchat.Client
	// Admin is the service account (nil: none configured); AdminKey names
	// its configuration keys for messages; AdminPassword is true when it
	// logs in with a username and password rather than a personal access
	// token.
	Admin         rcadmin.Auth
	AdminKey      string
	AdminPassword bool
	// PublicURL is where browsers reach rcsso (public_url);
	// RocketChatOrigin the exact origin of Rocket.Chat's pages
	// (rocketchat.url); WebsiteOrigins the host pages' origins
	// (website.origins), where embed.js runs.
	PublicURL        *url.URL
	RocketChatOrigin string
	WebsiteOrigins   []string
	// Mode is the minting mode's name, for messages.
	Mode string
	// HTTPClient fetches Rocket.Chat's page (framing) and sends the CORS
	// preflight to the API URL (reach). nil: a client with a 10 s timeout
	// that does not follow redirects.
	HTTPClient *http.Client
	// LookupHost resolves public_url's host (nil: net.DefaultResolver).
	LookupHost func(ctx context.Context, host string) ([]string, error)
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// APIURL is the API URL rcsso serves: <public_url>/api/rocketchat/token.
func (t *Target) APIURL() string { return t.pub() + "/api/rocketchat/token" }

// IframeURL is the IFrame URL rcsso serves: <public_url>/login.
func (t *Target) IframeURL() string { return t.pub() + "/login" }

func (t *Target) pub() string {
	if t.PublicURL == nil {
		return ""
	}
	return strings.TrimRight(t.PublicURL.String(), "/")
}

func (t *Target) now() time.Time {
	if t.Now != nil {
		return t.Now()
	}
	return time.Now()
}

func (t *Target) httpClient() *http.Client {
	if t.HTTPClient != nil {
		return t.HTTPClient
	}
	return &http.Client{Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// Doctor runs a list of checks against a target.
type Doctor struct {
	Target Target
	Checks []Check
	// Need is what the service account must hold (mode.Needer), which
	// rcsso setup grants.
	Need []Permission
}

// Run runs every check in order and returns the report. Rocket.Chat's
// answers are fetched once per run and shared by the checks (Probe).
// Checks that cannot ask Rocket.Chat say so in their lines; Run itself
// never fails.
func (d *Doctor) Run(ctx context.Context) Report {
	p := &Probe{T: &d.Target, private: map[string]privateSetting{}}
	rep := Report{At: d.Target.now()}
	for _, c := range d.Checks {
		for _, r := range c.Run(ctx, p) {
			if r.Check == "" {
				r.Check = c.Name
			}
			rep.Results = append(rep.Results, r)
			switch r.Status {
			case OK:
				rep.Summary.OK++
			case Warn:
				rep.Summary.Warn++
			default:
				rep.Summary.Fail++
			}
		}
	}
	return rep
}

// Probe fetches what the checks of one run read from Rocket.Chat, each at
// most once. Safe for concurrent use.
type Probe struct {
	T *Target

	mu          sync.Mutex
	infoDone    bool
	info        rocketchat.ServerInfo
	infoErr     error
	pubDone     bool
	pub         map[string]any
	pubErr      error
	pageDone    bool
	page        http.Header
	pageErr     error
	acctDone    bool
	acct        *Account
	acctErr     error
	private     map[string]privateSetting
	privateDeny error // set once Rocket.Chat refused a private read
}

type privateSetting struct {
	v   any
	err error
}

// Info is GET /api/info.
func (p *Probe) Info(ctx context.Context) (rocketchat.ServerInfo, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.infoDone {
		p.info, p.infoErr = p.T.RC.Info(ctx)
		p.infoDone = true
	}
	return p.info, p.infoErr
}

// Public returns Rocket.Chat's public settings (GET
// /api/v1/settings.public).
func (p *Probe) Public(ctx context.Context) (map[string]any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pubDone {
		p.pub, p.pubErr = p.T.RC.PublicSettings(ctx)
		p.pubDone = true
	}
	return p.pub, p.pubErr
}

// Page returns the response headers of Rocket.Chat's start page (GET
// <rocketchat.url>/), where X-Frame-Options and Content-Security-Policy
// decide whether host pages may frame it.
func (p *Probe) Page(ctx context.Context) (http.Header, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.pageDone {
		p.page, p.pageErr = p.fetchPage(ctx)
		p.pageDone = true
	}
	return p.page, p.pageErr
}

func (p *Probe) fetchPage(ctx context.Context) (http.Header, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.T.RocketChatOrigin+"/", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "rcsso doctor")
	req.Header.Set("Sec-Fetch-Dest", "iframe")
	resp, err := p.T.httpClient().Do(req)
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	return resp.Header, nil
}

// Private returns a setting that is not public (GET
// /api/v1/settings/:_id with the service account), and false when it
// cannot be read: no service account, or one without
// view-privileged-setting (then no further private read is tried).
func (p *Probe) Private(ctx context.Context, id string) (any, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.T.Admin == nil || p.privateDeny != nil {
		return nil, false
	}
	if s, ok := p.private[id]; ok {
		return s.v, s.err == nil
	}
	var s privateSetting
	cr, err := p.T.Admin.Credentials(ctx)
	if err == nil {
		s.v, s.err = p.T.RC.Setting(ctx, cr, id)
	} else {
		s.err = err
	}
	if s.err != nil && (rocketchat.IsForbidden(s.err) || rocketchat.IsUnauthorized(s.err) || err != nil) {
		p.privateDeny = s.err
	}
	p.private[id] = s
	return s.v, s.err == nil
}

// Account is the service account as Rocket.Chat sees it.
type Account struct {
	User rocketchat.User
	// Permissions maps each permission to the role _ids that hold it (nil
	// when the server has no permissions.listAll, before 0.73).
	Permissions map[string][]string
	// Roles are the workspace's roles (nil when roles.list failed).
	Roles []rocketchat.Role
}

// Holds reports whether the account holds perm through any of its roles.
func (a *Account) Holds(perm string) bool {
	for _, r := range a.Permissions[perm] {
		for _, mine := range a.User.Roles {
			if r == mine {
				return true
			}
		}
	}
	return false
}

// Account returns the service account (GET /api/v1/me, permissions.listAll,
// roles.list); nil, nil without one.
func (p *Probe) Account(ctx context.Context) (*Account, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.T.Admin == nil {
		return nil, nil
	}
	if !p.acctDone {
		p.acct, p.acctErr = p.fetchAccount(ctx)
		p.acctDone = true
	}
	return p.acct, p.acctErr
}

func (p *Probe) fetchAccount(ctx context.Context) (*Account, error) {
	cr, err := p.T.Admin.Credentials(ctx)
	if err != nil {
		return nil, err
	}
	me, err := p.T.RC.Me(ctx, cr)
	if err != nil {
		return nil, err
	}
	a := &Account{User: me}
	perms, err := p.T.RC.Permissions(ctx, cr)
	if err != nil && statusOf(err) != http.StatusNotFound {
		return nil, err
	}
	a.Permissions = perms
	a.Roles, _ = p.T.RC.Roles(ctx, cr)
	return a, nil
}

// statusOf is the HTTP status of a Rocket.Chat error (0 when none).
func statusOf(err error) int {
	var e *rocketchat.Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}
