package mongo

import (
	"context"
	"errors"
	"testing"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

// Every exported method that talks to MongoDB reports an unreachable or
// closed MongoDB as mint.ErrUnavailable (the API URL answers 503), keeping
// the driver's error for the log; other errors stay as they were.
func TestOutageIsErrUnavailable(t *testing.T) {
	ctx := t.Context()
	id := identity.Identity{Subject: "local:alice", Username: "alice", Email: "alice@example.com", EmailVerified: true}
	tok := mint.Token{Value: "t", Kind: mint.LoginToken, UserID: "U1"}
	for _, c := range []struct {
		name   string
		closed bool
	}{{"no server", false}, {"client disconnected", true}} {
		t.Run(c.name, func(t *testing.T) {
			u, err := Connect("mongodb://127.0.0.1:1/rocketchat?serverSelectionTimeoutMS=50&connectTimeoutMS=50")
			if err != nil {
				t.Fatal(err)
			}
			if c.closed {
				_ = u.Close(context.Background())
			} else {
				t.Cleanup(func() { _ = u.Close(context.Background()) })
			}
			st := memory.New()
			_, _ = st.UpdateLink(ctx, id.Subject, func(l *store.Link) error {
				l.UserID, l.Username = "U1", "alice"
				return nil
			})
			p := NewProvisioner(u, st, ProvisionerOptions{}, nil)
			resume, iframe := &ResumeMinter{Users: u}, &IframeMinter{Users: u}
			req := mint.Request{Identity: id, Link: store.Link{Subject: id.Subject, UserID: "U1"}}
			calls := map[string]func() error{
				"Provisioner.Ensure":    func() error { _, err := p.Ensure(ctx, id); return err },
				"Provisioner.Sync":      func() error { _, err := p.Sync(ctx, id); return err },
				"ResumeMinter.Mint":     func() error { _, err := resume.Mint(ctx, req); return err },
				"ResumeMinter.Validate": func() error { return resume.Validate(ctx, tok) },
				"ResumeMinter.Revoke":   func() error { return resume.Revoke(ctx, tok) },
				"IframeMinter.Mint":     func() error { _, err := iframe.Mint(ctx, req); return err },
				"IframeMinter.Validate": func() error { return iframe.Validate(ctx, tok) },
				"IframeMinter.Revoke":   func() error { return iframe.Revoke(ctx, tok) },
			}
			for name, call := range calls {
				if err := call(); !errors.Is(err, mint.ErrUnavailable) {
					t.Errorf("%s: %v, want mint.ErrUnavailable", name, err)
				}
			}
		})
	}
	// Not outages: a missing user, a conflict, a plain error.
	for _, err := range []error{ErrNoUser, ErrConflict, ErrEmail2FA, errors.New("boom")} {
		e := err
		markOutage(&e)
		if errors.Is(e, mint.ErrUnavailable) {
			t.Errorf("markOutage(%v) marked it an outage", err)
		}
	}
}
