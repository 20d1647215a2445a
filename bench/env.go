package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/internal/testcerts"
)

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// agent is a Consul dev agent with default limits, on loopback.
type agent struct {
	cmd       *exec.Cmd
	addr      string
	httpsAddr string // with HTTPS: its address, and the CA that signed it
	ca        string
	client    *api.Client
	refused   atomic.Int64 // the harness's own requests the agent refused with 429
}

func startAgent(consulBin, dir string, https bool) (*agent, error) {
	ports := make([]int, 5)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	log, err := os.Create(filepath.Join(dir, "consul.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-http-port", strconv.Itoa(ports[0]), "-serf-lan-port", strconv.Itoa(ports[1]),
		"-serf-wan-port", strconv.Itoa(ports[2]), "-server-port", strconv.Itoa(ports[3]),
		"-dns-port", "-1", "-grpc-port", "-1", "-grpc-tls-port", "-1", "-log-level", "warn"}
	var ca string
	if https {
		certs, err := testcerts.Write(dir)
		if err != nil {
			return nil, err
		}
		ca = certs.CA
		conf := fmt.Sprintf(`{"ports": {"https": %d}, "tls": {"defaults": {"ca_file": %q, "cert_file": %q, "key_file": %q}}}`, ports[4], ca, certs.ServerCert, certs.ServerKey)
		confPath := filepath.Join(dir, "tls.json")
		if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
			return nil, err
		}
		args = append(args, "-config-file", confPath)
	}
	cmd := exec.Command(consulBin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start consul: %w", err)
	}
	a := &agent{cmd: cmd, addr: fmt.Sprintf("127.0.0.1:%d", ports[0])}
	if https {
		a.httpsAddr, a.ca = fmt.Sprintf("127.0.0.1:%d", ports[4]), ca
	}
	a.client, err = api.NewClient(&api.Config{Address: a.addr})
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if leader, err := a.client.Status().Leader(); err == nil && leader != "" {
			return a, nil
		}
		if time.Now().After(deadline) {
			a.stop()
			return nil, errors.New("consul did not elect a leader in 30s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// startCatalog starts an agent (with an HTTPS port too if https) in a new
// temporary directory and loads services × instances into it. cleanup
// stops the agent and removes the directory.
func startCatalog(cfg config, name string, https bool) (dir string, a *agent, cleanup func(), err error) {
	if dir, err = os.MkdirTemp("", "custom-sd-"+name); err != nil {
		return "", nil, nil, err
	}
	if a, err = startAgent(cfg.consul, dir, https); err != nil {
		os.RemoveAll(dir)
		return "", nil, nil, err
	}
	cleanup = func() {
		a.stop()
		if os.Getenv("BENCH_KEEP") == "" {
			os.RemoveAll(dir)
		} else {
			fmt.Fprintln(os.Stderr, "keeping", dir)
		}
	}
	if err = a.load(cfg.services, cfg.instances); err != nil {
		cleanup()
		return "", nil, nil, err
	}
	return dir, a, cleanup, nil
}

func (a *agent) stop() {
	_ = a.cmd.Process.Signal(os.Interrupt)
	_ = a.cmd.Wait()
}

// instanceID names instance i of service s.
func instanceID(s, i int) string { return fmt.Sprintf("svc-%05d-%d", s, i) }

func serviceName(s int) string { return fmt.Sprintf("svc-%05d", s) }

// topology says how the harness spreads instances over nodes: about a
// hundred to a node, as on a real fleet, and never two instances of one
// service on the same node. (Consul's cost per write grows with the
// instances on the node written to: ten nodes holding 10,000 instances each
// make loading 10,000 × 10 take a quarter of an hour.)
//
// With labelled set (the multi-job scenario), services and nodes also carry
// what jobs select on: service s is tagged "t<s%3>", and "prod" when s is
// even; node n has the meta rack=r<n%4>.
type topology struct {
	instances, nodes int
	labelled         bool
}

// topo is set once from the flags.
var topo = topology{instances: 3, nodes: 3}

func newTopology(services, instances int) topology {
	return topology{instances: instances, nodes: max(instances, services*instances/100)}
}

// node is the node of instance i of service s. Instances past the loaded
// ones (the harness's own registrations) each get a node of their own.
func (t topology) node(s, i int) int {
	if i >= t.instances {
		return t.nodes + i - t.instances
	}
	return (s*t.instances + i) % t.nodes
}

func nodeName(n int) string { return fmt.Sprintf("node-%d", n) }

// nodeAddress is the loopback address of node n; with the service's port
// every instance has an address of its own. None is the agent's own
// (127.0.0.1): read through a server agent, Consul's node dump adds the
// agent's version to the meta of a node that shares an agent's address, in
// the server's memory and without a write (verify.go), and the churn's
// comparison with Consul would see that, not custom-sd.
func nodeAddress(n int) string { return fmt.Sprintf("127.0.%d.%d", (n+2)/250, (n+2)%250) }

// targetAddress is the scrape address of instance i of service s.
func targetAddress(s, i int) string {
	return fmt.Sprintf("%s:%d", nodeAddress(topo.node(s, i)), 10000+s)
}

// loadedService is instance i of service s as the harness registers it.
func loadedService(s, i int) api.AgentService {
	return api.AgentService{ID: instanceID(s, i), Service: serviceName(s), Port: 10000 + s, Tags: serviceTags(s)}
}

// serviceTags are the tags every instance of service s carries.
func serviceTags(s int) []string {
	if !topo.labelled {
		return []string{"bench"}
	}
	tags := []string{"bench", fmt.Sprintf("t%d", s%3)}
	if s%2 == 0 {
		tags = append(tags, "prod")
	}
	return tags
}

// tagsLabel is the __meta_consul_tags label, as it shows in the file, of an
// instance of service s carrying extra tags after its own.
func tagsLabel(s int, extra ...string) string {
	return `"__meta_consul_tags":",` + strings.Join(append(serviceTags(s), extra...), ",") + `,"`
}

// nodeMeta is the meta of node n.
func nodeMeta(n int) map[string]string {
	if !topo.labelled {
		return nil
	}
	return map[string]string{"rack": fmt.Sprintf("r%d", n%4)}
}

// registerOps writes (or rewrites) instance i of service s with the check
// in the given state, through the transaction endpoint. It puts back the
// definition loadedService gives, undoing any change made in place.
func registerOps(s, i int, status string) api.TxnOps {
	n := topo.node(s, i)
	node := nodeName(n)
	id := instanceID(s, i)
	return api.TxnOps{
		{Node: &api.NodeTxnOp{Verb: api.NodeSet, Node: api.Node{Node: node, Address: nodeAddress(n), Meta: nodeMeta(n)}}},
		{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: node, Service: loadedService(s, i)}},
		{Check: &api.CheckTxnOp{Verb: api.CheckSet, Check: api.HealthCheck{
			Node: node, CheckID: "check:" + id, Name: "check", Status: status, ServiceID: id,
		}}},
	}
}

// serviceSetOps rewrites instance i of service s in place as svc: same
// node, same ID, its check untouched.
func serviceSetOps(s, i int, svc api.AgentService) api.TxnOps {
	return api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceSet, Node: nodeName(topo.node(s, i)), Service: svc}}}
}

