package doctor

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/config"
)

// Where operators change Rocket.Chat's settings (8.x and later; older
// servers say Administration → Settings).
const (
	whereIframe      = "Rocket.Chat → Administration → Workspace → Settings → Accounts → Iframe"
	whereIntegration = "Rocket.Chat → Administration → Workspace → Settings → General → Iframe Integration"
	whereTwoFactor   = "Rocket.Chat → Administration → Workspace → Settings → Accounts → Two Factor Authentication"
	wherePermissions = "Rocket.Chat → Administration → Workspace → Permissions"
	setupHint        = "; or let rcsso setup --config FILE --apply write it"
)

// supportWarnBefore is how long before the end of support doctor warns.
const supportWarnBefore = 30 * 24 * time.Hour

// Standard are the checks every deployment gets, whatever its minting
// mode: rocketchat (reachable, version, support window), iframe-login,
// iframe-integration, framing and reach. The minting mode adds its own
// (mode.Checker).
func Standard() []Check {
	return []Check{
		{Name: "rocketchat", Run: checkRocketChat},
		{Name: "iframe-login", Run: checkIframeLogin},
		{Name: "iframe-integration", Run: checkIntegration},
		{Name: "framing", Run: checkFraming},
		{Name: "reach", Run: checkReach},
	}
}

func ok(msg string) []Result { return []Result{{Status: OK, Message: msg}} }

func checkRocketChat(ctx context.Context, p *Probe) []Result {
	base := p.T.RC.BaseURL().String()
	info, err := p.Info(ctx)
	if err != nil {
		return []Result{{Status: Fail, Message: "Rocket.Chat does not answer at " + base + ": " + err.Error(),
			Fix: "check rocketchat.url (and rocketchat.api_url) in rcsso's configuration, and that this host reaches Rocket.Chat"}}
	}
	v := info.Version
	if v == "" {
		v = "(version hidden)"
	}
	out := []Result{{Status: OK, Message: "Rocket.Chat " + v + " answers at " + base}}
	if info.SupportedVersions == "" {
		out[0].Message += "; it publishes no support window (a workspace not registered with Rocket.Chat Cloud): each release is supported for six months"
		return out
	}
	exp, found, err := SupportWindow(info.SupportedVersions, info.Version)
	now := p.T.now()
	switch {
	case err != nil:
		out = append(out, Result{Check: "support-window", Status: Warn, Message: "cannot read Rocket.Chat's support window: " + err.Error()})
	case !found:
		out = append(out, Result{Check: "support-window", Status: Warn,
			Message: "Rocket.Chat's list of supported versions does not name " + info.Version + ": the mobile and desktop apps may refuse this server",
			Fix:     "upgrade Rocket.Chat to a supported release (https://docs.rocket.chat/docs/version-durability)"})
	case !exp.After(now):
		out = append(out, Result{Check: "support-window", Status: Fail,
			Message: "Rocket.Chat " + info.Version + " left its support window on " + exp.Format(time.DateOnly) + ": the mobile and desktop apps refuse to connect to it",
			Fix:     "upgrade Rocket.Chat to a supported release"})
	case exp.Sub(now) < supportWarnBefore:
		out = append(out, Result{Check: "support-window", Status: Warn,
			Message: "Rocket.Chat " + info.Version + "'s support ends on " + exp.Format(time.DateOnly) + "; then the mobile and desktop apps refuse it",
			Fix:     "plan the upgrade of Rocket.Chat"})
	default:
		out[0].Message += "; supported until " + exp.Format(time.DateOnly)
	}
	return out
}

// publicSettings reads the public settings or returns the FAIL line.
func publicSettings(ctx context.Context, p *Probe) (map[string]any, []Result) {
	set, err := p.Public(ctx)
	if err != nil {
		return nil, []Result{{Status: Fail, Message: "cannot read Rocket.Chat's public settings: " + err.Error(),
			Fix: "check rocketchat.url and that Rocket.Chat answers GET /api/v1/settings.public"}}
	}
	return set, nil
}

