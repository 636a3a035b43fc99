package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rcsso/rcsso/internal/identity"
)

// namedPassword is a password source called name that accepts password
// good for any user name, or, with down set, cannot check anything.
type namedPassword struct {
	name, good string
	down       atomic.Bool
	calls      atomic.Int64
}

func (p *namedPassword) Name() string { return p.name }
func (p *namedPassword) Identify(*http.Request) (identity.Identity, error) {
	return identity.Identity{}, identity.ErrNotLoggedIn
}

func (p *namedPassword) Authenticate(_ context.Context, username, password string) (identity.Identity, error) {
	p.calls.Add(1)
	if p.down.Load() {
		return identity.Identity{}, fmt.Errorf("%s: %w: connection refused", p.name, identity.ErrSourceUnavailable)
	}
	if password != p.good {
		return identity.Identity{}, identity.ErrBadCredentials
	}
	return identity.Identity{Subject: p.name + ":" + username, Source: p.name, Username: username}, nil
}

// The IFrame URL's login form checks the password against every password
// source in order (local accounts, then a directory): the first that
// accepts wins, and the failure limits count one failed attempt per form
// submission, not one per source.
func TestLoginFormTriesEveryPasswordSource(t *testing.T) {
	local := &namedPassword{name: "local", good: "local-password"}
	corp := &namedPassword{name: "corp", good: "directory-password"}
	s := newPasswordServer(t, &fakePassword{})
	s.o.Identity = identity.Chain{local, corp}

	w := loginFrom(s, "198.51.100.1", "alice", "directory-password")
	if w.Code != http.StatusSeeOther || !strings.Contains(w.Header().Get("Set-Cookie"), "rcsso_session=") {
		t.Fatalf("the second source's password: %d %s", w.Code, w.Body)
	}
	if w := loginFrom(s, "198.51.100.1", "alice", "local-password"); w.Code != http.StatusSeeOther {
		t.Fatalf("the first source's password: %d", w.Code)
	}
	if n := corp.calls.Load(); n != 1 {
		t.Fatalf("the directory was asked %d times; the first source's success must end the search", n)
	}

	// Wrong for both: 401 five times, then the per-(user, client) limit,
	// once per attempt although two sources checked each.
	for i := range 5 {
		if w := loginFrom(s, "198.51.100.2", "bob", "guess"); w.Code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: %d", i+1, w.Code)
		}
	}
	if w := loginFrom(s, "198.51.100.2", "bob", "guess"); w.Code != http.StatusTooManyRequests || w.Header().Get("Retry-After") == "" {
		t.Fatalf("sixth wrong password: %d", w.Code)
	}

	// The directory is down: a local account still logs in; anyone else
	// sees the login form again with 502 and why, not "wrong password".
	corp.down.Store(true)
	if w := loginFrom(s, "198.51.100.3", "carol", "local-password"); w.Code != http.StatusSeeOther {
		t.Fatalf("local login while the directory is down: %d", w.Code)
	}
	w = loginFrom(s, "198.51.100.3", "carol", "directory-password")
	body := w.Body.String()
	if w.Code != http.StatusBadGateway || !strings.Contains(body, `id="login-form"`) || !strings.Contains(body, `id="login-error"`) ||
		strings.Contains(body, "Wrong user name or password") {
		t.Fatalf("directory down: %d %s", w.Code, body)
	}
}

// When the only password source cannot check passwords, attempts are not
// counted as failures (nobody's password was wrong); when another source
// did check and refuse, they are, or the failure limits would not hold
// for that source while the other is down.
func TestLoginFormSourceDownCounting(t *testing.T) {
	corp := &namedPassword{name: "corp", good: "directory-password"}
	corp.down.Store(true)
	s := newPasswordServer(t, &fakePassword{})
	s.o.Identity = identity.Chain{corp}
	for i := range 8 {
		if w := loginFrom(s, "198.51.100.4", "dave", "x"); w.Code != http.StatusBadGateway {
			t.Fatalf("attempt %d while the directory is down: %d", i+1, w.Code)
		}
	}
	corp.down.Store(false)
	if w := loginFrom(s, "198.51.100.4", "dave", "directory-password"); w.Code != http.StatusSeeOther {
		t.Fatalf("login once the directory is back: %d", w.Code)
	}

	local := &namedPassword{name: "local", good: "local-password"}
	corp.down.Store(true)
	s.o.Identity = identity.Chain{local, corp}
	for range 5 {
		if w := loginFrom(s, "198.51.100.5", "erin", "guess"); w.Code != http.StatusBadGateway {
			t.Fatalf("local refused, directory down: %d", w.Code)
		}
	}
	if w := loginFrom(s, "198.51.100.5", "erin", "guess"); w.Code != http.StatusTooManyRequests {
		t.Fatalf("sixth guess checked by the local source: %d, want 429", w.Code)
	}
}
