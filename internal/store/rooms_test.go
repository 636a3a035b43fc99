package store

import (
	"slices"
	"testing"
	"time"
)

func TestEncodeRoomsRoundTrip(t *testing.T) {
	if EncodeRooms(RoomsState{}) != "" {
		t.Fatal("the zero record is not stored as an empty string")
	}
	r := RoomsState{UserID: "u1", Added: []string{"c:r1:sales", `t:t1:"x"\u0000`}, Pending: []string{"p:g1:ventes"},
		Hash: "h", SyncedAt: time.Date(2026, 1, 2, 3, 4, 5, 678_900_000, time.FixedZone("x", 3600))}
	got, err := DecodeRooms(EncodeRooms(r))
	if err != nil {
		t.Fatal(err)
	}
	if got.UserID != r.UserID || got.Hash != r.Hash || !slices.Equal(got.Added, r.Added) || !slices.Equal(got.Pending, r.Pending) ||
		!got.SyncedAt.Equal(r.SyncedAt.Truncate(time.Millisecond)) || got.SyncedAt.Location() != time.UTC {
		t.Fatalf("round trip: %+v, want %+v", got, r)
	}
	if _, err := DecodeRooms("{not json"); err == nil {
		t.Fatal("an unreadable record was accepted")
	}
}

// FuzzDecodeRooms: whatever a database holds in the rooms column, decoding
// it never panics, and a decoded record encodes to a value that decodes
// to the same record.
func FuzzDecodeRooms(f *testing.F) {
	f.Add("")
	f.Add(`{"u":"u1","a":["c:r1:sales"],"p":["t:t1:Sales"],"h":"x","t":1767322800000}`)
	f.Add(`{"a":null,"t":-1}`)
	f.Add(`[]`)
	f.Fuzz(func(t *testing.T, s string) {
		r, err := DecodeRooms(s)
		if err != nil {
			return
		}
		again, err := DecodeRooms(EncodeRooms(r))
		if err != nil || again.UserID != r.UserID || again.Hash != r.Hash || !slices.Equal(again.Added, r.Added) ||
			!slices.Equal(again.Pending, r.Pending) || !again.SyncedAt.Equal(r.SyncedAt) {
			t.Fatalf("%q: %+v → %+v, %v", s, r, again, err)
		}
	})
}