func str(set map[string]any, k string) string {
	switch v := set[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// cut is a header value Rocket.Chat sent, for a message: at most 200
// bytes, non-printable characters dropped.
func cut(s string) string {
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// quote quotes a value Rocket.Chat sent for a message, cut at 200 bytes.
func quote(s string) string {
	if len(s) > 200 {
		return strconv.Quote(s[:200]) + "…"
	}
	return strconv.Quote(s)
}

func on(set map[string]any, k string) bool {
	switch v := set[k].(type) {
	case bool:
		return v
	case string:
		b, _ := strconv.ParseBool(v)
		return b
	}
	return false
}

func checkIframeLogin(ctx context.Context, p *Probe) []Result {
	set, fail := publicSettings(ctx, p)
	if fail != nil {
		return fail
	}
	api, frame := p.T.APIURL(), p.T.IframeURL()
	var out []Result
	bad := func(msg, fix string) { out = append(out, Result{Status: Fail, Message: msg, Fix: fix + setupHint}) }
	if !on(set, "Accounts_iframe_enabled") {
		bad("Accounts_iframe_enabled is off: Rocket.Chat's web, desktop and mobile clients never call the API URL nor show the IFrame URL; people see Rocket.Chat's own login form, and embed.js pushes reach only a chat open in a host page",
			whereIframe+": switch Enabled on")
	}
	if got := str(set, "Accounts_Iframe_api_url"); got != api {
		bad("Accounts_Iframe_api_url is "+quote(got)+": Rocket.Chat asks that, not rcsso's API URL", whereIframe+": set API URL to "+api)
	}
	if got := str(set, "Accounts_iframe_url"); got != frame && !strings.HasPrefix(got, frame+"?") {
		bad("Accounts_iframe_url is "+quote(got)+": Rocket.Chat shows that, not rcsso's IFrame URL", whereIframe+": set Iframe URL to "+frame)
	}
	if m := str(set, "Accounts_Iframe_api_method"); m != "GET" && m != "POST" {
		bad("Accounts_Iframe_api_method is "+quote(m)+": rcsso's API URL answers GET and POST (Rocket.Chat sends the value verbatim)", whereIframe+": set API Method to POST")
	}
	if out == nil {
		return ok("iframe authentication is on; API URL " + api + " (" + str(set, "Accounts_Iframe_api_method") + ") and IFrame URL point at rcsso")
	}
	return out
}

func checkIntegration(ctx context.Context, p *Probe) []Result {
	if len(p.T.WebsiteOrigins) == 0 {
		return ok("no website.origins configured: embed.js (the host push) is not used")
	}
	set, fail := publicSettings(ctx, p)
	if fail != nil {
		return fail
	}
	origins := strings.Join(p.T.WebsiteOrigins, ",")
	if !on(set, "Iframe_Integration_receive_enable") {
		return []Result{{Status: Fail,
			Message: "Iframe_Integration_receive_enable is off: Rocket.Chat ignores embed.js's login-with-token from " + strings.Join(p.T.WebsiteOrigins, ", ") + " (embed.js still reports rcsso-token-sent)",
			Fix:     whereIntegration + ": switch Enable Receive on and set Receive Origins to " + origins + setupHint}}
	}
	var out []Result
	list := strings.Split(str(set, "Iframe_Integration_receive_origin"), ",")
	if slices.Contains(list, "*") || str(set, "Iframe_Integration_receive_origin") == "" {
		out = append(out, Result{Status: Warn, Message: "Iframe_Integration_receive_origin is *: any page that frames Rocket.Chat may send it commands (log someone in with a stolen token, log them out)",
			Fix: whereIntegration + ": set Receive Origins to exactly " + origins + setupHint})
	} else {
		for _, o := range p.T.WebsiteOrigins {
			if slices.Contains(list, o) {
				continue
			}
			fix := whereIntegration + ": add " + o + " to Receive Origins (comma-separated, exact)"
			if slices.ContainsFunc(list, func(x string) bool { return strings.TrimSpace(x) == o }) {
				fix = whereIntegration + ": remove the spaces around " + o + " in Receive Origins: Rocket.Chat compares the untrimmed values"
			}
			out = append(out, Result{Status: Fail, Message: "Rocket.Chat ignores embed.js's commands from " + o + " (not in Iframe_Integration_receive_origin)", Fix: fix + setupHint})
		}
	}
	if !on(set, "Iframe_Integration_send_enable") {
		out = append(out, Result{Status: Warn, Message: "Iframe_Integration_send_enable is off: embed.js hears no events (startup, Custom_Script_Logged_In, unread-changed), so it pushes the token on timers and cannot tell whether the chat logged in",
			Fix: whereIntegration + ": switch Enable Send on" + setupHint})
	} else if t := str(set, "Iframe_Integration_send_target_origin"); t == "*" || t == "" {
		out = append(out, Result{Status: Warn, Message: "Iframe_Integration_send_target_origin is *: Rocket.Chat's events (room names, unread counts) go to any page that frames it",
			Fix: whereIntegration + ": set Send Target Origin to the website's origin (" + p.T.WebsiteOrigins[0] + ")"})
	}
	if out == nil {
		return ok("Rocket.Chat accepts embed.js's commands from " + strings.Join(p.T.WebsiteOrigins, ", ") + " and sends it events")
	}
	return out
}

func checkFraming(ctx context.Context, p *Probe) []Result {
	if len(p.T.WebsiteOrigins) == 0 {
		return ok("no website.origins configured: no host page frames Rocket.Chat")
	}
	h, err := p.Page(ctx)
	if err != nil {
		return []Result{{Status: Warn, Message: "cannot fetch Rocket.Chat's page " + p.T.RocketChatOrigin + "/ to see whether host pages may frame it: " + err.Error()}}
	}
	origins := strings.Join(p.T.WebsiteOrigins, " ")
	var out []Result
	if xfo := strings.TrimSpace(h.Get("X-Frame-Options")); xfo != "" {
		msg := "Rocket.Chat answers X-Frame-Options: " + cut(xfo) + ": browsers refuse to show it in pages of " + strings.Join(p.T.WebsiteOrigins, ", ")
		if v, ok := p.Private(ctx, "Iframe_Restrict_Access"); ok && on(map[string]any{"v": v}, "v") {
			msg += " (Iframe_Restrict_Access is on)"
		}
		out = append(out, Result{Status: Fail, Message: msg,
			Fix: "Rocket.Chat → Administration → Workspace → Settings → General → Iframe Restrict Access: off (or remove the header at Rocket.Chat's reverse proxy), and send Content-Security-Policy: frame-ancestors " + origins + " from that proxy"})
	}
	lists := frameAncestors(h.Values("Content-Security-Policy"))
	if len(lists) == 0 {
		if out == nil {
			out = append(out, Result{Status: Warn, Message: "any site can frame Rocket.Chat (no Content-Security-Policy frame-ancestors) and drive its login listener, which does not check origins",
				Fix: "send Content-Security-Policy: frame-ancestors " + origins + " from Rocket.Chat's reverse proxy (Rocket.Chat has no setting for it)"})
		}
		return out
	}
	for _, o := range p.T.WebsiteOrigins {
		for _, l := range lists {
			if !ancestorAllowed(l, o, p.T.RocketChatOrigin) {
				out = append(out, Result{Status: Fail, Message: "Rocket.Chat's frame-ancestors " + quote(strings.Join(l, " ")) + " does not allow pages of " + o,
					Fix: "add " + o + " to frame-ancestors in the Content-Security-Policy of Rocket.Chat's reverse proxy"})
				break
			}
		}
	}
	if out == nil {
		return ok("pages of " + strings.Join(p.T.WebsiteOrigins, ", ") + " may frame Rocket.Chat, and only the origins its frame-ancestors lists")
	}
	return out
}

func checkReach(ctx context.Context, p *Probe) []Result {
	pub := p.T.PublicURL
	if pub == nil || pub.Host == "" {
		return []Result{{Status: Fail, Message: "public_url is not set", Fix: "set public_url to where browsers reach rcsso"}}
	}
	rc, _ := url.Parse(p.T.RocketChatOrigin)
	if rc != nil && rc.Scheme == "https" && pub.Scheme != "https" {
		return []Result{{Status: Fail, Message: "Rocket.Chat's pages are https but public_url is " + pub.Scheme + ": browsers block the API URL call and the IFrame URL as mixed content",
			Fix: "serve rcsso over https and set public_url to its https URL"}}
	}
	host := pub.Hostname()
	if net.ParseIP(host) == nil {
		lookup := p.T.LookupHost
		if lookup == nil {
			lookup = net.DefaultResolver.LookupHost
		}
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := lookup(lctx, host)
		cancel()
		if err != nil {
			return []Result{{Status: Fail, Message: "public_url's host " + host + " does not resolve from here: " + err.Error(),
				Fix: "add a DNS record for " + host + " (browsers must resolve it too), or correct public_url"}}
		}
	}
	method := "POST"
	if set, err := p.Public(ctx); err == nil {
		if m := str(set, "Accounts_Iframe_api_method"); m == "GET" || m == "POST" {
			method = m
		}
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodOptions, p.T.APIURL(), nil)
	if err != nil {
		return []Result{{Status: Fail, Message: "public_url gives no valid API URL: " + err.Error(), Fix: "correct public_url"}}
	}
	site := "cross-site"
	if rc != nil && config.SameSite(pub, rc) {
		site = "same-site"
	}
	for k, v := range map[string]string{"Origin": p.T.RocketChatOrigin, "Access-Control-Request-Method": method,
		"Access-Control-Request-Headers": "content-type", "Sec-Fetch-Mode": "cors", "Sec-Fetch-Site": site, "Sec-Fetch-Dest": "empty",
		"User-Agent": "rcsso doctor"} {
		req.Header.Set(k, v)
	}
	resp, err := p.T.httpClient().Do(req)
	if err != nil {
		if isTLSError(err) {
			return []Result{{Status: Fail, Message: "TLS to " + pub.Host + " fails: " + err.Error() + "; browsers refuse it too",
				Fix: "serve a certificate for " + host + " that browsers trust (whole chain) at public_url"}}
		}
		return []Result{{Status: Fail, Message: "cannot reach the API URL " + p.T.APIURL() + " from here: " + err.Error(),
			Fix: "check that rcsso runs and that its reverse proxy forwards public_url to it"}}
	}
	resp.Body.Close()
	acao, acac := resp.Header.Get("Access-Control-Allow-Origin"), resp.Header.Get("Access-Control-Allow-Credentials")
	allowed := strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), method)
	what := fmt.Sprintf("a CORS preflight of the API URL like Rocket.Chat's pages send (OPTIONS %s, Origin %s, method %s) got %d", p.T.APIURL(), p.T.RocketChatOrigin, method, resp.StatusCode)
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300 && acao == p.T.RocketChatOrigin && acac == "true" && allowed:
		return ok("public_url resolves and answers Rocket.Chat's CORS preflight: " + what + " allowing credentials")
	case resp.StatusCode == http.StatusNotFound:
		return []Result{{Status: Fail, Message: what + ": public_url does not lead to rcsso",
			Fix: "route public_url (path included) to rcsso at the reverse proxy"}}
	case acao == "":
		return []Result{{Status: Fail, Message: what + " without Access-Control-Allow-Origin: browsers refuse the API URL's answer",
			Fix: "rocketchat.url must be the origin Rocket.Chat's pages run on (" + p.T.RocketChatOrigin + "), and a reverse proxy in front of rcsso must pass OPTIONS requests and CORS headers through"}}
	default:
		return []Result{{Status: Fail, Message: fmt.Sprintf("%s with Access-Control-Allow-Origin %s, -Credentials %s, -Methods %s: browsers refuse the answer", what, quote(acao), quote(acac), quote(resp.Header.Get("Access-Control-Allow-Methods"))),
			Fix: "let rcsso answer CORS itself: remove CORS headers added by the reverse proxy in front of it"}}
	}
}

