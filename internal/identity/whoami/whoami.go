// Package whoami is the "whoami" identity source: rcsso asks the website who
// the visitor is by calling a website endpoint (e.g. /api/me) with the
// visitor's cookies and chosen headers, and maps the JSON answer through the
// shared claims.Mapping. Answers are cached briefly per visitor and
// concurrent look-ups for one visitor share a single call.
package whoami

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/identity/claims"
)

// Defaults for zero Options fields.
const (
	DefaultTimeout  = 3 * time.Second
	DefaultMaxBody  = 64 << 10 // bytes
	DefaultCacheTTL = 10 * time.Second
)

// MaxNegativeTTL bounds how long a "not logged in" answer is cached, so a
// visitor who has just logged in on the website is recognised quickly.
const MaxNegativeTTL = 3 * time.Second

// cacheEntries bounds the cache; the oldest entry is evicted first.
const cacheEntries = 10_000

// ErrUpstream is wrapped by errors meaning the endpoint could not tell who
// the visitor is (unreachable, timeout, unexpected status, garbage answer).
// They do not wrap identity.ErrNotLoggedIn, so the API URL answers 5xx.
var ErrUpstream = fmt.Errorf("whoami: endpoint failed (%w)", identity.ErrSourceUnavailable)

// Options configures the source.
type Options struct {
	// Name is the source name; subjects are "<Name>:<subject>" (default "whoami").
	Name string
	// URL is the website endpoint answering who the visitor is, e.g.
	// https://www.example.com/api/me (required, absolute http(s)). It is
	// called with GET.
	URL string
	// Cookies names the request cookies forwarded to URL; empty forwards
	// every cookie of the request.
	Cookies []string
	// Headers names request headers forwarded too (e.g. Authorization).
	// Cookie, Host and hop-by-hop headers cannot be listed.
	Headers []string
	// Timeout bounds one call to URL (0 = DefaultTimeout).
	Timeout time.Duration
	// MaxBody bounds the answer (bytes; 0 = DefaultMaxBody); a larger
	// answer is an error.
	MaxBody int64
	// CacheTTL is how long an identity is cached, keyed by the SHA-256 of
	// the forwarded cookies and headers (0 = DefaultCacheTTL; negative
	// disables caching). "Not logged in" answers are cached for
	// min(CacheTTL, MaxNegativeTTL); errors are not cached. At most 10,000
	// entries are kept, the oldest evicted first.
	CacheTTL time.Duration
	// Mapping maps the JSON answer (dotted paths such as "user.id" reach
	// into nested objects). Numbers are decoded exactly (json.Number).
	Mapping claims.Mapping
	// HTTPClient makes the calls (default: a new client). It is copied:
	// redirects are never followed and its cookie jar is not used.
	HTTPClient *http.Client
	// Logger receives upstream failures (warn) and answers (debug); cookie
	// and header values are never logged. Default slog.Default().
	Logger *slog.Logger
}

// Source is the whoami identity source. It is safe for concurrent use.
type Source struct {
	cfg         Options
	url         string // redacted, for messages
	client      *http.Client
	log         *slog.Logger
	negativeTTL time.Duration
	flights     singleflight.Group
	cache       *cache // nil when disabled
}

