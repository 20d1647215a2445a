package consul

import (
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/consul/sdk/testutil"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/faultproxy"
	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// These tests run the Discoverer against a real Consul agent.

func realDiscoverer(t *testing.T, addr string, mod func(*Config)) *Discoverer {
	t.Helper()
	cfg := Config{WatchConfig: WatchConfig{API: api.Config{Address: addr}}}
	if mod != nil {
		mod(&cfg)
	}
	d, err := New(cfg)
	require.NoError(t, err)
	return d
}

func TestRealConsulFollowsTheCatalog(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := testconsul.Start(t)
			web1 := testconsul.Instance{
				Node: "node-a", NodeMeta: map[string]string{"rack": "r1", "rack.id": "7"},
				Service: "web", ID: "web-1", Port: 8080, Tags: []string{"prod", "v1"},
				Meta: map[string]string{"team": "sre", "owner-email": "sre@example.com"}, Status: api.HealthPassing,
			}
			srv.Register(t, web1)
			srv.Register(t, testconsul.Instance{Node: "node-2", Service: "web", ID: "web-2", Address: "127.0.0.2", Port: 8080})
			srv.Register(t, testconsul.Instance{Service: "db", ID: "db-1", Address: "::1", Port: 5432, Status: api.HealthWarning})
			// Enough services to exceed a budget of 4 connections.
			for i := range 6 {
				srv.Register(t, testconsul.Instance{Service: fmt.Sprintf("filler-%d", i), Port: 9000 + i})
			}

			d := realDiscoverer(t, srv.HTTPAddr, func(c *Config) { c.MaxConnections = mode.maxConns })
			c, _ := startCollector(t, d)
			testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")
			require.Len(t, c.first, 9, "consul, web, db and six fillers in the first send")
			require.Equal(t, mode.sweeping, inDoorbellMode(d))
			wantPolls := int64(mode.longPolls)
			if wantPolls < 0 {
				wantPolls = 9
			}
			testconsul.Eventually(t, func() bool { return d.longPolls.Load() == wantPolls }, "long polls")

			got := c.labels("web", "web-1")
			require.Equal(t, map[string]string{
				"__address__":                                "127.0.0.1:8080",
				"__meta_consul_address":                      "127.0.0.1",
				"__meta_consul_dc":                           "dc1",
				"__meta_consul_health":                       "passing",
				"__meta_consul_metadata_rack":                "r1",
				"__meta_consul_metadata_rack_id":             "7",
				"__meta_consul_node":                         "node-a",
				"__meta_consul_service":                      "web",
				"__meta_consul_service_address":              "",
				"__meta_consul_service_id":                   "web-1",
				"__meta_consul_service_metadata_owner_email": "sre@example.com",
				"__meta_consul_service_metadata_team":        "sre",
				"__meta_consul_service_port":                 "8080",
				"__meta_consul_tagged_address_lan":           "127.0.0.1",
				"__meta_consul_tags":                         ",prod,v1,",
			}, got)
			require.Equal(t, "127.0.0.2:8080", c.labels("web", "web-2")["__address__"])
			require.Equal(t, "[::1]:5432", c.labels("db", "db-1")["__address__"])
			require.Equal(t, "warning", c.labels("db", "db-1")["__meta_consul_health"])

			steps := []struct {
				name   string
				change func()
				holds  func() bool
			}{
				{"register", func() {
					srv.Register(t, testconsul.Instance{Node: "node-3", Service: "web", ID: "web-3", Port: 8081})
				}, func() bool { return c.labels("web", "web-3") != nil }},
				{"deregister", func() { srv.Deregister(t, "node-2", "web-2") }, func() bool {
					return c.labels("web", "web-2") == nil && c.labels("web", "web-3") != nil
				}},
				{"health flip", func() {
					w := web1
					w.Status = api.HealthCritical
					srv.Register(t, w)
				}, func() bool { return c.labels("web", "web-1")["__meta_consul_health"] == "critical" }},
				{"tags and meta change", func() {
					w := web1
					w.Status, w.Tags, w.Meta = api.HealthCritical, []string{"canary"}, map[string]string{"team": "dev"}
					srv.Register(t, w)
				}, func() bool {
					l := c.labels("web", "web-1")
					_, oldMeta := l["__meta_consul_service_metadata_owner_email"]
					return l["__meta_consul_tags"] == ",canary," && l["__meta_consul_service_metadata_team"] == "dev" && !oldMeta
				}},
				{"node check flip", func() {
					_, err := srv.Client.Catalog().Register(&api.CatalogRegistration{
						Node: "node-3", Address: "127.0.0.1",
						Check: &api.AgentCheck{Node: "node-3", CheckID: "node-alive", Name: "node alive", Status: api.HealthCritical},
					}, nil)
					require.NoError(t, err)
				}, func() bool { return c.labels("web", "web-3")["__meta_consul_health"] == "critical" }},
				{"service leaves the catalog", func() { srv.Deregister(t, "", "db-1") }, func() bool {
					got, _ := c.snapshot()
					_, ok := got["db"]
					return !ok
				}},
			}
			for _, s := range steps {
				s.change()
				testconsul.Eventually(t, s.holds, s.name)
			}
			require.Zero(t, d.transport.limited.Load(), "no 429s")
			require.LessOrEqual(t, d.transport.maxConns.Load(), int64(mode.maxConns), "within the connection budget")
		})
	}
}