func isTLSError(err error) bool {
	var (
		cv  *tls.CertificateVerificationError
		rh  tls.RecordHeaderError
		ua  x509.UnknownAuthorityError
		he  x509.HostnameError
		ci  x509.CertificateInvalidError
		alt *tls.AlertError
	)
	return errors.As(err, &cv) || errors.As(err, &rh) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &alt)
}

// RESTUse is how a minting mode calls Rocket.Chat's REST API, which decides
// what its rate limiter means for it.
type RESTUse int

const (
	// ServiceAccountCalls: the service account calls users.create,
	// users.info, users.update, users.createToken for each first visit; it
	// needs api-bypass-rate-limit (modes create-token and, for
	// provisioning, password).
	ServiceAccountCalls RESTUse = iota
	// Logins: each new chat session is one POST /api/v1/login from rcsso's
	// address, which no permission exempts (modes oauth and password).
	Logins
	// NoREST: the mode writes MongoDB; the limiter does not apply.
	NoREST
)

// RateLimit checks Rocket.Chat's REST rate limiter against how the mode
// uses the API (one line per use): limiter settings (API_Enable_Rate_Limiter,
// …_Limit_Calls_Default, …_Limit_Time_Default; readable with
// view-privileged-setting) and the service account's api-bypass-rate-limit
// (protocol spec §4.14).
func RateLimit(uses ...RESTUse) Check {
	return Check{Name: "rate-limit", Run: func(ctx context.Context, p *Probe) []Result {
		var out []Result
		for _, u := range uses {
			out = append(out, rateLimit(ctx, p, u))
		}
		return out
	}}
}

