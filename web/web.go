// Package web is custom-sd's HTTP side: Prometheus metrics, health and
// readiness probes, and an HTTP SD endpoint that serves the same targets as
// the file, in the format Prometheus's http_sd_configs reads; and the
// server's bounds on what one client can hold of it.
package web

import (
	"fmt"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	toolkit "github.com/prometheus/exporter-toolkit/web"

	"github.com/custom-sd/custom-sd/adapter"
)

// Paths served.
const (
	MetricsPath = "/metrics"
	HealthyPath = "/-/healthy"
	ReadyPath   = "/-/ready"
	ReloadPath  = "/-/reload"
	TargetsPath = "/targets"
	PprofPath   = "/debug/pprof/"
)

// Options configure the handler.
type Options struct {
	// Registry holds the metrics /metrics serves; the handler adds its own
	// request metrics to it.
	Registry *prometheus.Registry
	// Gatherer, if not nil, is what /metrics serves instead of Registry
	// alone (it should include Registry).
	Gatherer prometheus.Gatherer
	// Ready reports whether every job's output holds a complete set.
	Ready func() bool
	// Unreadable, if not nil, lists the services the jobs go on without
	// because they cannot be read, for /-/ready's body.
	Unreadable func() []string
	// Jobs lists the jobs' names, sorted.
	Jobs func() []string
	// Targets returns a job's latest complete set, or nil before there is
	// one; ok is false for an unknown job.
	Targets func(job string) (snap *adapter.Snapshot, ok bool)
	// ServiceOf names the service a group belongs to, or "" if none, for
	// ?service=. Nil means the group's Source.
	ServiceOf func(adapter.Key) string
	// Reload reloads the configuration; nil answers 403, as Prometheus
	// does without --web.enable-lifecycle.
	Reload func() error
	// Version is shown on the landing page.
	Version string
}

// NewHandler returns the HTTP handler for every path custom-sd serves.
//
//   - /metrics: the registry, in the Prometheus and OpenMetrics formats.
//   - /-/healthy: 200 while the process runs.
//   - /-/ready: 200 once every job's output holds a complete set, 503 before.
//   - /targets/<job>: the job's current targets in http_sd format, 200 with
//     application/json; 503 before the first complete set, never an empty
//     list that would wipe a restarting Prometheus's targets. ?service=name
//     (repeatable) keeps only those services. /targets is the only job's,
//     when there is one. The answer has its size at SlowLink on top of the
//     server's write timeout.
//   - /-/reload: POST or PUT reloads the configuration.
//   - /debug/pprof/: Go's profiles, as Prometheus serves them.
//
// All but /-/reload accept GET and HEAD.
func NewHandler(o Options) (http.Handler, error) {
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "custom_sd_http_requests_total",
		Help: "HTTP requests custom-sd answered, by handler and status code.",
	}, []string{"handler", "code"})
	if err := o.Registry.Register(requests); err != nil {
		return nil, fmt.Errorf("register HTTP metrics: %w", err)
	}
	instrument := func(name string, h http.Handler) http.Handler {
		return promhttp.InstrumentHandlerCounter(requests.MustCurryWith(prometheus.Labels{"handler": name}), h)
	}

	landing, err := toolkit.NewLandingPage(toolkit.LandingConfig{
		Name:        "custom-sd",
		Description: "Keeps a Prometheus file_sd file in step with Consul",
		Version:     o.Version,
		Links: []toolkit.LandingLinks{
			{Address: MetricsPath, Text: "Metrics"},
			{Address: TargetsPath, Text: "Targets", Description: "HTTP SD: the only job's targets, as in its file; /targets/<job> for one of several"},
			{Address: HealthyPath, Text: "Healthy"},
			{Address: ReadyPath, Text: "Ready", Description: "200 once every job's file holds a complete set"},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("landing page: %w", err)
	}

	gatherer := prometheus.Gatherer(o.Registry)
	if o.Gatherer != nil {
		gatherer = o.Gatherer
	}
	mux := http.NewServeMux()
	// A GET pattern also matches HEAD; other methods get 405.
	mux.Handle("GET /{$}", landing)
	mux.Handle("GET "+MetricsPath, promhttp.InstrumentMetricHandler(o.Registry,
		promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{Registry: o.Registry, EnableOpenMetrics: true})))
	mux.Handle("GET "+HealthyPath, instrument("healthy", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		plain(w, http.StatusOK, "custom-sd is Healthy.\n")
	})))
	mux.Handle("GET "+ReadyPath, instrument("ready", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		code, msg := http.StatusOK, "custom-sd is Ready.\n"
		if !o.Ready() {
			code, msg = http.StatusServiceUnavailable, "custom-sd is not ready: not every job's output holds a complete set yet.\n"
		}
		if o.Unreadable != nil {
			if lines := o.Unreadable(); len(lines) > 0 {
				msg += "These services cannot be read; every job goes on without them, and they are read again with backoff:\n  " + strings.Join(lines, "\n  ") + "\n"
			}
		}
		plain(w, code, msg)
	})))
	mux.Handle("GET "+TargetsPath, instrument("targets", targetsHandler(o, "")))
	mux.Handle("GET "+TargetsPath+"/{job}", instrument("targets", targetsHandler(o, "job")))
	reload := instrument("reload", reloadHandler(o.Reload))
	mux.Handle("POST "+ReloadPath, reload)
	mux.Handle("PUT "+ReloadPath, reload)
	mux.HandleFunc("GET "+PprofPath, pprof.Index)
	mux.HandleFunc("GET "+PprofPath+"cmdline", pprof.Cmdline)
	mux.HandleFunc("GET "+PprofPath+"profile", pprof.Profile)
	mux.HandleFunc("GET "+PprofPath+"symbol", pprof.Symbol)
	mux.HandleFunc("GET "+PprofPath+"trace", pprof.Trace)
	return mux, nil
}

