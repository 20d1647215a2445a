package web

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/custom-sd/custom-sd/adapter"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// gate is a discoverer that sends its groups once released.
type gate struct {
	release chan struct{}
	groups  []*adapter.Group
}

func (g *gate) Run(ctx context.Context, up chan<- []*adapter.Group) {
	select {
	case <-g.release:
	case <-ctx.Done():
		return
	}
	select {
	case up <- g.groups:
	case <-ctx.Done():
		return
	}
	<-ctx.Done()
}

func target(addr, service string) model.LabelSet {
	return model.LabelSet{model.AddressLabel: model.LabelValue(addr), "__meta_consul_service": model.LabelValue(service)}
}

// startAdapter runs a real adapter over a gated discoverer and returns it
// with the handler in front of it.
func startAdapter(t *testing.T) (*adapter.Adapter, *gate, http.Handler, *prometheus.Registry) {
	t.Helper()
	g := &gate{release: make(chan struct{}), groups: []*adapter.Group{
		{Source: "web", Targets: []model.LabelSet{target("127.0.0.1:8080", "web"), target("127.0.0.1:8081", "web")}},
		{Source: "db", Targets: []model.LabelSet{target("127.0.0.3:5432", "db")}},
	}}
	a, err := adapter.New(filepath.Join(t.TempDir(), "out.json"), map[string]adapter.Discoverer{"consul": g}, adapter.Options{Interval: time.Millisecond})
	require.NoError(t, err)
	reg := prometheus.NewRegistry()
	reg.MustRegister(a)
	h, err := NewHandler(Options{Registry: reg, Ready: a.Ready, Version: "test",
		Jobs: func() []string { return []string{"web"} },
		Targets: func(job string) (*adapter.Snapshot, bool) {
			if job != "web" {
				return nil, false
			}
			return a.Snapshot(), true
		},
	})
	require.NoError(t, err)
	runAdapter(t, a)
	return a, g, h, reg
}

// runAdapter runs a until the test ends.
func runAdapter(t *testing.T, a *adapter.Adapter) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		a.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
}

func serve(h http.Handler, method, target string) *http.Response {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, nil))
	return rec.Result()
}

func body(t *testing.T, r *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	require.NoError(t, err)
	return string(b)
}

func TestHandler(t *testing.T) {
	t.Parallel()
	a, g, h, reg := startAdapter(t)

	before := []struct {
		name, method, path string
		code               int
	}{
		{"healthy from the start", "GET", HealthyPath, 200},
		{"healthy, HEAD", "HEAD", HealthyPath, 200},
		{"not ready before a complete set", "GET", ReadyPath, 503},
		{"not ready, HEAD", "HEAD", ReadyPath, 503},
		{"no targets before a complete set", "GET", TargetsPath, 503},
		{"nor for the job by name", "GET", TargetsPath + "/web", 503},
		{"an unknown job", "GET", TargetsPath + "/nope", 404},
		{"reload without the lifecycle API", "POST", ReloadPath, 403},
		{"reload is not a GET", "GET", ReloadPath, 405},
		{"landing page", "GET", "/", 200},
		{"unknown path", "GET", "/nope", 404},
		{"wrong method", "POST", TargetsPath, 405},
	}
	for _, tc := range before {
		require.Equal(t, tc.code, serve(h, tc.method, tc.path).StatusCode, tc.name)
	}

	close(g.release)
	require.Eventually(t, a.Ready, time.Minute, time.Millisecond)

	tests := []struct {
		name, method, path string
		code               int
		contains           []string
		absent             []string
	}{
		{"ready", "GET", ReadyPath, 200, []string{"Ready"}, nil},
		{"every target", "GET", TargetsPath, 200, []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.3:5432"}, nil},
		{"the job by name", "GET", TargetsPath + "/web", 200, []string{"127.0.0.1:8080", "127.0.0.1:8081", "127.0.0.3:5432"}, nil},
		{"the job by name, one service", "GET", TargetsPath + "/web?service=db", 200, []string{"127.0.0.3:5432"}, []string{"8080"}},
		{"one service", "GET", TargetsPath + "?service=db", 200, []string{"127.0.0.3:5432"}, []string{"8080"}},
		{"two services", "GET", TargetsPath + "?service=db&service=web", 200, []string{"127.0.0.3:5432", "127.0.0.1:8080"}, nil},
		{"unknown service", "GET", TargetsPath + "?service=nope", 200, []string{"[]"}, []string{"targets"}},
		{"HEAD has no body", "HEAD", TargetsPath, 200, nil, []string{"targets"}},
		{"metrics", "GET", MetricsPath, 200, []string{"custom_sd_targets 3", `custom_sd_http_requests_total{code="200",handler="targets"}`}, nil},
		{"pprof index", "GET", PprofPath, 200, []string{"heap", "goroutine"}, nil},
		{"heap profile", "GET", PprofPath + "heap?debug=1", 200, []string{"heap profile"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := serve(h, tc.method, tc.path)
			require.Equal(t, tc.code, r.StatusCode)
			b := body(t, r)
			for _, s := range tc.contains {
				require.Contains(t, b, s)
			}
			for _, s := range tc.absent {
				require.NotContains(t, b, s)
			}
		})
	}

	r := serve(h, "GET", TargetsPath)
	require.Equal(t, "application/json", r.Header.Get("Content-Type"))
	require.Equal(t, string(a.Snapshot().JSON()), body(t, r))
	require.Equal(t, 2.0, counter(t, reg, "custom_sd_http_requests_total", map[string]string{"handler": "targets", "code": "503"}))
}

// counter returns the value of the counter sample of name with exactly
// labels, or 0 if there is none.
func counter(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	samples:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, l := range m.GetLabel() {
				if labels[l.GetName()] != l.GetValue() {
					continue samples
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func TestHandlerRefusesADoubleRegistration(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	o := Options{Registry: reg, Ready: func() bool { return true }, Jobs: func() []string { return nil }, Targets: func(string) (*adapter.Snapshot, bool) { return nil, false }}
	_, err := NewHandler(o)
	require.NoError(t, err)
	_, err = NewHandler(o)
	require.ErrorContains(t, err, "register HTTP metrics")
}

// With several jobs, /targets names them; /-/reload reloads when enabled.
func TestHandlerJobsAndReload(t *testing.T) {
	t.Parallel()
	var reloads int
	fail := false
	h, err := NewHandler(Options{
		Registry: prometheus.NewRegistry(), Ready: func() bool { return true },
		Jobs:    func() []string { return []string{"apps", "nodes"} },
		Targets: func(job string) (*adapter.Snapshot, bool) { return nil, job == "apps" || job == "nodes" },
		Reload: func() error {
			reloads++
			if fail {
				return errors.New("jobs[x].health: bad")
			}
			return nil
		},
	})
	require.NoError(t, err)
	r := serve(h, "GET", TargetsPath)
	require.Equal(t, 404, r.StatusCode)
	require.Contains(t, body(t, r), "/targets/<job>, with <job> one of apps, nodes")
	require.Equal(t, 503, serve(h, "GET", TargetsPath+"/nodes").StatusCode)

	require.Equal(t, 200, serve(h, "POST", ReloadPath).StatusCode)
	require.Equal(t, 200, serve(h, "PUT", ReloadPath).StatusCode)
	fail = true
	r = serve(h, "POST", ReloadPath)
	require.Equal(t, 500, r.StatusCode)
	require.Contains(t, body(t, r), "jobs[x].health: bad")
	require.Equal(t, 3, reloads)
}