func rateLimit(ctx context.Context, p *Probe, use RESTUse) Result {
	if use == NoREST {
		return Result{Status: OK, Message: "not used: the minting mode writes Rocket.Chat's MongoDB"}
	}
	enabled, known := true, false
	calls, window := 10, 60*time.Second
	if v, ok := p.Private(ctx, "API_Enable_Rate_Limiter"); ok {
		enabled, known = on(map[string]any{"v": v}, "v"), true
		if n, ok := p.Private(ctx, "API_Enable_Rate_Limiter_Limit_Calls_Default"); ok {
			calls = intOf(n, calls)
		}
		if ms, ok := p.Private(ctx, "API_Enable_Rate_Limiter_Limit_Time_Default"); ok {
			window = time.Duration(intOf(ms, 60000)) * time.Millisecond
		}
	}
	if known && !enabled {
		return Result{Status: OK, Message: "Rocket.Chat's REST rate limiter is off (API_Enable_Rate_Limiter)"}
	}
	limit := fmt.Sprintf("%d calls per %s per endpoint and IP address", calls, window)
	if !known {
		limit += " (Rocket.Chat's defaults: rcsso cannot read the limiter settings without view-privileged-setting)"
	}
	if use == Logins {
		return Result{Status: Warn, Message: "Rocket.Chat's rate limiter allows POST /api/v1/login " + limit + " and no permission exempts it: at most that many new chat sessions from rcsso's address (rcsso reuses each person's token, so this bounds first visits)",
			Fix: "raise API_Enable_Rate_Limiter_Limit_Calls_Default (Administration → Workspace → Settings → Rate Limiter) if first visits come in bursts, or use minting mode create-token"}
	}
	a, err := p.Account(ctx)
	switch {
	case err != nil:
		return Result{Status: Warn, Message: "cannot ask Rocket.Chat about the service account: " + err.Error()}
	case a == nil:
		return Result{Status: Fail, Message: "no service account is configured, yet the minting mode calls Rocket.Chat's REST API as one",
			Fix: "set rocketchat.admin_user_id and admin_token"}
	case a.Holds("api-bypass-rate-limit"):
		return Result{Status: OK, Message: "the service account " + a.User.Username + " bypasses Rocket.Chat's rate limiter (api-bypass-rate-limit)"}
	}
	return Result{Status: Fail, Message: "the service account " + a.User.Username + " lacks api-bypass-rate-limit: Rocket.Chat allows it " + limit + ", so a burst of first visits gets 429",
		Fix: wherePermissions + ": tick api-bypass-rate-limit for one of the service account's roles (bot and admin hold it by default)" + setupHint}
}

