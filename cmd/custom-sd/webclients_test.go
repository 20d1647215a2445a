package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/web"
)

// Requests hostile clients send, and leave unread whatever comes back.
const (
	// idleRequest is answered at once; the connection then stays open,
	// kept alive, waiting for a next request that never comes.
	idleRequest = "GET /-/healthy HTTP/1.1\r\nHost: custom-sd\r\n\r\n"
	// slowReader asks for /targets and never reads the answer.
	slowReader = "GET /targets HTTP/1.1\r\nHost: custom-sd\r\n\r\n"
)

// Slack for what the daemon holds besides the HTTP connections: its
// connections to Consul (at most --consul.max-connections=5), the file it
// writes, the goroutines of its queries.
const (
	fdSlack        = 10
	goroutineSlack = 25
)

// Hostile HTTP clients hold at most --web.max-connections connections of
// the daemon at a time across its listeners; beyond that they wait in the
// kernel's accept queue. Throughout, a Prometheus that keeps its connection
// open is served and the file follows Consul; once the clients go, the
// daemon's goroutines and file descriptors return to where they were and
// new clients are served.
//
// The timeouts that end such clients without their help are tested on the
// server itself (web.TestServerClosesHostileClients), with short timeouts.
func TestHostileHTTPClients(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		maxConns  int // --web.max-connections; 0 leaves the default
		listeners int
		tls       bool
		large     bool // a /targets of about 300 KB
		clients   int
		send      string
	}{
		{name: "idle connections beyond a small cap", maxConns: 20, listeners: 1, clients: 25, send: idleRequest},
		{name: "two TLS listeners share the cap", maxConns: 20, listeners: 2, tls: true, clients: 40, send: idleRequest},
		{name: "slow readers of a 300 KB /targets", listeners: 1, large: true, clients: 300, send: slowReader},
		{name: "thousands of connections against the default cap", listeners: 1, clients: 2000, send: idleRequest},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			maxConns := tc.maxConns
			if maxConns == 0 {
				maxConns = web.DefaultMaxConnections
			}
			requireMachineLimits(t, tc.clients, maxConns)
			// The observer holds one slot; the hostile clients get the others.
			served := min(tc.clients, maxConns-1)
			saturated := tc.clients > served

			srv := testconsul.Start(t)
			instances := 1
			if tc.large {
				instances = 10
			}
			for i := range instances {
				srv.Register(t, testconsul.Instance{Service: "web", ID: fmt.Sprintf("web-%d", i), Port: 8080 + i, Meta: largeMeta(tc.large)})
			}
			dir := t.TempDir()
			out := filepath.Join(dir, "custom_sd.json")
			args := []string{"--consul.server=" + srv.HTTPAddr, "--output.file=" + out, "--consul.max-connections=5"}
			if tc.maxConns != 0 {
				args = append(args, "--web.max-connections="+strconv.Itoa(tc.maxConns))
			}
			for range tc.listeners - 1 {
				args = append(args, "--web.listen-address=127.0.0.1:0")
			}
			var tlsConf *tls.Config
			if tc.tls {
				tlsConf, args = withTLS(t, dir, args)
			}
			d := startDaemon(t, args...)
			d.waitLog(t, 1, "Output file is complete")
			addrs := d.listenAddresses(t, tc.listeners)
			if tc.large {
				require.Greater(t, fileSize(t, out), 300_000)
			}

			obs := newObserver(t, addrs[0], tlsConf)
			base := obs.resources(t)
			hostile := openHostile(t, addrs, tc.clients, tc.send, tlsConf)

			// Held: the daemon serves `served` of them, and holds at most
			// one more per listener, accepted, until a slot frees.
			var most resources
			testconsul.Eventually(t, func() bool {
				r := obs.resources(t)
				most = most.max(r)
				held := r.fds >= base.fds+served && r.goroutines >= base.goroutines+served
				if !saturated {
					return held
				}
				return held && acceptQueue(t, addrs) >= tc.clients-served-tc.listeners
			}, "the daemon holds %d connections", served)
			var further <-chan int
			if saturated {
				require.LessOrEqual(t, acceptQueue(t, addrs), tc.clients-served, "accept queue")
				if tc.listeners == 1 {
					// Once every connection is open, the queue only shrinks,
					// as the daemon accepts: down to this, and no further.
					q := tc.clients - served - 1
					testconsul.Eventually(t, func() bool { return acceptQueue(t, addrs) == q },
						"every client not served waits in the accept queue but the one the listener holds")
					further = furtherClient(t, addrs[0], tlsConf)
					testconsul.Eventually(t, func() bool { return acceptQueue(t, addrs) == q+1 }, "a further client waits in the accept queue")
					select {
					case code := <-further:
						require.Failf(t, "a further client was served while every slot was held", "code %d", code)
					default:
					}
				}
			}

			// Under the abuse, a change in Consul reaches the file, whole
			// and valid, and /targets for a client already connected.
			srv.Register(t, testconsul.Instance{Service: "late", ID: "late-1", Port: 9999})
			testconsul.Eventually(t, hasTarget(out, "late-1"))
			require.Len(t, readTargets(t, out), 1+instances+1, "consul, web, late")
			testconsul.Eventually(t, func() bool {
				file, err := os.ReadFile(out)
				code, body := obs.get(t, "/targets")
				return err == nil && code == http.StatusOK && string(file) == body
			}, "/targets serves what the file holds")

			most = most.max(obs.resources(t))
			require.LessOrEqual(t, most.fds, base.fds+served+tc.listeners+fdSlack,
				"file descriptors: at most the cap, one waiting per listener, and the baseline (%d)", base.fds)
			// net/http serves a connection with one goroutine, and while a
			// request is being answered (a slow reader's /targets) reads
			// from it with a second one: at most two per served connection.
			require.LessOrEqual(t, most.goroutines, base.goroutines+2*served+goroutineSlack,
				"goroutines: at most two per served connection and the baseline (%d)", base.goroutines)

			t.Logf("baseline %+v, most held %+v", base, most)
			hostile.close()
			if further != nil {
				select {
				case code := <-further:
					require.Equal(t, http.StatusOK, code, "the further client, once slots are free")
				case <-time.After(60 * time.Second): // a hang detector
					t.Fatal("the further client was never served")
				}
			}
			testconsul.Eventually(t, func() bool {
				r := obs.resources(t)
				return r.fds <= base.fds+fdSlack && r.goroutines <= base.goroutines+goroutineSlack
			}, "file descriptors and goroutines back to their baseline (%+v)", base)
			fresh := freshClient(tlsConf)
			for _, path := range []string{"/-/healthy", "/metrics"} {
				resp, err := fresh.Get(obs.base + path)
				require.NoError(t, err, path)
				_, err = io.Copy(io.Discard, resp.Body)
				require.NoError(t, err)
				resp.Body.Close()
				require.Equal(t, http.StatusOK, resp.StatusCode, path)
			}
			obs.client.CloseIdleConnections()
			require.Equal(t, 0, d.terminate(t))
		})
	}
}

