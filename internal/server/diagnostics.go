package server

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rcsso/rcsso/internal/config"
)

// apiCall is one API URL request as the diagnostics page shows it.
type apiCall struct {
	At            time.Time
	Client        [32]byte // sha256 of client IP and User-Agent: "this browser"
	Origin        string
	Cookie        bool // rcsso's session cookie came with the request
	FetchSite     string
	StorageAccess string
	Status        int
}

// callLog keeps the last API URL requests (bounded ring).
type callLog struct {
	mu    sync.Mutex
	calls []apiCall
	next  int
}

const callLogSize = 256

func (l *callLog) add(c apiCall) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.calls) < callLogSize {
		l.calls = append(l.calls, c)
		return
	}
	l.calls[l.next] = c
	l.next = (l.next + 1) % callLogSize
}

func (l *callLog) forClient(k [32]byte) []apiCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []apiCall
	for _, c := range l.calls {
		if c.Client == k {
			out = append(out, c)
		}
	}
	slices.SortFunc(out, func(a, b apiCall) int { return b.At.Compare(a.At) })
	if len(out) > 10 {
		out = out[:10]
	}
	return out
}

func clientKey(r *http.Request) [32]byte {
	return sha256.Sum256([]byte(clientIP(r) + "\x00" + r.UserAgent()))
}

// check is one line of the diagnostics page.
type check struct {
	Name, State, Detail, Fix string // State: ok, warn, fail
}