func intOf(v any, def int) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case string:
		if i, err := strconv.Atoi(strings.TrimSpace(n)); err == nil {
			return i
		}
	}
	return def
}

// LoginKind is how a minting mode's tokens log people in, which decides
// whether Rocket.Chat's two-factor authentication gets in the way.
type LoginKind int

const (
	// ResumeLogins: resume tokens (create-token, mongo-resume), which the
	// two-factor login hook skips.
	ResumeLogins LoginKind = iota
	// IframeTokenLogins: services.iframe.token logins (mongo-iframe),
	// which it does not skip.
	IframeTokenLogins
	// PasswordLogins: password logins (mode password).
	PasswordLogins
	// OAuthLogins: access-token logins of a Custom OAuth service (mode
	// oauth).
	OAuthLogins
)

// TwoFactor checks Rocket.Chat's two-factor settings against the mode's
// logins. Rocket.Chat's login hook asks for a code at every login but
// resume, proxy and CAS logins (RocketChat/Rocket.Chat apps/meteor/app/2fa/server/loginHandler.ts;
// protocol spec §2.1), with e-mail codes for users who have e-mail 2FA and
// a verified e-mail, which Accounts_TwoFactorAuthentication_By_Email_Auto_Opt_In
// gives every new user. rcsso cannot supply such a code. And REST
// endpoints marked twoFactorRequired (users.update) want x-2fa-code from a
// service account logged in with a password, which rcsso does not send.
func TwoFactor(kind LoginKind) Check {
	return Check{Name: "two-factor", Run: func(ctx context.Context, p *Probe) []Result {
		set, fail := publicSettings(ctx, p)
		if fail != nil {
			return fail
		}
		if !on(set, "Accounts_TwoFactorAuthentication_Enabled") {
			return ok("two-factor authentication is off (Accounts_TwoFactorAuthentication_Enabled)")
		}
		var out []Result
		email := on(set, "Accounts_TwoFactorAuthentication_By_Email_Enabled")
		autoOptIn := true
		if v, ok := p.Private(ctx, "Accounts_TwoFactorAuthentication_By_Email_Auto_Opt_In"); ok {
			autoOptIn = on(map[string]any{"v": v}, "v")
		}
		switch {
		case !email:
		case kind == OAuthLogins && autoOptIn:
			out = append(out, Result{Status: Fail,
				Message: "e-mail two-factor is on and given to every new user (By_Email_Auto_Opt_In): Rocket.Chat asks people with a verified e-mail for an e-mailed code at each OAuth login, which rcsso cannot give, so their chat logins fail",
				Fix:     whereTwoFactor + ": switch off \"Enable Two Factor Authentication via Email\" (or Auto Opt In, for new users only), or use minting mode create-token"})
		case kind == OAuthLogins:
			out = append(out, Result{Status: Warn,
				Message: "e-mail two-factor is on: people who turned it on and have a verified e-mail are asked for an e-mailed code at each OAuth login, which rcsso cannot give",
				Fix:     whereTwoFactor + ": switch off \"Enable Two Factor Authentication via Email\", or use minting mode create-token"})
		case kind == IframeTokenLogins:
			out = append(out, Result{Status: Warn,
				Message: "e-mail two-factor is on: iframe-token logins of people with e-mail two-factor and a verified e-mail need an e-mailed code; rcsso refuses to mint for them",
				Fix:     "use minting mode mongo-resume (resume tokens skip two-factor), or " + whereTwoFactor + ": switch off \"Enable Two Factor Authentication via Email\""})
		case kind == PasswordLogins:
			out = append(out, Result{Status: Warn,
				Message: "e-mail two-factor is on: accounts rcsso adopts that have e-mail two-factor and a verified e-mail cannot be logged in with their password (rcsso creates new accounts with unverified e-mails for that reason)",
				Fix:     "use minting mode create-token, or " + whereTwoFactor + ": switch off \"Enable Two Factor Authentication via Email\""})
		}
		if p.T.AdminPassword && on(set, "Accounts_TwoFactorAuthentication_Enforce_Password_Fallback") && kind != OAuthLogins {
			out = append(out, Result{Status: Warn,
				Message: "the service account logs in with a password (" + p.T.AdminKey + "): Rocket.Chat wants a two-factor code for users.update from such sessions, so keeping names and e-mails in step fails once its account is older than the remember period",
				Fix:     "give rcsso a personal access token created with \"Ignore Two Factor Authentication\" (My Account → Personal Access Tokens) in rocketchat.admin_user_id / admin_token"})
		}
		if out == nil {
			what := map[LoginKind]string{ResumeLogins: "resume tokens, which two-factor never stops"}[kind]
			if what == "" {
				what = "no login two-factor stops (e-mail two-factor is off)"
			}
			return ok("two-factor is on; rcsso logs people in with " + what)
		}
		return out
	}}
}