// txn applies ops. When the agent refuses the harness (a 429, or a closed
// connection, when another client on this host holds too many connections)
// it retries for up to a minute and counts the failed attempts.
func (a *agent) txn(ops api.TxnOps) error {
	var (
		ok   bool
		resp *api.TxnResponse
		err  error
	)
	for deadline := time.Now().Add(time.Minute); ; {
		ok, resp, _, err = a.client.Txn().Txn(ops, nil)
		// A refusal comes as a 429, or as a connection the agent closed.
		if err == nil || time.Now().After(deadline) {
			break
		}
		a.refused.Add(1)
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if !ok {
		var msgs []string
		for _, e := range resp.Errors {
			msgs = append(msgs, fmt.Sprintf("op %d: %s", e.OpIndex, e.What))
		}
		return fmt.Errorf("transaction failed: %s", strings.Join(msgs, "; "))
	}
	return nil
}

// load registers services × instances, 20 instances to a transaction,
// four transactions at a time (Raft batches concurrent applies).
func (a *agent) load(services, instances int) error {
	batches := make(chan api.TxnOps)
	errs := make(chan error, 1)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for ops := range batches {
				if err := a.txn(ops); err != nil {
					select {
					case errs <- fmt.Errorf("load: %w", err):
					default:
					}
				}
			}
		})
	}
	var ops api.TxnOps
	for s := range services {
		for i := range instances {
			ops = append(ops, registerOps(s, i, api.HealthPassing)...)
			if len(ops) >= 60 || (s == services-1 && i == instances-1) {
				batches <- ops
				ops = nil
			}
		}
	}
	close(batches)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

