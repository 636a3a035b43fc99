// Package websession keeps rcsso's own website sessions for interactive
// identity sources (the local login form; OIDC later). The browser holds a
// random 256-bit id in an HttpOnly cookie; the store keeps only its SHA-256
// digest, so a copy of the database yields no usable cookie.
package websession

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/rcsso/rcsso/internal/hotcache"
	"github.com/rcsso/rcsso/internal/identity"
	"github.com/rcsso/rcsso/internal/store"
)

// Options are the cookie's attributes and the session lifetime.
type Options struct {
	// CookieName, e.g. "rcsso_session" or "__Host-rcsso_session".
	CookieName string
	// Secure marks the cookie Secure (public_url is https).
	Secure bool
	// SameSite is chosen deliberately by the caller (Lax for same-site
	// deployments, None for cross-site ones; see README "Cookies").
	SameSite http.SameSite
	// Partitioned adds the CHIPS attribute (needs SameSite=None; Secure):
	// in cross-site deployments the cookie set inside Rocket.Chat's iframe
	// then lives in Rocket.Chat's partition and reaches the API URL even
	// where third-party cookies are blocked (Chrome; Safari 26.2+).
	Partitioned bool
	// Path scopes the cookie, "/" by default.
	Path string
	// TTL is the session lifetime.
	TTL time.Duration
	// Now is the clock; time.Now by default.
	Now func() time.Time
	// Cache, when set, keeps sessions in process (Lookup reads the store
	// only on a miss), and End and EndSubject announce the ended sessions
	// to every rcsso instance on the store.
	Cache *hotcache.Cache
}

// Manager starts, finds and ends sessions.
type Manager struct {
	st  store.Store
	o   Options
	hot *hotcache.Table[hotKey, hotSession]
}

