package postgres

import (
	"testing"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/store/storetest"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

// open opens a store on url for t, closed when t ends.
func open(t testing.TB, url string) *Store {
	t.Helper()
	s, err := Config{URL: url}.Open(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		s, err := Config{URL: pgtest.Database(t)}.Open(t.Context(), nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}
