package consul

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Request outcomes in custom_sd_consul_requests_total. A request cancelled
// by custom-sd itself (a long poll handed over, or shutdown) is "canceled",
// not an error.
const (
	outcomeSuccess     = "success"
	outcomeRateLimited = "rate_limited"
	outcomeHTTPError   = "http_error"
	outcomeError       = "error"
	outcomeTimeout     = "timeout"
	outcomeCanceled    = "canceled"
)

// endpoints are the Consul API paths the discoverer calls, as metric labels.
var endpoints = []struct{ prefix, label string }{
	{"catalog/services", "catalog_services"},
	{"catalog/nodes", "catalog_nodes"},
	{"health/service/", "health_service"},
	{"health/state/", "health_state"},
	{"internal/ui/services", "catalog_summary"},
	{"internal/ui/nodes", "node_dump"},
}

// endpointOf names the Consul endpoint of a request path, which may carry a
// prefix before /v1/ (a Consul behind a reverse proxy).
func endpointOf(path string) string {
	i := strings.LastIndex(path, "/v1/")
	if i < 0 {
		return "other"
	}
	rest := path[i+len("/v1/"):]
	for _, e := range endpoints {
		if strings.HasPrefix(rest, e.prefix) {
			return e.label
		}
	}
	return "other"
}

// outcomeOf classifies the result of one round trip.
func outcomeOf(ctx context.Context, resp *http.Response, err error) string {
	switch {
	case err != nil && errors.Is(ctx.Err(), context.Canceled):
		return outcomeCanceled
	case err != nil && (errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)):
		return outcomeTimeout
	case err != nil:
		return outcomeError
	case resp.StatusCode == http.StatusTooManyRequests:
		return outcomeRateLimited
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return outcomeSuccess
	default:
		return outcomeHTTPError
	}
}

// metrics are the discoverer's own metrics. The Discoverer is a
// prometheus.Collector for them.
type metrics struct {
	requests      *prometheus.CounterVec
	duration      *prometheus.HistogramVec
	lastSuccess   prometheus.Gauge
	resets        prometheus.Counter
	sweeps        prometheus.Counter
	verifications prometheus.Counter
	collectors    []prometheus.Collector
}

func newMetrics(w *Watch, t *transport) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custom_sd_consul_requests_total",
			Help: "HTTP requests to Consul, by endpoint and outcome (success, rate_limited, http_error, error, timeout, canceled).",
		}, []string{"endpoint", "outcome"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "custom_sd_consul_request_duration_seconds",
			Help: "Time from sending a request to Consul to its response headers, by endpoint. Blocking queries are held up to the wait time.",
			// From a quick read to a long poll held for the whole wait time.
			Buckets: []float64{.001, .005, .025, .1, .5, 2.5, 10, 60, 300, 600},
		}, []string{"endpoint"}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_consul_last_success_timestamp_seconds",
			Help: "When Consul last answered a request successfully, in Unix seconds; 0 before that.",
		}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custom_sd_consul_index_resets_total",
			Help: "Blocking queries whose index went backwards (Consul restarted empty or restored a snapshot), so watching started over.",
		}),
		sweeps: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custom_sd_consul_sweeps_total",
			Help: "Sweeps of the services without a long poll of their own.",
		}),
		verifications: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custom_sd_consul_verifications_total",
			Help: "Verifications of the services without a long poll of their own against Consul's node dump, after changes of the catalog.",
		}),
	}
	services := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_services",
		Help: "Services watched, in every datacenter (a service read for several jobs counts once).",
	}, func() float64 { return float64(w.watched.Load()) })
	longPolls := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_long_polls",
		Help: "Services with a blocking query of their own.",
	}, func() float64 { return float64(w.longPolls.Load()) })
	sweepMode := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_sweep_mode",
		Help: "Scopes (a datacenter, or a query of its own) with more services than their share of the connection budget holds long polls for, watched with doorbells and sweeps.",
	}, func() float64 { return float64(w.doorbellScopes.Load()) })
	conns := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_connections",
		Help: "TCP connections open to Consul.",
	}, func() float64 { return float64(t.conns.Load()) })
	budget := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_max_connections",
		Help: "The configured connection budget.",
	}, func() float64 { return float64(w.cfg.MaxConnections) })
	inForce := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_connection_budget",
		Help: "The connection budget in force: the configured one, less what the agent refused (429) to leave room for its other clients.",
	}, func() float64 { return float64(w.budgetNow.Load()) })
	unreadable := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_unreadable_services",
		Help: "Services whose reads fail in a way retrying does not cure (or has not for 30s before their first read): their jobs' files go on without them, and they are read again with backoff.",
	}, func() float64 { return float64(len(w.Unreadable())) })
	http2 := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_consul_http2",
		Help: "1 once Consul answered over HTTP/2 (HTTPS), so many blocking queries share one connection.",
	}, func() float64 { return oneIf(t.http2.Load()) })
	for _, e := range endpoints {
		for _, o := range []string{outcomeSuccess, outcomeRateLimited, outcomeHTTPError, outcomeError, outcomeTimeout, outcomeCanceled} {
			m.requests.WithLabelValues(e.label, o)
		}
	}
	m.collectors = []prometheus.Collector{m.requests, m.duration, m.lastSuccess, m.resets, services, m.sweeps, m.verifications, longPolls, sweepMode, conns, budget, inForce, http2, unreadable}
	return m
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// observe records one round trip.
func (m *metrics) observe(req *http.Request, start time.Time, resp *http.Response, err error) {
	endpoint := endpointOf(req.URL.Path)
	outcome := outcomeOf(req.Context(), resp, err)
	m.requests.WithLabelValues(endpoint, outcome).Inc()
	if outcome == outcomeCanceled {
		return
	}
	now := time.Now()
	m.duration.WithLabelValues(endpoint).Observe(now.Sub(start).Seconds())
	if outcome == outcomeSuccess {
		m.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	}
}

// Describe implements prometheus.Collector.
func (w *Watch) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range w.metrics.collectors {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (w *Watch) Collect(ch chan<- prometheus.Metric) {
	for _, c := range w.metrics.collectors {
		c.Collect(ch)
	}
}
