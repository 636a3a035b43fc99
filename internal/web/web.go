// Package web holds rcsso's pages and scripts, embedded in the binary:
// the IFrame URL pages (login form, token hand-over, not-logged-in, errors),
// the logout pages and the static files they use. Pages carry no inline
// script: data for scripts travels in a JSON island
// (<script type="application/json" id="rcsso-data">), so the CSP can be
// script-src 'self'.
package web

import (
	"embed"
	"html/template"
	"io/fs"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Templates are the parsed page templates, one per page name
// ("login.html", "handoff.html", "notloggedin.html", "error.html",
// "logout.html", "loggedout.html"), each rendered inside "layout".
var Templates = template.Must(template.New("").ParseFS(templateFS, "templates/*.html"))

// Static is the static file tree served under /static/.
var Static, _ = fs.Sub(staticFS, "static")