// proxy forwards to the agent and counts what passes.
type proxy struct {
	srv       *http.Server
	addr      string
	requests  atomic.Int64
	bytes     atomic.Int64
	limited   atomic.Int64 // 429 answers
	failed    atomic.Int64 // requests the proxy could not forward (the agent refused or cut the connection)
	conns     atomic.Int64
	peakConns atomic.Int64
	opened    atomic.Int64 // client connections accepted in all
	transport *http.Transport
}

func startProxy(target string) (*proxy, error) {
	p := &proxy{transport: &http.Transport{MaxIdleConnsPerHost: 1000, IdleConnTimeout: 90 * time.Second}}
	rp := p.reverseProxy("http://"+target, p.transport)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = l.Addr().String()
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.requests.Add(1)
			rp.ServeHTTP(w, r)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) { p.connState(s) },
	}
	go func() { _ = p.srv.Serve(l) }()
	return p, nil
}

// reverseProxy forwards to target through transport, counting 429 answers
// and response bytes.
func (p *proxy) reverseProxy(target string, transport http.RoundTripper) *httputil.ReverseProxy {
	u, _ := url.Parse(target)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ErrorLog = stdlog.New(io.Discard, "", 0) // cancelled long polls are expected
	rp.Transport = transport
	rp.ModifyResponse = func(r *http.Response) error {
		if r.StatusCode == http.StatusTooManyRequests {
			p.limited.Add(1)
		}
		r.Body = &countingBody{ReadCloser: r.Body, n: &p.bytes}
		return nil
	}
	rp.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) {
		if r.Context().Err() == nil { // not a long poll the client gave up
			p.failed.Add(1)
		}
		w.WriteHeader(http.StatusBadGateway)
	}
	return rp
}

// close stops the proxy and closes its idle connections to the agent,
// which would otherwise count against the agent's limit for this address
// in the next run.
func (p *proxy) close() {
	_ = p.srv.Close()
	if p.transport != nil {
		p.transport.CloseIdleConnections()
	}
}

// connState counts client connections.
func (p *proxy) connState(s http.ConnState) {
	switch s {
	case http.StateNew:
		p.opened.Add(1)
		n := p.conns.Add(1)
		for {
			peak := p.peakConns.Load()
			if n <= peak || p.peakConns.CompareAndSwap(peak, n) {
				break
			}
		}
	case http.StateClosed, http.StateHijacked:
		p.conns.Add(-1)
	}
}

