// Package demo is the small website `rcsso demo` runs next to the
// Rocket.Chat emulator and rcsso: a home page whose "Log in" uses rcsso's
// local accounts, and two chat pages that embed Rocket.Chat in an iframe
// (API URL) or with embed.js (host push). Every page's header says who is
// logged in, with a log-out button.
package demo

import (
	"errors"
	"html/template"
	"log/slog"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rcsso/rcsso/internal/identity"
)

// SiteOptions are the URLs the demo website links to and how it learns who
// is logged in.
type SiteOptions struct {
	// SiteURL is the demo website's own URL ("http://127.0.0.1:8000").
	SiteURL string
	// RcssoURL is rcsso's public URL.
	RcssoURL string
	// RocketChatURL is the Rocket.Chat (emulator) URL.
	RocketChatURL string
	// Visitor names the person a request comes from: rcsso's identity
	// sources (app.App.Identity.Identify). The demo website is on rcsso's
	// host (another port), and browsers send a host's cookies to every port,
	// so the request carries rcsso's session cookie; a real website asks its
	// own login system instead. identity.ErrNotLoggedIn means nobody; nil
	// Visitor means nobody is ever logged in.
	Visitor func(*http.Request) (identity.Identity, error)
	// Logger receives errors other than identity.ErrNotLoggedIn from
	// Visitor (nil: discarded).
	Logger *slog.Logger
}

// visitor is who the header shows.
type visitor struct {
	Name, Email, Username string
}

// Initial is the first letter of the shown name, for the avatar.
func (v visitor) Initial() string {
	r, _ := utf8.DecodeRuneInString(v.Shown())
	if r == utf8.RuneError {
		return "?"
	}
	return string(unicode.ToUpper(r))
}

// Shown is the display name, or the username when there is none.
func (v visitor) Shown() string {
	if strings.TrimSpace(v.Name) != "" {
		return v.Name
	}
	return v.Username
}

// pageData is what every page template gets.
type pageData struct {
	SiteOptions
	// Who is the logged-in visitor, nil when nobody is.
	Who *visitor
	// Unknown is set when rcsso could not tell who the visitor is.
	Unknown bool
	// Path is the page's path, for the navigation's current page.
	Path string
}