// New returns a Manager.
func New(st store.Store, o Options) *Manager {
	if o.Path == "" {
		o.Path = "/"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Manager{st: st, o: o, hot: hotcache.NewTable(o.Cache, func(_ hotKey, s *hotSession) string { return s.subject() })}
}

// CookieName returns the session cookie's name.
func (m *Manager) CookieName() string { return m.o.CookieName }

// Start creates a session for id and sets the cookie on w (an unpartitioned
// cookie: the login happened in a top-level window).
func (m *Manager) Start(ctx context.Context, w http.ResponseWriter, id identity.Identity) error {
	return m.start(ctx, w, id, false)
}

// StartFramed is Start for a login that happened inside Rocket.Chat's
// iframe (the IFrame URL form). With Options.Partitioned in a cross-site
// deployment the cookie is partitioned (CHIPS) under Rocket.Chat's site, the
// only place it can live when third-party cookies are blocked. A cookie
// partitioned this way is not sent to rcsso from other top-level sites, so
// top-level logins use Start.
func (m *Manager) StartFramed(ctx context.Context, w http.ResponseWriter, id identity.Identity) error {
	return m.start(ctx, w, id, true)
}

func (m *Manager) start(ctx context.Context, w http.ResponseWriter, id identity.Identity, framed bool) error {
	raw := rand.Text() + rand.Text() // 2 × 128 bits, base32
	now := m.o.Now().UTC()
	s := store.Session{
		IDHash:        hashID(raw),
		Subject:       id.Subject,
		Source:        id.Source,
		Username:      id.Username,
		Name:          id.Name,
		Email:         id.Email,
		EmailVerified: id.EmailVerified,
		AvatarURL:     id.AvatarURL,
		Roles:         id.Roles,
		Groups:        id.Groups,
		CreatedAt:     now,
		ExpiresAt:     now.Add(m.o.TTL),
	}
	if err := m.st.PutSession(ctx, s); err != nil {
		return fmt.Errorf("websession: start: %w", err)
	}
	http.SetCookie(w, m.cookie(raw, int(m.o.TTL/time.Second), framed))
	return nil
}

// Lookup returns the visitor's session; identity.ErrNotLoggedIn when there
// is no cookie or the session is unknown or expired; another error when the
// store fails.
func (m *Manager) Lookup(r *http.Request) (store.Session, error) {
	c, err := r.Cookie(m.o.CookieName)
	if err != nil || c.Value == "" || len(c.Value) > 128 {
		return store.Session{}, identity.ErrNotLoggedIn
	}
	sum := sha256.Sum256([]byte(c.Value))
	idHash := base64.RawURLEncoding.EncodeToString(sum[:])
	key := hotKey(sum[:len(hotKey{})])
	if h, ok := m.hot.Get(key); ok {
		if now := m.o.Now().UnixMilli(); now < h.expires {
			return h.session(idHash), nil
		}
	}
	snap := m.o.Cache.Snapshot()
	s, err := m.st.GetSession(r.Context(), idHash)
	if errors.Is(err, store.ErrNotFound) {
		return store.Session{}, identity.ErrNotLoggedIn
	}
	if err != nil {
		return store.Session{}, fmt.Errorf("websession: lookup: %w", err)
	}
	if h, ok := newHotSession(s); ok {
		m.hot.Put(key, h, snap)
	}
	return s, nil
}

// End deletes the visitor's session (if any) and clears the cookie. It
// returns the ended session and whether there was one.
func (m *Manager) End(ctx context.Context, w http.ResponseWriter, r *http.Request) (store.Session, bool, error) {
	http.SetCookie(w, m.cookie("", -1, false))
	if m.partitioned() {
		http.SetCookie(w, m.cookie("", -1, true)) // a partitioned cookie is cleared only as one
	}
	s, err := m.Lookup(r)
	if errors.Is(err, identity.ErrNotLoggedIn) {
		return store.Session{}, false, nil
	}
	if err != nil {
		return store.Session{}, false, err
	}
	if err := m.st.DeleteSession(ctx, s.IDHash); err != nil {
		return store.Session{}, false, fmt.Errorf("websession: end: %w", err)
	}
	if err := m.o.Cache.Invalidate(ctx, s.Subject); err != nil {
		return s, true, fmt.Errorf("websession: end: %w", err)
	}
	return s, true, nil
}

// IdentifyAs is the Identify of every identity source that logs people in
// to rcsso's own session (local, ldap, oidc, oauth2, saml): the identity of
// the visitor's session when source created it; identity.ErrNotLoggedIn
// when there is none or another source created it; a store error.
func IdentifyAs(sessions identity.Sessions, r *http.Request, source string) (identity.Identity, error) {
	sess, err := sessions.Lookup(r)
	if err != nil {
		return identity.Identity{}, err
	}
	if sess.Source != source {
		return identity.Identity{}, identity.ErrNotLoggedIn
	}
	return Identity(sess), nil
}

// Identity returns the identity captured in a session.
func Identity(s store.Session) identity.Identity {
	return identity.Identity{
		Subject:       s.Subject,
		Source:        s.Source,
		Username:      s.Username,
		Name:          s.Name,
		Email:         s.Email,
		EmailVerified: s.EmailVerified,
		AvatarURL:     s.AvatarURL,
		Roles:         s.Roles,
		Groups:        s.Groups,
		AuthTime:      s.CreatedAt,
	}
}

// EndSubject deletes every session of a subject (all browsers) and
// announces it to every rcsso instance on the store; it returns how many
// sessions the store removed. An error after the deletion means the other
// instances may honour it only after cache.max_age.
func (m *Manager) EndSubject(ctx context.Context, subject string) (int, error) {
	n, err := m.st.DeleteSessionsBySubject(ctx, subject)
	if err != nil {
		return n, err
	}
	if err := m.o.Cache.Invalidate(ctx, subject); err != nil {
		return n, fmt.Errorf("websession: end: %w", err)
	}
	return n, nil
}

// hotKey keys a session in the hot cache: the first 128 bits of the SHA-256
// of its id. A cookie that reaches another session's entry needs a second
// preimage of those 128 bits (2^128 work), so a shorter key than the
// store's is as safe and keeps 100,000 entries 3.6 MB smaller.
type hotKey [16]byte

// hotSession is a session in the hot cache, compact: its strings share one
// allocation (data, cut at ends), its times are unix milliseconds.
type hotSession struct {
	data     string // subject, source, username, name, email, avatar URL
	ends     [5]uint16
	verified bool
	roles    *[]string // nil: the source does not manage roles
	groups   *[]string // nil: the source does not say
	created  int64
	expires  int64
}

// newHotSession packs s; false when its profile is too long to pack (it is
// then read from the store each time).
func newHotSession(s store.Session) (hotSession, bool) {
	h := hotSession{verified: s.EmailVerified, created: s.CreatedAt.UnixMilli(), expires: s.ExpiresAt.UnixMilli()}
	if s.Roles != nil {
		roles := slices.Clone(s.Roles)
		h.roles = &roles
	}
	if s.Groups != nil {
		groups := slices.Clone(s.Groups)
		h.groups = &groups
	}
	var b strings.Builder
	for i, f := range []string{s.Subject, s.Source, s.Username, s.Name, s.Email} {
		b.WriteString(f)
		if b.Len() > math.MaxUint16 {
			return hotSession{}, false
		}
		h.ends[i] = uint16(b.Len())
	}
	b.WriteString(s.AvatarURL)
	h.data = b.String()
	return h, true
}

func (h *hotSession) field(i int) string {
	start := uint16(0)
	if i > 0 {
		start = h.ends[i-1]
	}
	end := len(h.data)
	if i < len(h.ends) {
		end = int(h.ends[i])
	}
	return h.data[start:end]
}

func (h *hotSession) subject() string { return h.field(0) }

func (h *hotSession) rolesCopy() []string {
	if h.roles == nil {
		return nil
	}
	return slices.Clone(*h.roles)
}

func (h *hotSession) groupsCopy() []string {
	if h.groups == nil {
		return nil
	}
	return slices.Clone(*h.groups)
}

// session rebuilds the store record (idHash is its key, encoded).
func (h *hotSession) session(idHash string) store.Session {
	return store.Session{
		IDHash:        idHash,
		Subject:       h.field(0),
		Source:        h.field(1),
		Username:      h.field(2),
		Name:          h.field(3),
		Email:         h.field(4),
		AvatarURL:     h.field(5),
		EmailVerified: h.verified,
		Roles:         h.rolesCopy(),
		Groups:        h.groupsCopy(),
		CreatedAt:     time.UnixMilli(h.created).UTC(),
		ExpiresAt:     time.UnixMilli(h.expires).UTC(),
	}
}

func (m *Manager) partitioned() bool {
	return m.o.Partitioned && m.o.Secure && m.o.SameSite == http.SameSiteNoneMode
}

func (m *Manager) cookie(value string, maxAge int, framed bool) *http.Cookie {
	return &http.Cookie{
		Name:        m.o.CookieName,
		Value:       value,
		Path:        m.o.Path,
		MaxAge:      maxAge,
		Secure:      m.o.Secure,
		HttpOnly:    true,
		SameSite:    m.o.SameSite,
		Partitioned: framed && m.partitioned(),
	}
}

func hashID(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