// diagnostics is GET /diagnostics: a page a website owner opens in the
// browser that should work. It checks, at the moment it is opened, what
// rcsso can see from here and from Rocket.Chat, and says what to change
// where: Rocket.Chat's iframe settings, whether host pages may frame
// Rocket.Chat, whether iframe integration accepts the website's origins,
// the cookie topology, minting, and whether this browser's API URL calls
// carried rcsso's cookie.
func (s *Server) diagnostics(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := context.WithTimeout(r.Context(), 8*time.Second)
	defer cancel()
	var checks []check
	add := func(name, state, detail, fix string) {
		checks = append(checks, check{name, state, detail, fix})
	}
	pub := strings.TrimRight(s.o.PublicURL.String(), "/")
	apiURL, iframeURL := pub+"/api/rocketchat/token", pub+"/login"

	info, err := s.o.RC.Info(ctx)
	if err != nil {
		add("Rocket.Chat reachable", "fail", err.Error(), "check rocketchat.url / rocketchat.api_url and that rcsso's host can reach Rocket.Chat")
	} else {
		add("Rocket.Chat reachable", "ok", "version "+info.Version, "")
	}
	if set, err := s.o.RC.PublicSettings(ctx); err != nil {
		add("Rocket.Chat settings", "warn", "cannot read public settings: "+err.Error(), "")
	} else {
		str := func(k string) string { v, _ := set[k].(string); return v }
		on := func(k string) bool { v, _ := set[k].(bool); return v }
		switch {
		case !on("Accounts_iframe_enabled"):
			add("Iframe authentication", "warn", "Accounts_iframe_enabled is off: only the host push flow (embed.js) can log people in",
				"Rocket.Chat → Administration → Settings → Accounts → Iframe: enable it")
		case str("Accounts_Iframe_api_url") != apiURL:
			add("API URL", "fail", fmt.Sprintf("Rocket.Chat calls %q", str("Accounts_Iframe_api_url")), "set Accounts → Iframe → API URL to "+apiURL)
		case str("Accounts_iframe_url") != iframeURL && !strings.HasPrefix(str("Accounts_iframe_url"), iframeURL+"?"):
			add("IFrame URL", "fail", fmt.Sprintf("Rocket.Chat shows %q", str("Accounts_iframe_url")), "set Accounts → Iframe → Iframe URL to "+iframeURL)
		default:
			add("Iframe authentication", "ok", "API URL and IFrame URL point at rcsso, method "+str("Accounts_Iframe_api_method"), "")
		}
		for _, o := range s.o.WebsiteOrigins {
			origins := strings.Split(str("Iframe_Integration_receive_origin"), ",")
			switch {
			case !on("Iframe_Integration_receive_enable"):
				add("Iframe integration from "+o, "warn", "Iframe_Integration_receive_enable is off: embed.js cannot push tokens",
					"Rocket.Chat → Settings → General → Iframe Integration: enable Receive and list "+o)
			case slices.Contains(origins, "*"):
				add("Iframe integration from "+o, "warn", "Iframe_Integration_receive_origin is *: any page that frames Rocket.Chat can send it commands",
					"list the website's origins exactly instead of *")
			case !slices.Contains(origins, o):
				fix := "add " + o + " to Iframe_Integration_receive_origin (comma-separated, exact)"
				if slices.Contains(origins, " "+o) {
					fix = "remove the space before " + o + ": Rocket.Chat compares the untrimmed values"
				}
				add("Iframe integration from "+o, "fail", "Rocket.Chat ignores commands from "+o, fix)
			default:
				add("Iframe integration from "+o, "ok", "Rocket.Chat accepts commands from "+o, "")
			}
		}
	}
	if h, _, err := s.o.RC.Head(ctx, "/"); err == nil && len(s.o.WebsiteOrigins) > 0 {
		xfo := strings.ToLower(h.Get("X-Frame-Options"))
		csp := h.Get("Content-Security-Policy")
		switch {
		case xfo != "":
			add("Framing Rocket.Chat", "fail", "Rocket.Chat answers X-Frame-Options: "+xfo+"; pages of "+strings.Join(s.o.WebsiteOrigins, ", ")+" cannot frame it",
				"set Iframe_Restrict_Access=false in Rocket.Chat and send Content-Security-Policy: frame-ancestors "+strings.Join(s.o.WebsiteOrigins, " ")+" from its reverse proxy")
		case !strings.Contains(csp, "frame-ancestors"):
			add("Framing Rocket.Chat", "warn", "any site can frame Rocket.Chat (no frame-ancestors) and drive its origin-unchecked login listener",
				"send Content-Security-Policy: frame-ancestors "+strings.Join(s.o.WebsiteOrigins, " ")+" from Rocket.Chat's reverse proxy")
		default:
			add("Framing Rocket.Chat", "ok", "frame-ancestors is set: "+csp, "")
		}
	}
	rcURL, _ := url.Parse(s.o.RocketChatOrigin)
	if config.SameSite(s.o.PublicURL, rcURL) {
		add("Cookie topology", "ok", "Rocket.Chat and rcsso are on one site: rcsso's cookie is first-party and reaches the API URL even where third-party cookies are blocked", "")
	} else {
		add("Cookie topology", "warn", "Rocket.Chat and rcsso are on different sites: the API URL flow needs third-party cookies, which Safari, Firefox and Chrome Incognito block",
			"put rcsso on the website's domain next to chat.<site> (sso.<site>), or use the host push flow (embed.js with single-use codes)")
	}
	if s.o.Ready != nil {
		if err := s.o.Ready(ctx); err != nil {
			add("Minting", "fail", err.Error(), "")
		} else {
			add("Minting", "ok", "Rocket.Chat accepts rcsso's way of obtaining tokens", "")
		}
	}
	if id, err := s.o.Identity.Identify(r); err == nil {
		add("This browser", "ok", "logged in on the website as "+id.Username+" ("+id.Subject+")", "")
	} else {
		add("This browser", "warn", "not logged in on the website here", "log in on the website in this browser, then open the chat and come back")
	}
	calls := s.calls.forClient(clientKey(r))
	if len(calls) == 0 {
		add("API URL calls from this browser", "warn", "none yet", "open Rocket.Chat in this browser, then reload this page")
	} else if c := calls[0]; !c.Cookie {
		add("API URL calls from this browser", "fail",
			fmt.Sprintf("the last call (%s, from %s, Sec-Fetch-Site %q, Sec-Fetch-Storage-Access %q) came without rcsso's cookie", c.At.Format(time.TimeOnly), c.Origin, c.FetchSite, c.StorageAccess),
			"the browser blocks the cookie as third-party: use one site for Rocket.Chat and rcsso, or the host push flow")
	} else {
		add("API URL calls from this browser", "ok", fmt.Sprintf("the last call (%s, from %s) carried rcsso's cookie and got %d", c.At.Format(time.TimeOnly), c.Origin, c.Status), "")
	}
	w.Header().Set("Cache-Control", "no-store")
	s.render(w, r, http.StatusOK, "diagnostics.html", page{Title: "rcsso diagnostics", Checks: checks})
	return nil
}