// TestRealConsulConnectionBudget runs against an agent whose per-client
// limit is low, with more services than connections: the first set is
// complete, no request is refused and the budget holds.
func TestRealConsulConnectionBudget(t *testing.T) {
	t.Parallel()
	const budget, limit, services = 8, 16, 60
	srv := testconsul.Start(t, func(c *testutil.TestServerConfig) {
		c.Args = append(c.Args, "-hcl", fmt.Sprintf("limits { http_max_conns_per_client = %d }", limit))
	})
	for i := range services {
		for j := range 2 {
			srv.Register(t, testconsul.Instance{Node: fmt.Sprintf("node-%d", j), Service: fmt.Sprintf("svc-%02d", i), Port: 10000 + i})
		}
	}
	d := realDiscoverer(t, srv.HTTPAddr, func(c *Config) { c.MaxConnections = budget })
	c, _ := startCollector(t, d)
	testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")
	got, _ := c.snapshot()
	require.Len(t, got, services+1)
	for name, ids := range got {
		if name != "consul" {
			require.Len(t, ids, 2, name)
		}
	}
	require.True(t, inDoorbellMode(d))

	srv.Register(t, testconsul.Instance{Node: "node-9", Service: "svc-42", ID: "late", Port: 10042})
	testconsul.Eventually(t, func() bool { return c.labels("svc-42", "late") != nil })

	require.Zero(t, d.transport.limited.Load(), "no 429s")
	require.LessOrEqual(t, d.transport.maxConns.Load(), int64(budget))
}

// TestRealConsulProbeFindsAFullHost: a greedy client on the host takes
// every connection the agent grants it, while the watch holds its own and
// opens none. The watch's probe hears the agent refuse and gives
// connections back. Over plain HTTP, where the watch holds a connection
// per long poll, a client that comes next is then served.
func TestRealConsulProbeFindsAFullHost(t *testing.T) {
	t.Parallel()
	for _, scheme := range []string{"http", "https"} {
		t.Run(scheme, func(t *testing.T) {
			t.Parallel()
			const budget, limit, services = 16, 32, 40
			files := testconsul.NewTLS(t)
			srv := testconsul.Start(t, testconsul.WithHTTPS(files), func(c *testutil.TestServerConfig) {
				c.Args = append(c.Args, "-hcl", fmt.Sprintf("limits { http_max_conns_per_client = %d }", limit))
			})
			for i := range services {
				srv.Register(t, testconsul.Instance{Service: fmt.Sprintf("svc-%02d", i), Port: 10000 + i})
			}
			addr := srv.HTTPAddr
			if scheme == "https" {
				addr = "https://" + srv.HTTPSAddr
			}
			d := realDiscoverer(t, addr, func(c *Config) {
				c.MaxConnections = budget
				c.API.TLSConfig = api.TLSConfig{CAFile: files.CA}
			})
			d.probeEvery = 20 * time.Millisecond
			c, _ := startCollector(t, d)
			testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")
			got, _ := c.snapshot()
			require.Len(t, got, services+1)

			// The greedy client keeps the host full (the agent counts plain
			// and TLS connections together) until the watch gives back.
			greedy := fillHost(t, srv.HTTPAddr)
			testconsul.Eventually(t, func() bool { return d.budgetNow.Load() < budget }, "the watch gives connections back")
			greedy()
			if scheme == "https" {
				return // the long polls share one or two connections: nothing to give back
			}
			client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
			testconsul.Eventually(t, func() bool {
				resp, err := client.Get("http://" + srv.HTTPAddr + "/v1/status/leader")
				if err != nil {
					return false
				}
				_ = resp.Body.Close()
				return resp.StatusCode == http.StatusOK
			}, "a new client is served while the greedy one holds its connections")
		})
	}
}

