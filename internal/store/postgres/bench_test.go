package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rcsso/rcsso/internal/testing/pgtest"
)

// BenchmarkHotPath measures the per-request lookups on a database holding
// 10k sessions and tokens, over loopback TCP: GetSession, GetToken, and
// both in a row (what an API URL call with a website session costs).
func BenchmarkHotPath(b *testing.B) {
	const n = 10_000
	ctx := context.Background()
	s := open(b, pgtest.Database(b))
	for _, q := range []string{
		`INSERT INTO sessions SELECT lpad(i::text, 43, '0'), 'local:user' || i, 'local', 'user', 'User',
	'user@example.org', false, '', NULL, now(), now() + interval '1 hour' FROM generate_series(0, $1 - 1) i`,
		`INSERT INTO tokens SELECT 'local:user' || i, 'aBcDeFgHiJkLmNoPq', decode(repeat('ab', 120), 'hex'), now(), now()
	FROM generate_series(0, $1 - 1) i`, // 120 bytes: about an AES-GCM sealed Rocket.Chat token
	} {
		if _, err := s.pool.Exec(ctx, q, n); err != nil {
			b.Fatal(err)
		}
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("%043d", i)
	}
	for _, c := range []struct {
		name string
		op   func(i int) error
	}{
		{"GetSession", func(i int) error { _, err := s.GetSession(ctx, ids[i%n]); return err }},
		{"GetToken", func(i int) error { _, err := s.GetToken(ctx, fmt.Sprintf("local:user%d", i%n)); return err }},
		{"SessionThenToken", func(i int) error {
			sess, err := s.GetSession(ctx, ids[i%n])
			if err == nil {
				_, err = s.GetToken(ctx, sess.Subject)
			}
			return err
		}},
	} {
		b.Run(c.name+"/Serial", func(b *testing.B) {
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := c.op(i); err != nil {
					b.Fatal(err)
				}
				i++
			}
		})
		b.Run(c.name+"/Parallel", func(b *testing.B) {
			b.ReportAllocs()
			var next atomic.Int64
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := c.op(int(next.Add(1))); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestHotPathQueryPlans pins GetSession and GetToken to a primary-key
// index probe.
func TestHotPathQueryPlans(t *testing.T) {
	s := open(t, pgtest.Database(t))
	ctx := t.Context()
	for q, arg := range map[string]string{getSessionSQL: "x", getTokenSQL: "x"} {
		tx, err := s.pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		// An empty table would be read whole however it is indexed.
		if _, err := tx.Exec(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
			t.Fatal(err)
		}
		var plan string
		rows, err := tx.Query(ctx, `EXPLAIN `+q, arg)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var line string
			if err := rows.Scan(&line); err != nil {
				t.Fatal(err)
			}
			plan += line + "\n"
		}
		rows.Close()
		_ = tx.Rollback(ctx)
		if !strings.Contains(plan, "Index Scan using sessions_pkey") && !strings.Contains(plan, "Index Scan using tokens_pkey") {
			t.Errorf("plan for %q:\n%s\nwant a primary-key index scan", q, plan)
		}
	}
}