// New validates cfg and returns the source. It makes no call.
func New(cfg Options) (*Source, error) {
	if cfg.Name == "" {
		cfg.Name = "whoami"
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("whoami source %q: URL %q is not an absolute http(s) URL", cfg.Name, cfg.URL)
	}
	cfg.Cookies = slices.Clone(cfg.Cookies)
	cfg.Headers = slices.Clone(cfg.Headers)
	for i, h := range cfg.Headers {
		switch c := textproto.CanonicalMIMEHeaderKey(h); c {
		case "", "Cookie", "Host", "Content-Length", "Transfer-Encoding", "Connection", "Upgrade", "Te", "Trailer", "Keep-Alive":
			return nil, fmt.Errorf("whoami source %q: header %q cannot be forwarded", cfg.Name, h)
		default:
			cfg.Headers[i] = c
		}
	}
	switch {
	case cfg.Timeout < 0 || cfg.MaxBody < 0:
		return nil, fmt.Errorf("whoami source %q: timeout and max body must not be negative", cfg.Name)
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.CacheTTL == 0 {
		cfg.CacheTTL = DefaultCacheTTL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	client := &http.Client{}
	if cfg.HTTPClient != nil {
		c := *cfg.HTTPClient
		client = &c
	}
	client.Jar = nil
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s := &Source{
		cfg:         cfg,
		url:         u.Redacted(),
		client:      client,
		log:         cfg.Logger.With("source", cfg.Name),
		negativeTTL: min(cfg.CacheTTL, MaxNegativeTTL),
	}
	if cfg.CacheTTL > 0 {
		s.cache = newCache(cacheEntries)
	}
	return s, nil
}

// Name implements identity.Source.
func (s *Source) Name() string { return s.cfg.Name }

// Identify implements identity.Source.
//
//   - No cookie or header to forward: identity.ErrNotLoggedIn, without a call.
//   - 2xx with a JSON object holding the subject claim: the identity.
//   - 2xx with a JSON object whose subject is missing, null or unusable (many
//     sites answer {"user":null}), 401 or 403: an error wrapping
//     identity.ErrNotLoggedIn.
//   - Anything else (unreachable, timeout, 3xx — redirects are not followed —,
//     other statuses, a body that is not a JSON object or is larger than
//     MaxBody): an error wrapping ErrUpstream and not ErrNotLoggedIn, e.g.
//     "whoami endpoint https://www.example.com/api/me answered 502".
//
// If r's context ends while waiting, its error is returned.
func (s *Source) Identify(r *http.Request) (identity.Identity, error) {
	fwd := s.forwarded(r)
	if len(fwd) == 0 {
		return identity.Identity{}, identity.ErrNotLoggedIn
	}
	key := fwd.key()
	if s.cache != nil {
		if res, ok := s.cache.get(key, time.Now()); ok {
			return res.copy()
		}
	}
	ctx := context.WithoutCancel(r.Context()) // one visitor leaving must not fail the others
	ch := s.flights.DoChan(key, func() (any, error) {
		res := s.call(ctx, fwd)
		if s.cache != nil {
			switch {
			case res.err == nil:
				s.cache.put(key, res, time.Now().Add(s.cfg.CacheTTL))
			case errors.Is(res.err, identity.ErrNotLoggedIn):
				s.cache.put(key, res, time.Now().Add(s.negativeTTL))
			}
		}
		return res, nil
	})
	select {
	case v := <-ch:
		return v.Val.(result).copy()
	case <-r.Context().Done():
		return identity.Identity{}, fmt.Errorf("whoami source %q: %w", s.cfg.Name, r.Context().Err())
	}
}

// result is one answer of the endpoint, as cached.
type result struct {
	id  identity.Identity
	err error
}

func (r result) copy() (identity.Identity, error) {
	id := r.id
	id.Roles = slices.Clone(r.id.Roles)
	return id, r.err
}

// field is one forwarded cookie or header.
type field struct {
	cookie bool
	name   string
	value  string
	quoted bool
}

type fields []field

// forwarded picks the cookies and headers to send, in request order.
func (s *Source) forwarded(r *http.Request) fields {
	var out fields
	for _, c := range r.Cookies() {
		if len(s.cfg.Cookies) == 0 || slices.Contains(s.cfg.Cookies, c.Name) {
			out = append(out, field{cookie: true, name: c.Name, value: c.Value, quoted: c.Quoted})
		}
	}
	for _, h := range s.cfg.Headers {
		for _, v := range r.Header.Values(h) {
			out = append(out, field{name: h, value: v})
		}
	}
	return out
}

// key is the hex SHA-256 of an unambiguous encoding of the fields.
func (f fields) key() string {
	h := sha256.New()
	var n [8]byte
	for _, x := range f {
		kind := []byte{'h'}
		if x.cookie {
			kind[0] = 'c'
		}
		if x.quoted {
			kind = append(kind, 'q')
		}
		for _, b := range [][]byte{kind, []byte(x.name), []byte(x.value)} {
			binary.BigEndian.PutUint64(n[:], uint64(len(b)))
			h.Write(n[:])
			h.Write(b)
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

// call asks the endpoint once.
func (s *Source) call(ctx context.Context, fwd fields) result {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return s.fail("cannot build request: %v", err)
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "rcsso-whoami")
	for _, f := range fwd {
		if f.cookie {
			req.AddCookie(&http.Cookie{Name: f.name, Value: f.value, Quoted: f.quoted})
		} else {
			req.Header.Add(f.name, f.value)
		}
	}
	start := time.Now()
	resp, err := s.client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return s.fail("did not answer within %s", s.cfg.Timeout)
		}
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is in the message already
		}
		return s.fail("unreachable: %v", err)
	}
	defer resp.Body.Close()
	s.log.Debug("whoami answer", "status", resp.StatusCode, "elapsed", time.Since(start))
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return result{err: fmt.Errorf("%w: whoami endpoint %s answered %d", identity.ErrNotLoggedIn, s.url, resp.StatusCode)}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return s.fail("answered %d (redirects are not followed; is the URL right?)", resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		return s.fail("answered %d", resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, s.cfg.MaxBody+1))
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return s.fail("did not answer within %s", s.cfg.Timeout)
		}
		return s.fail("answer unreadable: %v", err)
	}
	if int64(len(body)) > s.cfg.MaxBody {
		return s.fail("answer larger than %d bytes", s.cfg.MaxBody)
	}
	id, err := decode(body, s.cfg.Name, s.cfg.Mapping)
	switch {
	case errors.Is(err, identity.ErrNotLoggedIn):
		s.log.Debug("whoami answer has no subject: not logged in", "claim", s.cfg.Mapping.Subject)
		return result{err: fmt.Errorf("whoami endpoint %s: %w", s.url, err)}
	case err != nil:
		return s.fail("answered %d with %v", resp.StatusCode, err)
	}
	return result{id: id}
}

