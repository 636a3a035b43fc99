package oauth2

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// Limits on what the provider's API may send.
const (
	// MaxAPIBody bounds one API answer (userinfo, e-mails, groups), in
	// bytes; a longer answer fails the login. Token answers are bounded by
	// golang.org/x/oauth2 (1 MiB).
	MaxAPIBody = 256 << 10
	// maxGroupItems bounds the groups answer's list entries looked at;
	// claims.Mapping keeps at most 256 groups.
	maxGroupItems = 1000
)

// Errors of the provider's API. They never carry a token.
var (
	// errRedirect: the API answered 3xx. Redirects are not followed: the
	// access token would go wherever the provider (or whoever answers in
	// its place) points.
	errRedirect = errors.New("oauth2: the provider's API answered with a redirect, which rcsso does not follow")
	// errTooLarge: the answer is longer than MaxAPIBody.
	errTooLarge = fmt.Errorf("oauth2: the provider's API answered with more than %d bytes", MaxAPIBody)
	// errNotJSON: the answer is not exactly one JSON value of the expected
	// kind.
	errNotJSON = errors.New("oauth2: the provider's API answer is not the JSON expected")
)

// statusError is a non-2xx, non-3xx answer of the provider's API.
type statusError struct {
	Endpoint string // scheme://host/path, without the query
	Status   int
}

func (e *statusError) Error() string {
	return fmt.Sprintf("oauth2: %s answered %d", e.Endpoint, e.Status)
}

// endpoint is rawURL without query and fragment, for logs.
func endpoint(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "(invalid URL)"
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return u.String()
}

// getJSON GETs rawURL with the access token as a Bearer credential (RFC
// 6750 §2.1: in the Authorization header, never in the query) and decodes
// the answer: 2xx only, redirects not followed (errRedirect), at most
// MaxAPIBody bytes (errTooLarge), exactly one JSON value (errNotJSON).
func (s *Source) getJSON(ctx context.Context, rawURL, token string) (any, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("oauth2: %s: %w", endpoint(rawURL), err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "rcsso") // GitHub refuses requests without one
	for k, v := range s.headers {
		req.Header.Set(k, v)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message holds the full URL
		}
		return nil, fmt.Errorf("oauth2: %s: %w", endpoint(rawURL), err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return nil, fmt.Errorf("%w (%s answered %d)", errRedirect, endpoint(rawURL), resp.StatusCode)
	case resp.StatusCode < 200 || resp.StatusCode >= 300:
		return nil, &statusError{Endpoint: endpoint(rawURL), Status: resp.StatusCode}
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxAPIBody+1))
	if err != nil {
		return nil, fmt.Errorf("oauth2: %s: reading the answer: %w", endpoint(rawURL), err)
	}
	if len(body) > MaxAPIBody {
		return nil, fmt.Errorf("%w (%s)", errTooLarge, endpoint(rawURL))
	}
	v, err := parseJSON(body)
	if err != nil {
		return nil, fmt.Errorf("%w (%s: %v)", errNotJSON, endpoint(rawURL), err)
	}
	return v, nil
}

// parseJSON decodes exactly one JSON value, numbers kept as json.Number
// (user ids beyond 2^53 stay exact).
func parseJSON(body []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, errors.New("not JSON")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON value")
	}
	return v, nil
}

// reservedPrefix marks the claims rcsso derives from the provider's
// answers (rcsso:email, rcsso:email_verified, rcsso:avatar, rcsso:groups);
// the same keys in a provider's answer are dropped.
const reservedPrefix = "rcsso:"

// Derived claim names.
const (
	claimEmail         = reservedPrefix + "email"
	claimEmailVerified = reservedPrefix + "email_verified"
	claimAvatar        = reservedPrefix + "avatar"
	claimGroups        = reservedPrefix + "groups"
)

// userinfoObject checks that a decoded userinfo answer is an object and
// drops its rcsso:* members.
func userinfoObject(v any) (map[string]any, error) {
	c, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: a %s, not an object", errNotJSON, jsonKind(v))
	}
	for k := range c {
		if strings.HasPrefix(k, reservedPrefix) {
			delete(c, k)
		}
	}
	return c, nil
}

// groupNames reads a groups answer: a JSON array whose entries are group
// names (strings) or objects naming the group in field (a dotted path;
// strings and integers are taken). Other entries are skipped; at most
// maxGroupItems entries are looked at. Anything but an array is
// errNotJSON.
func groupNames(v any, field string) ([]any, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("%w: a %s, not an array", errNotJSON, jsonKind(v))
	}
	out := []any{}
	for i, e := range list {
		if i == maxGroupItems {
			break
		}
		if o, ok := e.(map[string]any); ok {
			e = lookup(o, field)
		}
		switch x := e.(type) {
		case string:
			out = append(out, x)
		case json.Number:
			if _, err := x.Int64(); err == nil {
				out = append(out, x.String())
			}
		}
	}
	return out, nil
}

// lookup follows a dotted path into nested objects, as claims.Mapping does.
func lookup(c map[string]any, path string) any {
	if path == "" {
		return nil
	}
	if v, ok := c[path]; ok {
		return v
	}
	var cur any = c
	for part := range strings.SplitSeq(path, ".") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}
		cur = m[part]
	}
	return cur
}

func jsonKind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case string:
		return "string"
	case bool:
		return "boolean"
	}
	return "number"
}
