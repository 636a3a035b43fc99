package postgres

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rcsso/rcsso/internal/store"
	"github.com/rcsso/rcsso/internal/testing/pgtest"
)

// TestRestartUnderLoad restarts PostgreSQL (an operator's fast stop, and a
// crash) while writers keep calling UpdateLink, PutToken and Count. Every
// write that returned nil is there afterwards; the same Store works again
// without reopening; its change feed reports "" (drop your cache) and then
// hears publications again.
func TestRestartUnderLoad(t *testing.T) {
	for _, mode := range []string{"stop", "crash"} {
		t.Run(mode, func(t *testing.T) {
			srv := pgtest.Start(t)
			s := open(t, srv.CreateDatabase(t))
			ctx := t.Context()

			var mu sync.Mutex
			var heard []string
			if err := s.Subscribe(ctx, func(sub string) {
				mu.Lock()
				heard = append(heard, sub)
				mu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
			heardAt := func(sub string, from int) int {
				mu.Lock()
				defer mu.Unlock()
				for i := from; i < len(heard); i++ {
					if heard[i] == sub {
						return i
					}
				}
				return -1
			}

			const workers = 6
			type worker struct {
				links, tokens       []string // subjects whose write returned nil
				counted, countTried int64    // increments acknowledged, attempted
			}
			ws := make([]worker, workers)
			var acked atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					tick := time.NewTicker(3 * time.Millisecond) // a steady load, also while the server is down
					defer tick.Stop()
					for i := 0; ; i++ {
						select {
						case <-stop:
							return
						case <-tick.C:
						}
						sub := fmt.Sprintf("w%d:%d", w, i)
						call, cancel := context.WithTimeout(ctx, 3*time.Second)
						var err error
						switch i % 3 {
						case 0:
							_, err = s.UpdateLink(call, sub, func(l *store.Link) error {
								l.UserID, l.Username = "u-"+sub, sub
								return nil
							})
							if err == nil {
								ws[w].links = append(ws[w].links, sub)
							}
						case 1:
							err = s.PutToken(call, store.Token{Subject: sub, UserID: "u-" + sub, Ciphertext: []byte(sub), MintedAt: time.Now()})
							if err == nil {
								ws[w].tokens = append(ws[w].tokens, sub)
							}
						case 2:
							ws[w].countTried++
							_, _, err = s.Count(call, fmt.Sprintf("count:w%d", w), 1, time.Hour)
							if err == nil {
								ws[w].counted++
							}
						}
						cancel()
						if err == nil {
							acked.Add(1)
						}
					}
				})
			}

			eventually(t, 20*time.Second, "no write succeeded before the restart", func() bool { return acked.Load() >= 100 })
			if mode == "stop" {
				err := srv.Stop()
				if err != nil {
					t.Fatal(err)
				}
			} else if err := srv.Kill(); err != nil {
				t.Fatal(err)
			}
			down := acked.Load()
			eventually(t, 10*time.Second, "the feed did not report the lost connection", func() bool { return heardAt("", 0) >= 0 })
			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			eventually(t, 30*time.Second, "writes did not succeed again after the restart", func() bool { return acked.Load() >= down+100 })
			close(stop)
			wg.Wait()

			if err := s.Ping(ctx); err != nil {
				t.Fatalf("Ping after the restart: %v", err)
			}
			for w, wk := range ws {
				for _, sub := range wk.links {
					if l, err := s.GetLink(ctx, sub); err != nil || l.UserID != "u-"+sub {
						t.Fatalf("acknowledged link %s lost: %+v, %v", sub, l, err)
					}
				}
				for _, sub := range wk.tokens {
					if tk, err := s.GetToken(ctx, sub); err != nil || string(tk.Ciphertext) != sub {
						t.Fatalf("acknowledged token %s lost: %+v, %v", sub, tk, err)
					}
				}
				n, _, err := s.Count(ctx, fmt.Sprintf("count:w%d", w), 0, time.Hour)
				if err != nil || n < wk.counted || n > wk.countTried {
					t.Fatalf("counter of worker %d = %d, %v; want between %d acknowledged and %d attempted increments", w, n, err, wk.counted, wk.countTried)
				}
				t.Logf("worker %d: %d links, %d tokens, %d of %d increments acknowledged", w, len(wk.links), len(wk.tokens), wk.counted, wk.countTried)
			}

			// The feed listens again: a publication after the restart arrives
			// (publish until heard: the reconnection may still be under way).
			after := heardAt("", 0)
			eventually(t, 15*time.Second, "the feed heard nothing after the restart", func() bool {
				if err := s.Publish(ctx, "local:after-restart"); err != nil {
					t.Fatal(err)
				}
				return heardAt("local:after-restart", after) > after
			})
		})
	}
}