var pages = template.Must(template.New("").Parse(`
{{define "style"}}<style>
*{box-sizing:border-box}
body{font:16px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#1f2329}
body.app{height:100vh;display:flex;flex-direction:column}
header.site{background:#12355b;color:#fff;padding:.6rem 1.5rem;display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;align-items:center;min-height:3.5rem}
header.site a{color:#fff}
header.site nav{display:flex;gap:1.25rem;flex-wrap:wrap}
header.site nav a[aria-current]{text-decoration-thickness:3px}
.brand{font-weight:700}
.who{margin-left:auto;display:flex;align-items:center;gap:.6rem}
.who small{display:block;opacity:.8;font-size:.8rem;line-height:1.1}
.who b{display:block;line-height:1.2}
.avatar{width:2rem;height:2rem;border-radius:50%;background:#f5455c;color:#fff;display:inline-flex;align-items:center;justify-content:center;font-weight:700;flex:none}
main{padding:1.5rem;max-width:48rem}
main li{margin:.4rem 0}
.steps li{margin:.9rem 0}
iframe#chat,rocketchat-embed#chat{border:0;width:100%;flex:1;min-height:0;height:auto;display:block;background:#fff}
button,.button{font:inherit;display:inline-block;padding:.45rem 1rem;background:#1d74f5;color:#fff;border:0;border-radius:4px;text-decoration:none;cursor:pointer;line-height:1.3}
header.site button,header.site .button{background:#fff;color:#12355b}
.done{color:#1a7f37;font-weight:600}
form{display:inline;margin:0}
</style>{{end}}
{{define "header"}}<header class="site"><span class="brand">Example Corp</span>
<nav><a href="/"{{if eq .Path "/"}} aria-current="page"{{end}}>Home</a><a href="/chat" id="nav-chat"{{if eq .Path "/chat"}} aria-current="page"{{end}}>Chat (API URL)</a><a href="/embed" id="nav-embed"{{if eq .Path "/embed"}} aria-current="page"{{end}}>Chat (host push)</a></nav>
<div class="who" id="who">{{with .Who}}<span class="avatar" aria-hidden="true">{{.Initial}}</span><span><b id="who-name">{{.Shown}}</b>{{if .Email}}<small id="who-email">{{.Email}}</small>{{end}}</span>
<form method="post" action="{{$.RcssoURL}}/logout"><input type="hidden" name="return_to" value="{{$.SiteURL}}/"><button id="logout">Log out</button></form>
{{- else}}<span>Not logged in{{if .Unknown}} (rcsso could not tell; see its log){{end}}</span><a class="button" id="nav-login" href="{{.RcssoURL}}/login?return_to={{.SiteURL}}{{.Path}}">Log in</a>{{end}}</div></header>{{end}}
{{define "home"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Example Corp</title>{{template "style"}}</head><body>
{{template "header" .}}<main>
<h1>Welcome to Example Corp</h1>
<p>This website logs its visitors in with rcsso's local accounts. Its chat page embeds Rocket.Chat (here: rcsso's emulator), which signs the visitor in through iframe authentication: no second password.</p>
<ol class="steps">
{{with .Who}}<li><span class="done">Logged in</span> as {{.Shown}}.</li>
{{else}}<li><a class="button" id="login" href="{{.RcssoURL}}/login?return_to={{.SiteURL}}/">Log in on the website</a></li>
{{end}}<li><a class="button" id="open-chat" href="/chat">Open the chat</a> — {{if .Who}}you are already signed in there{{else}}once logged in here, you are signed in there too{{end}}: post in #general.</li>
</ol>
<p>Two ways in, side by side:</p>
<ul>
<li><a href="/chat">Chat (API URL)</a>: Rocket.Chat's iframe authentication calls rcsso's API URL with the browser's cookies. Open it without logging in first and Rocket.Chat shows rcsso's IFrame URL (the login form) inside the chat.</li>
<li><a href="/embed">Chat (host push)</a>: this page includes rcsso's <code>embed.js</code>; the <code>&lt;rocketchat-embed&gt;</code> element gets the token from rcsso and pushes it into the chat with Rocket.Chat's iframe integration command. No third-party cookie is involved.</li>
</ul>
</main></body></html>{{end}}
{{define "embed"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Chat (host push) — Example Corp</title>{{template "style"}}
<script src="{{.RcssoURL}}/embed.js" defer></script></head><body class="app">
{{template "header" .}}<rocketchat-embed id="chat" rocketchat="{{.RocketChatURL}}" path="/channel/general"></rocketchat-embed></body></html>{{end}}
{{define "chat"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Chat — Example Corp</title>{{template "style"}}</head><body class="app">
{{template "header" .}}<iframe id="chat" title="Chat" src="{{.RocketChatURL}}/channel/general" allow="storage-access"></iframe></body></html>{{end}}
`))

// Site returns the demo website's handler.
func Site(o SiteOptions) http.Handler {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// form-action governs the form post to rcsso's /logout and the redirect
	// rcsso answers it with, back to this site: both origins are listed.
	csp := "default-src 'none'; style-src 'unsafe-inline'; script-src " + o.RcssoURL +
		"; connect-src " + o.RcssoURL + "; frame-src " + o.RocketChatURL + "; form-action 'self' " + o.RcssoURL +
		"; base-uri 'none'; frame-ancestors 'none'"
	mux := http.NewServeMux()
	render := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			d := pageData{SiteOptions: o, Path: r.URL.Path}
			if o.Visitor != nil {
				id, err := o.Visitor(r)
				switch {
				case err == nil:
					d.Who = &visitor{Name: id.Name, Email: id.Email, Username: id.Username}
				case !errors.Is(err, identity.ErrNotLoggedIn):
					d.Unknown = true
					log.Warn("demo site: rcsso could not tell who the visitor is", "err", err)
				}
			}
			h := w.Header()
			h.Set("Content-Type", "text/html; charset=utf-8")
			h.Set("Content-Security-Policy", csp)
			h.Set("Cache-Control", "no-store")
			if err := pages.ExecuteTemplate(w, name, d); err != nil {
				log.Warn("demo site: rendering a page", "page", name, "err", err)
			}
		}
	}
	mux.HandleFunc("GET /{$}", render("home"))
	mux.HandleFunc("GET /chat", render("chat"))
	mux.HandleFunc("GET /embed", render("embed"))
	return mux
}
