package ldap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
)

// idleMax is how long a connection may sit idle in the pool before it is
// closed instead of reused: directories and firewalls drop idle
// connections (Active Directory after 15 minutes, MaxConnIdleTime), and a
// dropped one costs a login its time budget. A minute keeps the pool warm
// under steady logins.
const idleMax = time.Minute

// pool holds at most size connections to one directory, open or being
// opened; a caller that finds none free waits for one (or for its
// context). Connections are opened when needed, never in advance.
type pool struct {
	url     *url.URL
	tls     *tls.Config // for ldaps:// and StartTLS
	start   bool        // StartTLS after connecting
	timeout time.Duration

	slots chan struct{} // one value per connection open or being opened
	idle  chan *conn    // connections free for use

	mu     sync.Mutex
	closed bool
	dials  int // connections opened, for tests
}

// conn is a pooled connection and what it is bound as.
type conn struct {
	*goldap.Conn
	// service says the connection is bound as the search account (bind_dn)
	// now; after a person's bind it is not.
	service bool
	idleAt  time.Time
}

func newPool(u *url.URL, tlsConf *tls.Config, startTLS bool, size int, timeout time.Duration) *pool {
	return &pool{url: u, tls: tlsConf, start: startTLS, timeout: timeout,
		slots: make(chan struct{}, size), idle: make(chan *conn, size)}
}

// errPoolClosed is returned by get after Close.
var errPoolClosed = errors.New("ldap: source closed")

// do runs f on a pooled connection. When f fails with a connection error
// (go-ldap's ErrorNetwork: the directory closed an idle connection,
// restarted, …) on a connection taken from the idle pool, the connection is
// dropped and f runs once more on a new one. Errors: ctx's, errPoolClosed,
// a dial error, or f's.
func (p *pool) do(ctx context.Context, f func(*conn) error) error {
	for attempt := 0; ; attempt++ {
		c, reused, err := p.get(ctx)
		if err != nil {
			return err
		}
		// Closing the connection is how a wait on the directory ends when
		// the visitor leaves or the time budget is spent: go-ldap's calls
		// take no context.
		stop := context.AfterFunc(ctx, func() { _ = c.Close() })
		err = f(c)
		stop()
		if err != nil && connBroken(err) {
			p.discard(c)
			if reused && attempt == 0 && ctx.Err() == nil {
				continue
			}
			return err
		}
		p.put(c)
		return err
	}
}

// connBroken reports whether err, from go-ldap, means the connection
// cannot be used again: go-ldap's own codes (from 200 up: network,
// timeout, decoding) and a server that says it is unavailable or busy.
// LDAP results such as invalidCredentials leave it usable.
func connBroken(err error) bool {
	var le *goldap.Error
	if !errors.As(err, &le) {
		return false
	}
	return le.ResultCode >= goldap.ErrorNetwork || le.ResultCode == goldap.LDAPResultUnavailable || le.ResultCode == goldap.LDAPResultBusy
}

// get returns an idle connection (reused) or a new one, waiting while the
// pool is full.
func (p *pool) get(ctx context.Context) (c *conn, reused bool, err error) {
	for {
		select {
		case c := <-p.idle:
			if c.fresh() {
				return c, true, nil
			}
			p.discard(c)
			continue
		default:
		}
		select {
		case c := <-p.idle:
			if c.fresh() {
				return c, true, nil
			}
			p.discard(c)
		case p.slots <- struct{}{}:
			c, err := p.dial(ctx)
			if err != nil {
				<-p.slots
				return nil, false, err
			}
			return c, false, nil
		case <-ctx.Done():
			return nil, false, context.Cause(ctx)
		}
	}
}

func (c *conn) fresh() bool { return !c.IsClosing() && time.Since(c.idleAt) < idleMax }

// dial opens a connection: TCP (TLS for ldaps://), StartTLS when asked,
// within ctx.
func (p *pool) dial(ctx context.Context) (*conn, error) {
	p.mu.Lock()
	closed := p.closed
	if !closed {
		p.dials++
	}
	p.mu.Unlock()
	if closed {
		return nil, errPoolClosed
	}
	host := p.url.Host
	if p.url.Port() == "" {
		port := "389"
		if p.url.Scheme == "ldaps" {
			port = "636"
		}
		host = net.JoinHostPort(p.url.Hostname(), port)
	}
	nd := &net.Dialer{Timeout: p.timeout}
	var nc net.Conn
	var err error
	if p.url.Scheme == "ldaps" {
		nc, err = (&tls.Dialer{NetDialer: nd, Config: p.tls}).DialContext(ctx, "tcp", host)
	} else {
		nc, err = nd.DialContext(ctx, "tcp", host)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", p.url.Redacted(), err)
	}
	lc := goldap.NewConn(nc, p.url.Scheme == "ldaps")
	lc.Start()
	// The login's context ends waits (do closes the connection); go-ldap's
	// own request timeout is a backstop a little later, so a slow
	// directory is reported as the time budget spent.
	lc.SetTimeout(p.timeout + time.Second)
	if p.start {
		stop := context.AfterFunc(ctx, func() { _ = lc.Close() })
		err := lc.StartTLS(p.tls)
		stop()
		if err != nil {
			_ = lc.Close()
			return nil, fmt.Errorf("StartTLS with %s: %w", p.url.Redacted(), err)
		}
	}
	return &conn{Conn: lc}, nil
}

// put returns c to the idle pool (closing it when the pool is closed).
func (p *pool) put(c *conn) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed || c.IsClosing() {
		p.discard(c)
		return
	}
	c.idleAt = time.Now()
	p.idle <- c // never blocks: at most size connections exist
}

// discard closes c and frees its slot.
func (p *pool) discard(c *conn) {
	_ = c.Close()
	<-p.slots
}

// Close closes the idle connections; connections in use are closed when
// they come back. Later calls of do fail with errPoolClosed.
func (p *pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	for {
		select {
		case c := <-p.idle:
			p.discard(c)
		default:
			return
		}
	}
}

// stats are the pool's counts (for tests): connections opened so far and
// open now.
func (p *pool) stats() (dials, open int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dials, len(p.slots)
}
