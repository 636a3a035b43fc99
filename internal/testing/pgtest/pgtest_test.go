package pgtest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestMain(m *testing.M) { Main(m) }

func queryString(t *testing.T, url, sql string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		return "", err
	}
	defer c.Close(context.Background())
	var out string
	err = c.QueryRow(ctx, sql).Scan(&out)
	return out, err
}

// A database from Database is empty, separate from the others, and gone
// once its test ends.
func TestDatabase(t *testing.T) {
	var first string
	t.Run("a", func(t *testing.T) {
		first = Database(t)
		second := Database(t)
		if first == second {
			t.Fatalf("two databases share the URL %s", first)
		}
		if err := Exec(t.Context(), first, `CREATE TABLE x (v text); INSERT INTO x VALUES ('in first')`); err != nil {
			t.Fatal(err)
		}
		if _, err := queryString(t, second, `SELECT v FROM x`); err == nil {
			t.Fatal("a table of one database is visible in another")
		}
		if got, err := queryString(t, second, `SELECT current_database()`); err != nil || !strings.HasPrefix(got, "t_testdatabase_a_") {
			t.Fatalf("current_database() = %q, %v", got, err)
		}
	})
	if first == "" {
		return // the subtest failed or skipped
	}
	if _, err := queryString(t, first, `SELECT 'x'`); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("the database of an ended test is still there: %v", err)
	}
}

// A server of the test's own survives a fast stop and a crash with its
// data, on the same URL.
func TestStopKillRestart(t *testing.T) {
	s := Start(t)
	url := s.CreateDatabase(t)
	if err := Exec(t.Context(), url, `CREATE TABLE kept (v text); INSERT INTO kept VALUES ('before')`); err != nil {
		t.Fatal(err)
	}
	for _, stop := range []struct {
		name string
		fn   func() error
	}{{"Stop", s.Stop}, {"Kill", s.Kill}} {
		if err := stop.fn(); err != nil {
			t.Fatalf("%s: %v", stop.name, err)
		}
		if _, err := queryString(t, url, `SELECT v FROM kept`); err == nil {
			t.Fatalf("after %s the server still answers", stop.name)
		}
		if err := s.Restart(); err != nil {
			t.Fatalf("Restart after %s: %v", stop.name, err)
		}
		if got, err := queryString(t, url, `SELECT v FROM kept`); err != nil || got != "before" {
			t.Fatalf("after %s and Restart: %q, %v", stop.name, got, err)
		}
	}
}
