package mint_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/mint"
	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/memory"
)

// fakeRooms is a RoomSyncer that records the syncs it was asked for and
// answers as told.
type fakeRooms struct {
	st    store.Store
	mu    sync.Mutex
	syncs []string // the groups of each sync
	fail  error    // SyncRooms answers (false, fail) when set
}

func (f *fakeRooms) RoomsDigest(id identity.Identity) string {
	if id.Groups == nil {
		return ""
	}
	return "d:" + strings.Join(id.Groups, ",")
}

func (f *fakeRooms) RoomsInStep(l store.Link, d string) bool {
	return l.UserID != "" && l.Rooms.UserID == l.UserID && l.Rooms.Hash == d
}

func (f *fakeRooms) SyncRooms(ctx context.Context, id identity.Identity) (bool, error) {
	f.mu.Lock()
	f.syncs = append(f.syncs, strings.Join(id.Groups, ","))
	fail := f.fail
	f.mu.Unlock()
	if fail != nil {
		return false, fail
	}
	_, err := f.st.UpdateLink(ctx, id.Subject, func(l *store.Link) error {
		l.Rooms = store.RoomsState{UserID: l.UserID, Hash: f.RoomsDigest(id)}
		return nil
	})
	return err == nil, err
}

func (f *fakeRooms) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.syncs)
}

func withGroups(groups ...string) identity.Identity {
	id := alice
	id.Groups = groups
	if groups == nil {
		id.Groups = []string{}
	}
	return id
}

// The broker syncs rooms on login and when the groups change, in the
// background; a person whose groups are in step costs nothing (the hot
// cache knows), and a source that does not say which groups costs
// nothing either.
func TestRoomsSyncOnLoginAndGroupChange(t *testing.T) {
	st := memory.New()
	rooms := &fakeRooms{st: st}
	b := cachedBroker(t, st, &fakeMinter{valid: map[string]bool{}}, mint.BrokerConfig{Rooms: rooms})
	token := func(id identity.Identity) {
		t.Helper()
		if _, err := b.Token(t.Context(), id, false); err != nil {
			t.Fatal(err)
		}
		b.WaitSync()
	}
	token(withGroups("sales"))
	if rooms.count() != 1 {
		t.Fatalf("syncs after the first login = %v", rooms.syncs)
	}
	for range 3 {
		token(withGroups("sales"))
	}
	if rooms.count() != 1 {
		t.Fatalf("an unchanged person was synced again: %v", rooms.syncs)
	}
	token(withGroups())
	token(withGroups("sales", "support"))
	if got := strings.Join(rooms.syncs, " | "); got != "sales |  | sales,support" {
		t.Fatalf("syncs = %q", got)
	}
	unknown := alice
	unknown.Groups = nil
	token(unknown)
	if rooms.count() != 3 {
		t.Fatalf("groups the source does not give caused a sync: %v", rooms.syncs)
	}
	// Another instance (cold cache) reads the store and does not sync.
	other := cachedBroker(t, st, &fakeMinter{valid: map[string]bool{}}, mint.BrokerConfig{Rooms: rooms})
	if _, err := other.Token(t.Context(), withGroups("sales", "support"), false); err != nil {
		t.Fatal(err)
	}
	other.WaitSync()
	if rooms.count() != 3 {
		t.Fatalf("a second instance synced a person in step: %v", rooms.syncs)
	}
}

// A failed rooms sync never fails the login; it is tried again on a later
// request, not before syncRetry (15 s). (The login's own sync runs before
// the person is in this instance's hot cache, so the first request after
// it tries once more; the syncer's interval in the store keeps that from
// reaching Rocket.Chat.)
func TestRoomsSyncFailureRetriedLater(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := memory.New()
		rooms := &fakeRooms{st: st, fail: errors.New("rocketchat: channels.members: 429 error-too-many-requests")}
		b := cachedBroker(t, st, &fakeMinter{valid: map[string]bool{}}, mint.BrokerConfig{Rooms: rooms})
		for range 5 {
			if _, err := b.Token(t.Context(), withGroups("sales"), false); err != nil {
				t.Fatalf("login failed with the rooms sync: %v", err)
			}
			b.WaitSync()
		}
		if rooms.count() != 2 {
			t.Fatalf("syncs within 15 s of a failure: %v", rooms.syncs)
		}
		time.Sleep(16 * time.Second) // synctest: the fake clock moves on
		rooms.mu.Lock()
		rooms.fail = nil
		rooms.mu.Unlock()
		if _, err := b.Token(t.Context(), withGroups("sales"), false); err != nil {
			t.Fatal(err)
		}
		b.WaitSync()
		if rooms.count() != 3 {
			t.Fatalf("not retried after syncRetry: %v", rooms.syncs)
		}
	})
}
