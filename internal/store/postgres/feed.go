package postgres

import (
	"context"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
)

// feedChannel is the NOTIFY channel of the change feed.
const feedChannel = "rcsso_changes"

// maxPayload is the longest subject NOTIFY carries (PostgreSQL's limit is
// 8000 bytes); a longer one is published as "" (drop everything).
const maxPayload = 7999

const (
	// feedIdle is how long a feed connection waits for a notification
	// before checking that the server still answers (a half-open TCP
	// connection would otherwise go unnoticed).
	feedIdle = 30 * time.Second
	// feedBackoffMax caps the wait between reconnection attempts.
	feedBackoffMax = 5 * time.Second
)

// Publish implements store.ChangeFeed with pg_notify on channel
// rcsso_changes, which every instance on the database hears (including
// this one). A subject PostgreSQL cannot carry (over 7999 bytes, not
// UTF-8 text, or holding a NUL byte) is published as "", telling every
// subscriber to drop its whole cache.
func (s *Store) Publish(ctx context.Context, subject string) error {
	if len(subject) > maxPayload || !textOK(subject) {
		subject = ""
	}
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, feedChannel, subject); err != nil {
		return s.wrap("publish", err)
	}
	return nil
}

// Subscribe implements store.ChangeFeed with LISTEN on a connection of
// its own (outside the pool). It returns once LISTEN is in place. When the
// connection is lost (the server restarted, the network failed, or it
// stopped answering for feedIdle plus a ping), fn gets "" at once, the
// feed reconnects with a backoff of 100 ms doubling to 5 s, and fn gets ""
// again once it listens anew: notifications sent in between are lost. It
// ends when ctx is done or the store is closed.
func (s *Store) Subscribe(ctx context.Context, fn func(subject string)) error {
	conn, err := s.listen(ctx)
	if err != nil {
		return s.wrap("subscribe", err)
	}
	s.feeds.Add(1)
	go s.feed(ctx, conn, fn)
	return nil
}

// listen opens a feed connection and LISTENs.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, s.listener.Copy())
	if err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, `LISTEN `+feedChannel); err != nil {
		return nil, errors.Join(err, conn.Close(context.WithoutCancel(ctx)))
	}
	return conn, nil
}

// feed delivers notifications from conn, reconnecting as Subscribe says.
func (s *Store) feed(ctx context.Context, conn *pgx.Conn, fn func(string)) {
	defer s.feeds.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.closing, cancel)()
	for {
		err := s.deliver(ctx, conn, fn)
		closeCtx, done := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(closeCtx)
		done()
		if ctx.Err() != nil {
			return
		}
		s.log.Warn("postgres store: change feed connection lost; reconnecting", "err", s.redact(err))
		fn("")
		for wait := 100 * time.Millisecond; ; wait = min(2*wait, feedBackoffMax) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
			if conn, err = s.listen(ctx); err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
		}
		s.log.Info("postgres store: change feed reconnected")
		fn("")
	}
}

// deliver calls fn for each notification on conn until ctx is done or
// conn fails.
func (s *Store) deliver(ctx context.Context, conn *pgx.Conn, fn func(string)) error {
	for {
		wait, cancel := context.WithTimeout(ctx, feedIdle)
		n, err := conn.WaitForNotification(wait)
		cancel()
		switch {
		case err == nil:
			fn(n.Payload)
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			ping, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = conn.Ping(ping)
			cancel()
			if err != nil {
				return err
			}
		default:
			return err
		}
	}
}