// fillHost opens connections to the agent at addr and holds those it
// accepts, taking every one it grants, until stop is called; the
// connections are closed when the test ends.
func fillHost(t *testing.T, addr string) (stop func()) {
	t.Helper()
	var held []net.Conn
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-quit:
				return
			case <-time.After(10 * time.Millisecond):
			}
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				continue
			}
			if refusedAtOnce(conn) {
				_ = conn.Close()
				continue
			}
			held = append(held, conn)
		}
	}()
	var once sync.Once
	stop = func() { once.Do(func() { close(quit); <-done }) }
	t.Cleanup(func() {
		stop()
		for _, conn := range held {
			_ = conn.Close()
		}
	})
	return stop
}

// refusedAtOnce reports whether the agent refuses conn (answers 429 or
// closes it) at once, as it does past its per-client limit. A refusal
// that comes later is missed: the connection is held, closed.
func refusedAtOnce(conn net.Conn) bool {
	_ = conn.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	_, err := conn.Read(make([]byte, 1))
	_ = conn.SetReadDeadline(time.Time{})
	return err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
}

// TestRealConsulHTTP2 shows that over HTTPS the long polls share HTTP/2
// connections: with a budget of four connections, twenty services each get
// a long poll of their own instead of falling back to sweeps.
func TestRealConsulHTTP2(t *testing.T) {
	t.Parallel()
	files := testconsul.NewTLS(t)
	srv := testconsul.Start(t, testconsul.WithHTTPS(files))
	for i := range 20 {
		srv.Register(t, testconsul.Instance{Service: fmt.Sprintf("svc-%02d", i), Port: 10000 + i})
	}
	d := realDiscoverer(t, "https://"+srv.HTTPSAddr, func(c *Config) {
		c.MaxConnections = MinConnections
		c.API.TLSConfig = api.TLSConfig{CAFile: files.CA}
	})
	c, _ := startCollector(t, d)
	testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")
	require.True(t, d.transport.http2.Load(), "the agent answered over HTTP/2")
	require.False(t, inDoorbellMode(d), "every service has its own long poll")
	got, _ := c.snapshot()
	require.Len(t, got, 21)

	srv.Register(t, testconsul.Instance{Node: "node-2", Service: "svc-07", ID: "second", Port: 10007})
	testconsul.Eventually(t, func() bool { return c.labels("svc-07", "second") != nil })
	require.LessOrEqual(t, d.transport.maxConns.Load(), int64(2), "a handful of connections")
}

// TestRealConsulUnreachableAtStart: nothing is sent while the agent is down;
// the complete set follows once it is up.
func TestRealConsulUnreachableAtStart(t *testing.T) {
	t.Parallel()
	proxy := faultproxy.Start(t, "") // no agent behind it yet
	d := realDiscoverer(t, proxy.Addr, nil)
	c, _ := startCollector(t, d)
	testconsul.Eventually(t, func() bool { return d.Requests() >= 3 }, "retries while Consul is down")
	_, sends := c.snapshot()
	require.Zero(t, sends)

	srv := testconsul.Start(t)
	require.NoError(t, proxy.SetTarget(srv.HTTPAddr))
	srv.Register(t, testconsul.Instance{Service: "web", Port: 80})
	testconsul.Eventually(t, func() bool { return c.labels("web", "web") != nil }, "targets once Consul is up")
}

// TestRealConsulStoppedKeepsTargets: when the agent goes away, nothing is
// deleted.
func TestRealConsulStoppedKeepsTargets(t *testing.T) {
	t.Parallel()
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			t.Parallel()
			srv := testconsul.Start(t)
			for i := range 6 {
				srv.Register(t, testconsul.Instance{Service: fmt.Sprintf("svc-%d", i), Port: 10000 + i})
			}
			d := realDiscoverer(t, srv.HTTPAddr, func(c *Config) { c.MaxConnections = mode.maxConns })
			c, _ := startCollector(t, d)
			testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")
			before, _ := c.snapshot()

			srv.Halt(t)
			requests := d.Requests()
			testconsul.Eventually(t, func() bool { return d.Requests() >= requests+3 }, "retries after Consul stopped")
			mid, sends := c.snapshot()
			requests = d.Requests()
			testconsul.Eventually(t, func() bool { return d.Requests() >= requests+3 }, "more retries")
			after, sendsAfter := c.snapshot()
			require.Equal(t, before, after, "every instance is still there")
			require.Equal(t, mid, after)
			require.Equal(t, sends, sendsAfter, "nothing was sent while Consul was down")
		})
	}
}