// fail builds and logs an ErrUpstream result.
func (s *Source) fail(format string, args ...any) result {
	msg := fmt.Sprintf(format, args...)
	s.log.Warn("whoami endpoint failed", "url", s.url, "reason", msg)
	return result{err: fmt.Errorf("%w: whoami endpoint %s %s", ErrUpstream, s.url, msg)}
}

// decode maps one 2xx answer body: a JSON object (numbers kept exact) with a
// usable subject gives the identity of source; an object without one
// (missing, null, malformed) gives an error wrapping identity.ErrNotLoggedIn
// and claims.ErrMissingSubject; anything else (not JSON, not an object,
// trailing data) gives an error wrapping neither.
func decode(body []byte, source string, m claims.Mapping) (identity.Identity, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return identity.Identity{}, errors.New("a body that is not JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return identity.Identity{}, errors.New("trailing data after the JSON value")
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return identity.Identity{}, fmt.Errorf("JSON that is not an object (%s)", jsonKind(v))
	}
	id, err := m.Map(source, obj)
	if err != nil {
		return identity.Identity{}, fmt.Errorf("%w: %w", identity.ErrNotLoggedIn, err)
	}
	return id, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	}
	return "number"
}

// cache is a bounded map of results with expiry; the oldest insertion is
// evicted when full.
type cache struct {
	mu    sync.Mutex
	max   int
	items map[string]*list.Element // of *cacheEntry
	order *list.List               // oldest first
}

type cacheEntry struct {
	key     string
	res     result
	expires time.Time
}

func newCache(max int) *cache {
	return &cache{max: max, items: map[string]*list.Element{}, order: list.New()}
}

func (c *cache) get(key string, now time.Time) (result, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return result{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.order.Remove(el)
		delete(c.items, key)
		return result{}, false
	}
	return e.res, true
}

func (c *cache) put(key string, res result, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		c.order.Remove(el)
		delete(c.items, key)
	}
	for c.order.Len() >= c.max {
		oldest := c.order.Front()
		c.order.Remove(oldest)
		delete(c.items, oldest.Value.(*cacheEntry).key)
	}
	c.items[key] = c.order.PushBack(&cacheEntry{key: key, res: res, expires: expires})
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
