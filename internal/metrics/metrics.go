// Package metrics exposes rcsso's Prometheus metrics on a separate admin
// listener (config metrics_listen), never on the public one.
package metrics

import (
	"net/http"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rcsso/rcsso/internal/mint"
)

// Metrics holds rcsso's collectors in their own registry.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
}

// New registers the Go runtime and process collectors, the token broker's
// counters (minted, reused, validated, rejected: mint.Stats) and the HTTP
// request counter.
func New(b *mint.Broker) *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for name, f := range map[string]func(mint.Stats) int64{
		"rcsso_tokens_minted_total":    func(s mint.Stats) int64 { return s.Minted },
		"rcsso_tokens_reused_total":    func(s mint.Stats) int64 { return s.Reused },
		"rcsso_tokens_validated_total": func(s mint.Stats) int64 { return s.Validated },
		"rcsso_tokens_rejected_total":  func(s mint.Stats) int64 { return s.Rejected },
	} {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help[name]},
			func() float64 { return float64(f(b.Stats())) }))
	}
	m := &Metrics{reg: reg, requests: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rcsso_http_requests_total",
		Help: "HTTP requests by route and status code (route: api_url, iframe_url, embed, logout, webhook, other).",
	}, []string{"route", "code"})}
	reg.MustRegister(m.requests)
	return m
}

var help = map[string]string{
	"rcsso_tokens_minted_total":    "New Rocket.Chat tokens obtained (each counts toward Rocket.Chat's 50-token cap).",
	"rcsso_tokens_reused_total":    "Requests answered with a cached Rocket.Chat token.",
	"rcsso_tokens_validated_total": "Cached tokens Rocket.Chat confirmed on re-validation.",
	"rcsso_tokens_rejected_total":  "Cached tokens Rocket.Chat no longer accepted.",
}

// Observe counts one response.
func (m *Metrics) Observe(route string, code int) {
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Inc()
}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}