func TestWebMaxConnectionsFlag(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, value string
	}{
		{"zero", "0"},
		{"negative", "-5"},
		{"not a number", "many"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var stderr bytes.Buffer
			code := run(context.Background(), []string{"--consul.server=127.0.0.1:1", "--output.file=" + filepath.Join(t.TempDir(), "out.json"),
				"--web.max-connections=" + tc.value}, &stderr)
			require.Equal(t, 2, code)
			require.Equal(t, fmt.Sprintf("custom-sd: error: --web.max-connections: %q is not a whole number of at least 1\n", tc.value), stderr.String())
		})
	}
}

// requireMachineLimits fails the test if this process cannot open clients
// connections, or the kernel cannot queue those beyond the cap.
func requireMachineLimits(t *testing.T, clients, maxConns int) {
	t.Helper()
	var rl syscall.Rlimit
	require.NoError(t, syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl))
	require.GreaterOrEqual(t, rl.Cur, uint64(clients+1024), "open files (ulimit -n) for %d client connections", clients)
	b, err := os.ReadFile("/proc/sys/net/core/somaxconn")
	require.NoError(t, err)
	somaxconn, err := strconv.Atoi(strings.TrimSpace(string(b)))
	require.NoError(t, err)
	require.GreaterOrEqual(t, somaxconn, clients-maxConns+1, "net.core.somaxconn: the accept queue must hold the clients beyond the cap")
}