// startTLSProxy is startProxy over HTTPS, in front of the agent's HTTPS
// port at target (signed by caFile). It serves certs' server certificate
// and speaks HTTP/2 to a client that offers it, as the agent does, with the
// agent's limit of 250 streams a connection. A proxy that pooled its own
// connections to the agent would change what is measured: it would put
// HTTP/1.1 clients' long polls on a few HTTP/2 connections, and the agent
// would never refuse them. So each client connection is forwarded over one
// connection of its own to the agent, in the protocol the client chose: the
// agent sees as many connections as without the proxy, refuses the same
// ones, and carries the same streams on each.
func startTLSProxy(target, caFile string, certs testcerts.Files) (*proxy, error) {
	pemCA, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pemCA) {
		return nil, fmt.Errorf("no certificate in %s", caFile)
	}
	cert, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	if err != nil {
		return nil, err
	}
	// Two transports, only to make connections: one that speaks HTTP/1.1
	// only, one HTTP/2 only.
	var transports [2]*http.Transport
	for i := range transports {
		var protos http.Protocols
		protos.SetHTTP1(i == 0)
		protos.SetHTTP2(i == 1)
		transports[i] = &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}, Protocols: &protos}
	}
	// Over its limit the agent answers 429 on a new HTTP/1.1 connection
	// before any request; net/http logs that through the standard logger
	// as an unsolicited response, once per refused connection. The
	// answer itself is counted (a 429, or a request that could not be
	// forwarded); the log line is noise.
	stdlog.SetOutput(io.Discard)
	p := &proxy{}
	rp := p.reverseProxy("https://"+target, roundTripperFunc(func(r *http.Request) (*http.Response, error) {
		return r.Context().Value(upstreamKey{}).(*upstream).roundTrip(r)
	}))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p.addr = l.Addr().String()
	var upstreams sync.Map // client connection → *upstream
	p.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p.requests.Add(1)
			u := r.Context().Value(upstreamKey{}).(*upstream)
			if !u.acquire(transports[min(r.ProtoMajor-1, 1)], target) {
				w.WriteHeader(http.StatusBadGateway)
				return
			}
			defer u.release()
			rp.ServeHTTP(w, r)
		}),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		HTTP2:     &http.HTTP2Config{MaxConcurrentStreams: 250},
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			u := &upstream{}
			upstreams.Store(c, u)
			return context.WithValue(ctx, upstreamKey{}, u)
		},
		ConnState: func(c net.Conn, s http.ConnState) {
			p.connState(s)
			if s == http.StateClosed || s == http.StateHijacked {
				if u, ok := upstreams.LoadAndDelete(c); ok {
					u.(*upstream).close()
				}
			}
		},
	}
	go func() { _ = p.srv.ServeTLS(l, "", "") }()
	return p, nil
}

type roundTripperFunc func(*http.Request) (*http.Response, error)

func (f roundTripperFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

type upstreamKey struct{}

// upstream is the agent side of one client connection: one connection,
// made on the first request in the protocol the client spoke (and again if
// the agent closed it), closed with the client's connection once its last
// request is done.
type upstream struct {
	mu        sync.Mutex
	transport *http.Transport
	target    string
	conn      *http.ClientConn
	inflight  int
	closed    bool
}

func (u *upstream) acquire(t *http.Transport, target string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return false
	}
	u.transport, u.target = t, target
	u.inflight++
	return true
}

// roundTrip sends r on the connection, waiting for a free stream as a
// client on one connection would.
func (u *upstream) roundTrip(r *http.Request) (*http.Response, error) {
	u.mu.Lock()
	if u.conn == nil || u.conn.Err() != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		conn, err := u.transport.NewClientConn(ctx, "https", u.target)
		cancel()
		if err != nil {
			u.mu.Unlock()
			return nil, err
		}
		u.conn = conn
	}
	conn := u.conn
	u.mu.Unlock()
	return conn.RoundTrip(r)
}

func (u *upstream) release() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.inflight--
	if u.closed && u.inflight == 0 && u.conn != nil {
		_ = u.conn.Close()
	}
}

func (u *upstream) close() {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.closed = true
	if u.inflight == 0 && u.conn != nil {
		_ = u.conn.Close()
	}
}

// listeningConns counts the established TCP connections whose local end is
// port on this host (/proc/net/tcp and tcp6): the connections a server
// listening there holds.
func listeningConns(port int) int {
	n := 0
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			fields := strings.Fields(l)
			if len(fields) < 4 || fields[3] != "01" { // ESTABLISHED
				continue
			}
			i := strings.LastIndexByte(fields[1], ':')
			if p, err := strconv.ParseInt(fields[1][i+1:], 16, 32); err == nil && int(p) == port {
				n++
			}
		}
	}
	return n
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

// daemon is a running custom-sd.
type daemon struct {
	cmd   *exec.Cmd
	start time.Time
	web   string // base URL of its HTTP side
}

func startDaemon(bin, consulAddr, out, logPath string, extra ...string) (*daemon, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	web, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--consul.server=" + consulAddr, "--output.file=" + out, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", web)}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	d := &daemon{cmd: cmd, start: time.Now(), web: fmt.Sprintf("http://127.0.0.1:%d", web)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start custom-sd: %w", err)
	}
	return d, nil
}

func (d *daemon) stop() {
	_ = d.cmd.Process.Signal(syscall.SIGTERM)
	_ = d.cmd.Wait()
}

