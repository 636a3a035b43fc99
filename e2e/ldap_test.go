package e2e

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/rcsso/rcsso/internal/config"
	"github.com/rcsso/rcsso/internal/testing/ldaptest"
)

// A directory user opens the chat, sees the IFrame URL's login form inside
// it, logs in with their password from a real OpenLDAP (StartTLS), and the
// chat logs in as them with the directory's name and e-mail; the same form
// still takes rcsso's local accounts.
func TestLDAPLoginInIframe(t *testing.T) {
	srv := ldaptest.Start(t)
	e := newEnv(t, envOptions{identity: []config.IdentitySource{{Type: "local"}, {Type: "ldap", Name: "corp", Options: map[string]any{
		"url": srv.URL(), "start_tls": true, "tls": map[string]any{"ca_file": srv.CAFile()},
		"bind_dn": ldaptest.BindDN, "bind_password": ldaptest.BindPassword, "user_base_dn": ldaptest.PeopleDN,
		"email_verified": true,
	}}}})
	bob := ldaptest.PersonByUID("bob")

	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.loginInIframe(ctx, "bob", "not-bobs-password")
	if msg, err := e.iframeText(ctx, "#rc-login-iframe", "#login-error"); err != nil || msg != "Wrong user name or password." {
		t.Fatalf("error shown: %q, %v", msg, err)
	}
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.loginInIframe(ctx, "bob", bob.Password)
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "bob" {
		t.Fatalf("chat logged in as %q, want bob", got)
	}
	u, ok := e.emu.UserByUsername("bob")
	if !ok || u.Name != bob.CN || len(u.Emails) != 1 || u.Emails[0].Address != bob.Mail {
		t.Fatalf("Rocket.Chat user: %+v (found %v)", u, ok)
	}

	// A local account logs in through the same form.
	ctx = e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.loginInIframe(ctx, "alice", e.password)
	e.waitChat(ctx, "logged-in")
	if got := e.chatUsername(ctx); got != "alice" {
		t.Fatalf("chat logged in as %q, want alice", got)
	}
}

// Rooms from directory groups, as the person sees them: bob, in the
// directory group staff, logs in on the IFrame URL inside the chat;
// provisioning.rooms gives staff the channel #staff and the private group
// staff-private, which rcsso joins him to in the background, and the
// chat's room list shows both (after a reload: the emulator's web client
// reads its rooms when it starts, where Rocket.Chat's streams them). alice,
// a local account whose source says nothing of groups, gets neither.
func TestRoomsFromDirectoryGroupsInChat(t *testing.T) {
	srv := ldaptest.Start(t)
	e := newEnv(t, envOptions{
		identity: []config.IdentitySource{{Type: "local"}, {Type: "ldap", Name: "corp", Options: map[string]any{
			"url": srv.URL(), "start_tls": true, "tls": map[string]any{"ca_file": srv.CAFile()},
			"bind_dn": ldaptest.BindDN, "bind_password": ldaptest.BindPassword, "user_base_dn": ldaptest.PeopleDN,
			"email_verified": true,
		}}},
		rooms: []config.RoomGrant{{Group: "staff", Channels: []string{"staff"}, PrivateGroups: []string{"staff-private"}}},
	})
	rooms := `[...document.querySelectorAll("#rc-rooms a")].map(a => a.textContent.trim()).join(",")`

	ctx := e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.loginInIframe(ctx, "bob", ldaptest.PersonByUID("bob").Password)
	e.waitChat(ctx, "logged-in")
	bob, _ := e.emu.UserByUsername("bob")
	e.waitEvalGo(func() bool {
		return e.emu.IsMember(e.roomIDs["staff"], bob.ID) && e.emu.IsMember(e.roomIDs["staff-private"], bob.ID)
	})
	if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "logged-in")
	e.waitEval(ctx, rooms+` === "#staff,\u{1F512}staff-private"`)
	e.screenshot(ctx, "rooms-from-groups.png")

	ctx = e.browser()
	if err := chromedp.Do(ctx, chromedp.Navigate(e.rcURL+"/")); err != nil {
		t.Fatal(err)
	}
	e.waitChat(ctx, "iframe")
	e.loginInIframe(ctx, "alice", e.password)
	e.waitChat(ctx, "logged-in")
	e.app.Broker.WaitSync() // any sync her login started has finished
	alice, _ := e.emu.UserByUsername("alice")
	if e.emu.IsMember(e.roomIDs["staff"], alice.ID) || e.emu.IsMember(e.roomIDs["staff-private"], alice.ID) {
		t.Fatal("alice, whose source says nothing of groups, was given the staff rooms")
	}
	e.waitEval(ctx, `document.getElementById("rc-me-username").textContent === "alice"`) // the chat has read her rooms
	if got, err := chromedp.Run(ctx, chromedp.Evaluate[string](rooms)); err != nil || got != "" {
		t.Fatalf("alice's room list: %q, %v", got, err)
	}
}