// targetsHandler serves the HTTP SD endpoint of the job named by the path
// wildcard param, or of the only job when param is "".
func targetsHandler(o Options, param string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		job := r.PathValue(param)
		if param == "" {
			jobs := o.Jobs()
			if len(jobs) != 1 {
				plain(w, http.StatusNotFound, fmt.Sprintf("custom-sd runs %d jobs; ask for one: %s/<job>, with <job> one of %s.\n", len(jobs), TargetsPath, strings.Join(jobs, ", ")))
				return
			}
			job = jobs[0]
		}
		snap, ok := o.Targets(job)
		if !ok {
			plain(w, http.StatusNotFound, fmt.Sprintf("custom-sd has no job %q; its jobs: %s.\n", job, strings.Join(o.Jobs(), ", ")))
			return
		}
		if snap == nil {
			plain(w, http.StatusServiceUnavailable, "custom-sd has not read every Consul service of this job yet; try again shortly.\n")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		services, filtered := r.URL.Query()["service"]
		if !filtered {
			// The whole set is streamed from the snapshot, not copied.
			// A client too slow for the write deadline gets fewer bytes
			// than Content-Length says: an error, never a shorter list.
			w.Header().Set("Content-Length", strconv.Itoa(snap.Size()))
			w.WriteHeader(http.StatusOK)
			if r.Method != http.MethodHead {
				allowWrite(w, r, snap.Size())
				_, _ = snap.WriteTo(w)
			}
			return
		}
		want := make(map[string]bool, len(services))
		for _, s := range services {
			want[s] = true
		}
		serviceOf := o.ServiceOf
		if serviceOf == nil {
			serviceOf = func(k adapter.Key) string { return k.Source }
		}
		body := snap.Filter(func(k adapter.Key) bool { return want[serviceOf(k)] })
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			allowWrite(w, r, len(body))
			_, _ = w.Write(body)
		}
	}
}

// reloadHandler reloads the configuration, if reloading is enabled.
func reloadHandler(reload func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if reload == nil {
			plain(w, http.StatusForbidden, "Lifecycle API is not enabled.\n")
			return
		}
		if err := reload(); err != nil {
			plain(w, http.StatusInternalServerError, fmt.Sprintf("failed to reload config: %s\n", err))
			return
		}
		plain(w, http.StatusOK, "Configuration reloaded.\n")
	}
}

func plain(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(code)
	_, _ = w.Write([]byte(msg))
}