// largeMeta returns, if large, the most service meta Consul takes: 64 keys
// of 450 bytes, about 30 KB of labels per instance.
func largeMeta(large bool) map[string]string {
	if !large {
		return nil
	}
	meta := map[string]string{}
	for i := range 64 {
		meta[fmt.Sprintf("k%02d", i)] = strings.Repeat(strconv.Itoa(i%10), 450)
	}
	return meta
}

func fileSize(t *testing.T, path string) int {
	t.Helper()
	fi, err := os.Stat(path)
	require.NoError(t, err)
	return int(fi.Size())
}

// withTLS writes a web configuration file that enables TLS and returns a
// client configuration that trusts its certificate, and args with the
// flag.
func withTLS(t *testing.T, dir string, args []string) (*tls.Config, []string) {
	t.Helper()
	certs := testconsul.NewTLS(t)
	conf := filepath.Join(dir, "web.yml")
	require.NoError(t, os.WriteFile(conf, []byte("tls_server_config:\n  cert_file: "+certs.ServerCert+"\n  key_file: "+certs.ServerKey+"\n"), 0o600))
	caPEM, err := os.ReadFile(certs.CA)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(caPEM))
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, append(args, "--web.config.file="+conf)
}

// listenAddresses waits until the daemon has logged n addresses it listens
// on, and returns them in the order logged.
func (d *daemon) listenAddresses(t *testing.T, n int) []string {
	t.Helper()
	var addrs []string
	testconsul.Eventually(t, func() bool {
		addrs = addrs[:0]
		for _, line := range strings.Split(d.stderr.String(), "\n") {
			if !strings.Contains(line, `msg="Listening on"`) {
				continue
			}
			for _, f := range strings.Fields(line) {
				if a, ok := strings.CutPrefix(f, "address="); ok {
					addrs = append(addrs, a)
				}
			}
		}
		return len(addrs) >= n
	}, "%d listen addresses in the log", n)
	return addrs
}

// acceptQueue returns how many connections wait in the kernel's accept
// queues of the listening sockets at addrs (IPv4), as /proc/net/tcp shows
// them: for a socket in LISTEN, rx_queue is its accept queue's length.
func acceptQueue(t *testing.T, addrs []string) int {
	t.Helper()
	local := map[string]bool{}
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		require.NoError(t, err)
		ip := net.ParseIP(host).To4()
		require.NotNil(t, ip, "an IPv4 address: %s", a)
		p, err := strconv.Atoi(port)
		require.NoError(t, err)
		// Little-endian IPv4, as the kernel prints it on this machine.
		local[fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], p)] = true
	}
	b, err := os.ReadFile("/proc/net/tcp")
	require.NoError(t, err)
	total, found := 0, 0
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 5 || !local[f[1]] || f[3] != "0A" { // 0A: LISTEN
			continue
		}
		_, rx, ok := strings.Cut(f[4], ":")
		require.True(t, ok, "tx_queue:rx_queue in %q", line)
		n, err := strconv.ParseUint(rx, 16, 64)
		require.NoError(t, err)
		total += int(n)
		found++
	}
	require.Equal(t, len(addrs), found, "the listening sockets in /proc/net/tcp")
	return total
}