// TestRealConsulConvergesUnderChurn hammers a real agent with concurrent
// health flips, tag changes, rewrites of the port and meta that keep the
// tags, deregistrations and registrations, then checks that what the
// discoverer holds is exactly what Consul holds: no change is lost to a race
// between long polls, doorbells, summaries, verifications, sweeps and
// hand-overs.
func TestRealConsulConvergesUnderChurn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		maxConns int
		services int
		latency  time.Duration // up to this much added to each request
	}{
		{modes[0].name, modes[0].maxConns, 30, 0},
		{modes[1].name, modes[1].maxConns, 30, 0},
		{modes[2].name, modes[2].maxConns, 30, 0},
		{"default budget, many readers racing", DefaultMaxConnections, 100, 0},
		{"default budget, over a slow network", DefaultMaxConnections, 100, 3 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := testconsul.Start(t)
			const nodes = 3
			instance := func(s, n int, status string) testconsul.Instance {
				return testconsul.Instance{Node: fmt.Sprintf("node-%d", n), Service: fmt.Sprintf("svc-%d", s),
					ID: fmt.Sprintf("svc-%d-%d", s, n), Port: 10000 + s, Status: status}
			}
			for s := range tc.services {
				for n := range nodes {
					srv.Register(t, instance(s, n, api.HealthPassing))
				}
			}
			addr := srv.HTTPAddr
			if tc.latency > 0 {
				addr = slowProxy(t, addr, tc.latency)
			}
			d := realDiscoverer(t, addr, func(c *Config) { c.MaxConnections = tc.maxConns })
			c, _ := startCollector(t, d)
			testconsul.Eventually(t, func() bool { _, n := c.snapshot(); return n > 0 }, "initial set")

			statuses := []string{api.HealthPassing, api.HealthWarning, api.HealthCritical}
			var wg sync.WaitGroup
			for w := range 32 {
				wg.Go(func() {
					rnd := rand.New(rand.NewPCG(uint64(w), 1))
					for range 40 {
						in := instance(rnd.IntN(tc.services), rnd.IntN(nodes), statuses[rnd.IntN(len(statuses))])
						switch op := rnd.IntN(20); {
						case op < 3:
							srv.Deregister(t, in.Node, in.ID)
						case op < 6:
							in.Tags = []string{fmt.Sprintf("v%d", rnd.IntN(3))}
							srv.Register(t, in)
						case op < 9: // what the catalog summary cannot show
							in.Port = 20000 + rnd.IntN(1000)
							in.Meta = map[string]string{"version": fmt.Sprint(rnd.IntN(1000))}
							srv.Register(t, in)
						default:
							srv.Register(t, in) // mostly a health flip
						}
					}
				})
			}
			wg.Wait()

			want := map[string]map[string]string{}
			names, _, err := srv.Client.Catalog().Services(nil)
			require.NoError(t, err)
			for name := range names {
				entries, _, err := srv.Client.Health().Service(name, "", false, nil)
				require.NoError(t, err)
				if len(entries) == 0 {
					continue
				}
				want[name] = map[string]string{}
				for _, e := range entries {
					want[name][e.Service.ID] = fmt.Sprint(e.Checks.AggregatedStatus(), " ", joinTags(e.Service.Tags, ","), " ", e.Service.Port, " ", e.Service.Meta["version"])
				}
			}
			held := func() map[string]map[string]string {
				c.mu.Lock()
				defer c.mu.Unlock()
				out := map[string]map[string]string{}
				for name, g := range c.groups {
					out[name] = map[string]string{}
					for _, tg := range g.Targets {
						out[name][string(tg[serviceIDLabel])] = fmt.Sprint(tg[healthLabel], " ", tg[tagsLabel], " ", tg[servicePortLabel], " ", tg[serviceMetaPrefix+"version"])
					}
				}
				return out
			}
			require.EventuallyWithT(t, func(c *assert.CollectT) { require.Equal(c, want, held()) },
				30*time.Second, 20*time.Millisecond, "the discoverer converges on Consul's state")
			require.Zero(t, d.transport.limited.Load())
		})
	}
}

// slowProxy forwards to addr, delaying each request by a random time up to
// maxDelay, as a network would; it returns its own address.
func slowProxy(t *testing.T, addr string, maxDelay time.Duration) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: addr})
	rp.FlushInterval = -1
	rp.ErrorLog = stdlog.New(io.Discard, "", 0) // aborted long polls are expected
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(rand.N(maxDelay))
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}
