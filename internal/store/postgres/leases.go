package postgres

import (
	"context"
	"time"
)

// UseOnce implements store.Store with one conditional upsert: a key whose
// record expired (by the server's clock) is taken again. In the same
// statement it deletes up to 100 expired keys. The key may hold any bytes.
func (s *Store) UseOnce(ctx context.Context, key string, expiresAt time.Time) (bool, error) {
	tag, err := s.pool.Exec(ctx, purge("used", "key", "expires_at")+`INSERT INTO used AS u (key, expires_at)
VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE u.expires_at <= now()`,
		[]byte(key), expiresAt)
	if err != nil {
		return false, s.wrap("use once", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Count implements store.Store with one upsert; the window is measured by
// the server's clock, and a counter whose window ended starts again. In
// the same statement it deletes up to 100 ended counters. The key may hold
// any bytes.
func (s *Store) Count(ctx context.Context, key string, delta int64, window time.Duration) (int64, time.Time, error) {
	var n int64
	var until time.Time
	err := s.pool.QueryRow(ctx, purge("counters", "key", "reset_at")+`INSERT INTO counters AS c (key, value, reset_at)
VALUES ($1, $2, now() + $3)
ON CONFLICT (key) DO UPDATE SET
	value = CASE WHEN c.reset_at <= now() THEN excluded.value ELSE c.value + excluded.value END,
	reset_at = CASE WHEN c.reset_at <= now() THEN excluded.reset_at ELSE c.reset_at END
RETURNING value, reset_at`, []byte(key), delta, interval(window)).Scan(&n, &until)
	if err != nil {
		return 0, time.Time{}, s.wrap("count", err)
	}
	return n, until.UTC(), nil
}

// ResetCount implements store.Store.
func (s *Store) ResetCount(ctx context.Context, key string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM counters WHERE key = $1`, []byte(key)); err != nil {
		return s.wrap("reset count", err)
	}
	return nil
}

// TryLock implements store.Locker with a lease row: one conditional
// upsert takes the key when it is free or its lease expired (by the
// server's clock, the same for every instance). The lease lives in a
// table rather than in a session advisory lock so that it has the TTL the
// interface promises whatever happens to connections: a holder that
// crashed, or whose connection was cut, loses the lease when its TTL ends
// (not before, while it may still be minting; not never, while a hung
// holder keeps its connection), and holding a lease pins no pooled
// connection. In the same statement it deletes up to 100 expired leases.
func (s *Store) TryLock(ctx context.Context, key string, ttl time.Duration) (string, bool, error) {
	token := newToken()
	tag, err := s.pool.Exec(ctx, purge("leases", "key", "expires_at")+`INSERT INTO leases AS l (key, token, expires_at)
VALUES ($1, $2, now() + $3)
ON CONFLICT (key) DO UPDATE SET token = excluded.token, expires_at = excluded.expires_at
WHERE l.expires_at <= now()`, []byte(key), token, interval(ttl))
	if err != nil {
		return "", false, s.wrap("lock", err)
	}
	return token, tag.RowsAffected() == 1, nil
}

// Renew implements store.Locker: the lease is extended only while token
// holds it and it has not expired (by then another may hold it).
func (s *Store) Renew(ctx context.Context, key, token string, ttl time.Duration) (bool, error) {
	tag, err := s.pool.Exec(ctx, `UPDATE leases SET expires_at = now() + $3
WHERE key = $1 AND token = $2 AND expires_at > now()`, []byte(key), token, interval(ttl))
	if err != nil {
		return false, s.wrap("renew lock", err)
	}
	return tag.RowsAffected() == 1, nil
}

// Unlock implements store.Locker: it deletes the lease only if token
// holds it.
func (s *Store) Unlock(ctx context.Context, key, token string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM leases WHERE key = $1 AND token = $2`, []byte(key), token); err != nil {
		return s.wrap("unlock", err)
	}
	return nil
}