// observer is a client that keeps one connection to the daemon, as a
// Prometheus does between scrapes.
type observer struct {
	client *http.Client
	base   string
}

func newObserver(t *testing.T, addr string, tlsConf *tls.Config) *observer {
	t.Helper()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	o := &observer{
		client: &http.Client{
			Transport: &http.Transport{MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1, TLSClientConfig: tlsConf},
			Timeout:   30 * time.Second, // a hang detector
		},
		base: scheme + "://" + addr,
	}
	t.Cleanup(o.client.CloseIdleConnections)
	code, _ := o.get(t, "/-/healthy")
	require.Equal(t, http.StatusOK, code)
	return o
}

func (o *observer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := o.client.Get(o.base + path)
	require.NoError(t, err, path)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err, path)
	return resp.StatusCode, string(b)
}

// resources are what the daemon holds, as its /metrics reports them.
type resources struct {
	fds, goroutines int
}

func (r resources) max(o resources) resources {
	return resources{fds: max(r.fds, o.fds), goroutines: max(r.goroutines, o.goroutines)}
}

func (o *observer) resources(t *testing.T) resources {
	t.Helper()
	code, body := o.get(t, "/metrics")
	require.Equal(t, http.StatusOK, code)
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(strings.NewReader(body))
	require.NoError(t, err)
	gauge := func(name string) int {
		mf, ok := families[name]
		require.True(t, ok, "metric %s is exposed", name)
		require.Len(t, mf.GetMetric(), 1, name)
		return int(value(mf.GetMetric()[0]))
	}
	return resources{fds: gauge("process_open_fds"), goroutines: gauge("go_goroutines")}
}

// freshClient opens a new connection for each request.
func freshClient(tlsConf *tls.Config) *http.Client {
	return &http.Client{
		Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: tlsConf},
		Timeout:   60 * time.Second, // a hang detector
	}
}

// furtherClient asks for /-/healthy on a new connection and sends the
// status code it gets, or 0 on an error.
func furtherClient(t *testing.T, addr string, tlsConf *tls.Config) <-chan int {
	t.Helper()
	scheme := "http"
	if tlsConf != nil {
		scheme = "https"
	}
	got := make(chan int, 1)
	go func() {
		resp, err := freshClient(tlsConf).Get(scheme + "://" + addr + "/-/healthy")
		if err != nil {
			got <- 0
			return
		}
		resp.Body.Close()
		got <- resp.StatusCode
	}()
	return got
}

// hostile are connections that send a request, or part of one, and never
// read.
type hostile struct {
	conns []net.Conn
	wg    sync.WaitGroup
}

// openHostile opens n connections, spread over addrs, each sending send
// (after a TLS handshake, with tlsConf). It returns once every connection
// is established; the handshakes and requests go on in the background, as
// a connection the daemon has not accepted waits for its answer.
func openHostile(t *testing.T, addrs []string, n int, send string, tlsConf *tls.Config) *hostile {
	t.Helper()
	h := &hostile{}
	t.Cleanup(h.close)
	dialer := net.Dialer{Timeout: 30 * time.Second} // a hang detector
	for i := range n {
		raw, err := dialer.Dial("tcp", addrs[i%len(addrs)])
		require.NoError(t, err, "connection %d", i)
		h.conns = append(h.conns, raw)
		h.wg.Go(func() {
			var c net.Conn = raw
			if tlsConf != nil {
				tc := tls.Client(raw, tlsConf)
				if tc.Handshake() != nil {
					return
				}
				c = tc
			}
			_, _ = io.WriteString(c, send)
		})
	}
	return h
}

// close closes every connection and waits for their goroutines.
func (h *hostile) close() {
	for _, c := range h.conns {
		_ = c.Close()
	}
	h.conns = nil
	h.wg.Wait()
}
