// Package demo is the small website `rcsso demo` runs next to the
// Rocket.Chat emulator and rcsso: a home page whose "Log in" uses rcsso's
// local accounts, and a chat page that embeds Rocket.Chat in an iframe.
package demo

import (
	"html/template"
	"net/http"
)

// SiteOptions are the URLs the demo website links to.
type SiteOptions struct {
	// SiteURL is the demo website's own URL ("http://127.0.0.1:8000").
	SiteURL string
	// RcssoURL is rcsso's public URL.
	RcssoURL string
	// RocketChatURL is the Rocket.Chat (emulator) URL.
	RocketChatURL string
}

var pages = template.Must(template.New("").Parse(`
{{define "style"}}<style>
body{font:16px/1.45 system-ui,sans-serif;margin:0;background:#fafafa;color:#1f2329}
header{background:#12355b;color:#fff;padding:.8rem 1.5rem;display:flex;gap:1.5rem;align-items:center}
header a{color:#fff}
main{padding:1.5rem;max-width:48rem}
iframe{border:0;width:100%;height:calc(100vh - 3.2rem);display:block;background:#fff}
button,.button{font:inherit;padding:.5rem 1rem;background:#1d74f5;color:#fff;border:0;border-radius:4px;text-decoration:none;cursor:pointer}
form{display:inline}
</style>{{end}}
{{define "header"}}<header><strong>Example Corp</strong><a href="/">Home</a><a href="/chat" id="nav-chat">Chat (API URL)</a><a href="/embed" id="nav-embed">Chat (host push)</a>
<form method="post" action="{{.RcssoURL}}/logout"><input type="hidden" name="return_to" value="{{.SiteURL}}/"><button id="logout">Log out</button></form></header>{{end}}
{{define "home"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Example Corp</title>{{template "style"}}</head><body>
{{template "header" .}}<main>
<h1>Welcome to Example Corp</h1>
<p>This website logs its visitors in with rcsso's local accounts. Its chat page embeds Rocket.Chat (here: rcsso's emulator), which signs the visitor in through iframe authentication: no second password.</p>
<ol>
<li><a class="button" id="login" href="{{.RcssoURL}}/login?return_to={{.SiteURL}}/">Log in on the website</a></li>
<li><a class="button" href="/chat">Open the chat</a> — you are already signed in there.</li>
</ol>
<p>Two ways in, side by side:</p>
<ul>
<li><a href="/chat">Chat (API URL)</a>: Rocket.Chat's iframe authentication calls rcsso's API URL with the browser's cookies. Open it without logging in first and Rocket.Chat shows rcsso's IFrame URL (the login form) inside the chat.</li>
<li><a href="/embed">Chat (host push)</a>: this page includes rcsso's <code>embed.js</code>; the <code>&lt;rocketchat-embed&gt;</code> element gets the token from rcsso and pushes it into the chat with Rocket.Chat's iframe integration command. No third-party cookie is involved.</li>
</ul>
</main></body></html>{{end}}
{{define "embed"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chat (host push) — Example Corp</title>{{template "style"}}
<script src="{{.RcssoURL}}/embed.js" defer></script></head><body>
{{template "header" .}}<rocketchat-embed id="chat" rocketchat="{{.RocketChatURL}}" path="/home" style="height:calc(100vh - 3.2rem)"></rocketchat-embed></body></html>{{end}}
{{define "chat"}}<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Chat — Example Corp</title>{{template "style"}}</head><body>
{{template "header" .}}<iframe id="chat" title="Chat" src="{{.RocketChatURL}}/" allow="storage-access"></iframe></body></html>{{end}}
`))

// Site returns the demo website's handler.
func Site(o SiteOptions) http.Handler {
	mux := http.NewServeMux()
	render := func(name string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; script-src "+o.RcssoURL+
				"; connect-src "+o.RcssoURL+"; frame-src "+o.RocketChatURL+"; form-action "+o.RcssoURL)
			_ = pages.ExecuteTemplate(w, name, o)
		}
	}
	mux.HandleFunc("GET /{$}", render("home"))
	mux.HandleFunc("GET /chat", render("chat"))
	mux.HandleFunc("GET /embed", render("embed"))
	return mux
}
