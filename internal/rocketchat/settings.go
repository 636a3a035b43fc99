package rocketchat

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
)

// PublicSettings returns Rocket.Chat's public settings by _id (the iframe
// authentication and iframe integration settings are public; protocol spec
// §2.3).
//
// GET /api/v1/settings.public?count=500 (settings.yaml
// /api/v1/settings.public; no authentication). 200:
// {"settings":[{"_id","value"}…],"count","offset","total","success":true}.
// Retried on transport errors and 502/503/504.
func (c *Client) PublicSettings(ctx context.Context) (map[string]any, error) {
	const ep = "settings.public"
	var out struct {
		Settings []struct {
			ID    string `json:"_id"`
			Value any    `json:"value"`
		} `json:"settings"`
	}
	q := url.Values{"count": {strconv.Itoa(500)}}
	if err := c.do(ctx, call{method: http.MethodGet, endpoint: ep, path: "/api/v1/settings.public", query: q}, &out); err != nil {
		return nil, err
	}
	m := make(map[string]any, len(out.Settings))
	for _, s := range out.Settings {
		m[s.ID] = s.Value
	}
	return m, nil
}

// Head fetches path on Rocket.Chat's site (no API envelope) and returns the
// response headers, for diagnostics (X-Frame-Options, Content-Security-Policy).
func (c *Client) Head(ctx context.Context, path string) (http.Header, int, error) {
	u := c.BaseURL().JoinPath(path)
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("User-Agent", c.ua)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, &Error{Endpoint: path, Err: err, Message: "cannot reach Rocket.Chat"}
	}
	resp.Body.Close()
	return resp.Header, resp.StatusCode, nil
}