// usage reads peak RSS (bytes) and CPU time of a running process.
func usage(pid int) (peakRSS int64, cpu time.Duration, err error) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			peakRSS = kb * 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// Fields after the command name, which is in parentheses.
	fields := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+2:]))
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return peakRSS, time.Duration(utime+stime) * time.Second / ticks, nil
}

// fileWatch reports every replacement of a file through inotify.
type fileWatch struct {
	fd     int
	name   string
	mu     sync.Mutex
	writes int
	at     time.Time // of the last replacement
	subs   []chan time.Time
}

func watchFile(path string) (*fileWatch, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	if _, err := syscall.InotifyAddWatch(fd, filepath.Dir(path), syscall.IN_MOVED_TO|syscall.IN_CLOSE_WRITE); err != nil {
		return nil, fmt.Errorf("inotify watch: %w", err)
	}
	w := &fileWatch{fd: fd, name: filepath.Base(path)}
	go w.loop()
	return w, nil
}

func (w *fileWatch) loop() {
	buf := make([]byte, 64*1024)
	for {
		n, err := syscall.Read(w.fd, buf)
		if err != nil || n <= 0 {
			return
		}
		now := time.Now()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			name := string(bytes.TrimRight(buf[off+syscall.SizeofInotifyEvent:off+syscall.SizeofInotifyEvent+int(ev.Len)], "\x00"))
			off += syscall.SizeofInotifyEvent + int(ev.Len)
			if name != w.name || ev.Mask&syscall.IN_MOVED_TO == 0 {
				continue
			}
			w.mu.Lock()
			w.writes++
			w.at = now
			for _, c := range w.subs {
				select {
				case c <- now:
				default:
				}
			}
			w.mu.Unlock()
		}
	}
}

func (w *fileWatch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.writes
}

// last returns when the file was last replaced.
func (w *fileWatch) last() time.Time {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.at
}

// subscribe returns a channel that receives the time of each replacement.
func (w *fileWatch) subscribe() chan time.Time {
	c := make(chan time.Time, 1024)
	w.mu.Lock()
	w.subs = append(w.subs, c)
	w.mu.Unlock()
	return c
}

func (w *fileWatch) unsubscribe(c chan time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, s := range w.subs {
		if s == c {
			w.subs = append(w.subs[:i], w.subs[i+1:]...)
			return
		}
	}
}

// waitFor waits until cond holds for the file's content, checking after each
// replacement, and returns when the replacement that made it hold happened.
func (w *fileWatch) waitFor(ctx context.Context, path string, cond func([]byte) bool) (time.Time, error) {
	c := w.subscribe()
	defer w.unsubscribe(c)
	if b, err := os.ReadFile(path); err == nil && cond(b) {
		return time.Now(), nil
	}
	for {
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case at := <-c:
			// Judge only the latest replacement: at 100,000 targets reading
			// and checking the file takes longer than custom-sd takes to
			// write it again.
			for drained := false; !drained; {
				select {
				case at = <-c:
				default:
					drained = true
				}
			}
			b, err := os.ReadFile(path)
			if err == nil && cond(b) {
				return at, nil
			}
		}
	}
}

// healthByID reads every instance's health from the file in one pass.
func healthByID(b []byte) map[string]string {
	const idKey, healthKey = `"__meta_consul_service_id":"`, `"__meta_consul_health":"`
	out := map[string]string{}
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		id, health := field(line, idKey), field(line, healthKey)
		if id != "" {
			out[id] = health
		}
	}
	return out
}

// field returns the string value after key in line, or "".
func field(line []byte, key string) string {
	i := bytes.Index(line, []byte(key))
	if i < 0 {
		return ""
	}
	v := line[i+len(key):]
	if j := bytes.IndexByte(v, '"'); j >= 0 {
		return string(v[:j])
	}
	return ""
}

// entryLine returns the file's line for a service instance, or nil.
func entryLine(b []byte, id string) []byte {
	i := bytes.Index(b, []byte(`"__meta_consul_service_id":"`+id+`"`))
	if i < 0 {
		return nil
	}
	start := bytes.LastIndexByte(b[:i], '\n') + 1
	end := bytes.IndexByte(b[i:], '\n')
	if end < 0 {
		return b[start:]
	}
	return b[start : i+end]
}
