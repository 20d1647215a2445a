package consul

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hashicorp/consul/api"
)

// streamsPerConn is how many long polls the scheduler places on one HTTP/2
// connection. Consul's HTTPS server allows 250 concurrent streams per
// connection (Go's default); the 50 left free on each connection carry the
// requests the scheduler does not count. With the default budget of 64
// connections that is 12,000 long polls: every service of a 10,000-service
// catalog gets one.
const streamsPerConn = 200

// headroom is how many connections of the budget are kept free. Aborting
// an HTTP/1.1 long poll closes its connection at once on our side, but the
// agent counts it until it notices; a new connection opened meanwhile would
// briefly exceed the budget as the agent counts it.
func headroom(budget int) int { return max(1, budget/16) }

// transport is the HTTP transport for all Consul requests. It holds at most
// maxConns connections to the agent, speaks HTTP/2 over TLS when the agent
// offers it, and notes whether it does.
type transport struct {
	base     http.RoundTripper // an *http.Transport, except in tests
	http2    atomic.Bool
	requests atomic.Uint64 // requests sent
	limited  atomic.Uint64 // 429 answers
	conns    atomic.Int64  // connections open now
	maxConns atomic.Int64  // most connections open at once
	metrics  *metrics      // nil until the Watch sets it
	token    atomic.Pointer[string]
	// username and password, when username is set, authenticate every
	// request; password is read again whenever its file changes.
	username string
	password func() (string, error)
	// forgetTLS makes the next connection read the TLS files.
	forgetTLS func()

	// A 429 rings refusals (1-buffered) and notes how many connections were
	// open, the refused one included; the watcher takes both.
	refusals    chan struct{}
	refusedOpen atomic.Int64

	// For the probe (probe.go): how connections are opened, their TLS
	// configuration, and where requests go (nil until the first one).
	dial      func(ctx context.Context, network, addr string) (net.Conn, error)
	tlsConfig *tls.Config
	target    atomic.Pointer[url.URL]
}

// newTransport returns the transport for the agent at addr. Over loopback
// it asks for no compression: gzip only costs the agent and us CPU there,
// and at start-up the agent's CPU is what the first complete file waits
// for. The TLS files are read again when they change (tlsfiles.go); failed
// hears of a changed file that does not load.
func newTransport(maxConns int, addr string, tlsConf *api.TLSConfig, failed func(error)) (*transport, error) {
	tlsClientConfig, forgetTLS, err := liveTLSConfig(tlsConf, hostOf(addr), failed)
	if err != nil {
		return nil, fmt.Errorf("set up TLS: %w", err)
	}
	t := &transport{refusals: make(chan struct{}, 1), forgetTLS: forgetTLS}
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	t.dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		storeMax(&t.maxConns, t.conns.Add(1))
		return &countedConn{Conn: c, open: &t.conns}, nil
	}
	t.tlsConfig = tlsClientConfig
	t.base = &http.Transport{
		Proxy:               http.ProxyFromEnvironment,
		DialContext:         t.dial,
		TLSClientConfig:     tlsClientConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		// Over HTTP/1.1 every long poll holds a connection; this is the hard
		// cap behind the scheduler's budget.
		MaxConnsPerHost:     maxConns,
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     90 * time.Second,
		// Setting TLSClientConfig turns HTTP/2 off unless asked for.
		ForceAttemptHTTP2:  true,
		DisableCompression: isLoopback(addr),
	}
	return t, nil
}

// countedConn decrements a count of open connections when closed.
type countedConn struct {
	net.Conn
	open   *atomic.Int64
	closed atomic.Bool
}

func (c *countedConn) Close() error {
	if !c.closed.Swap(true) {
		c.open.Add(-1)
	}
	return c.Conn.Close()
}

// closeIdle closes the connections that carry no request.
func (t *transport) closeIdle() {
	if ht, ok := t.base.(*http.Transport); ok {
		ht.CloseIdleConnections()
	}
}

// RoundTrip implements http.RoundTripper. It adds the current ACL token
// and password.
func (t *transport) RoundTrip(req *http.Request) (*http.Response, error) {
	tok := t.token.Load()
	raw, escaped := escapedServicePath(req.URL.Path)
	if tok != nil && *tok != "" || t.username != "" || escaped {
		req = req.Clone(req.Context())
	}
	if escaped {
		req.URL.RawPath = raw
	}
	if tok != nil && *tok != "" {
		req.Header.Set("X-Consul-Token", *tok)
	}
	if t.username != "" {
		password, err := t.password()
		if err != nil {
			return nil, err
		}
		req.SetBasicAuth(t.username, password)
	}
	t.noteTarget(req)
	t.requests.Add(1)
	start := time.Now()
	resp, err := t.base.RoundTrip(req)
	if t.metrics != nil {
		t.metrics.observe(req, start, resp, err)
	}
	if err != nil {
		return nil, err
	}
	if resp.ProtoMajor == 2 {
		t.http2.Store(true)
	}
	if read := bodyReaderOf(req.Context()); read != nil && resp.StatusCode == http.StatusOK {
		return streamed(resp, read)
	}
	if resp.StatusCode == http.StatusTooManyRequests {
		t.refused(t.conns.Load())
	}
	return resp, err
}

// refused notes a 429: the agent refused a connection while open
// connections were open, the refused one among them.
func (t *transport) refused(open int64) {
	t.limited.Add(1)
	storeMax(&t.refusedOpen, open)
	select {
	case t.refusals <- struct{}{}:
	default:
	}
}

// servicePath is the path of a service's instances; the rest of the path
// is the service's name.
const servicePath = "/v1/health/service/"

// escapedServicePath returns the path of a service's instances with the
// name escaped as one path segment ("a/b" as a%2Fb), and whether path is
// one. The client library escapes a name as a path, so that Consul's
// router would clean "a//b" or "../x" into another path (and answer with a
// redirect, or another service's instances); escaped, Consul serves every
// name but those it refuses itself (control characters, "." and "..").
func escapedServicePath(path string) (string, bool) {
	i := strings.Index(path, servicePath)
	if i < 0 {
		return "", false
	}
	name := path[i+len(servicePath):]
	raw := path[:i+len(servicePath)] + url.PathEscape(name)
	return raw, raw != path
}

// hostOf returns the host of an agent address (host:port, or a URL).
func hostOf(addr string) string {
	if strings.Contains(addr, "://") {
		if u, err := url.Parse(addr); err == nil {
			return u.Hostname()
		}
	} else if h, _, err := net.SplitHostPort(addr); err == nil {
		return h
	}
	return addr
}

// bodyReaderKey marks a request whose answer is read as it streams in.
type bodyReaderKey struct{}

// withBodyReader returns a context for a request whose successful answer
// read takes as it streams in, so that a catalog-sized answer is never held
// whole; the client then decodes an empty JSON list. An error from read
// fails the request.
func withBodyReader(ctx context.Context, read func(io.Reader) error) context.Context {
	return context.WithValue(ctx, bodyReaderKey{}, read)
}

func bodyReaderOf(ctx context.Context) func(io.Reader) error {
	read, _ := ctx.Value(bodyReaderKey{}).(func(io.Reader) error)
	return read
}

// streamed hands resp's body to read and replaces it with an empty list.
func streamed(resp *http.Response, read func(io.Reader) error) (*http.Response, error) {
	err := read(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return nil, err
	}
	resp.Body = io.NopCloser(strings.NewReader("[]"))
	resp.ContentLength = 2
	return resp, nil
}

// isLoopback reports whether an agent address (host:port, or a URL) names
// this host.
func isLoopback(addr string) bool {
	host := hostOf(addr)
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// newClient returns a Consul client that sends every request through t.
// Address may carry a scheme ("https://host:8501"); a path after the host is
// kept as a prefix for a Consul behind a reverse proxy.
func newClient(conf api.Config, t *transport) (*api.Client, error) {
	conf.Transport = nil
	// A redirect is refused: Consul redirects only a path Go's router
	// cleans (a service named "a//b" or "/x"), to another service's path,
	// whose answer would be taken for this one's.
	conf.HttpClient = &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if strings.HasPrefix(conf.Address, "unix://") {
		return nil, fmt.Errorf("unix socket addresses are not supported: %s", conf.Address)
	}
	c, err := api.NewClient(&conf)
	if err != nil {
		return nil, fmt.Errorf("create Consul client: %w", err)
	}
	return c, nil
}

// maxSecret is the longest token or password file read.
const maxSecret = 64 << 10

// ReadSecretFile reads a token or password from a file, without the
// surrounding whitespace. An error names the file, never its content; an
// empty file is an error, and so is a file that is not a regular one (a
// named pipe would block the read, a device might never end it) or that is
// larger than 64 KiB.
func ReadSecretFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !fi.Mode().IsRegular() {
		return "", fmt.Errorf("%s is not a regular file", path)
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecret+1))
	switch {
	case err != nil:
		return "", fmt.Errorf("read %s: %w", path, err)
	case len(b) > maxSecret:
		return "", fmt.Errorf("%s is larger than %d bytes: not a token or password", path, maxSecret)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return s, nil
}

// readToken reads the ACL token file.
func readToken(path string) (string, error) {
	tok, err := ReadSecretFile(path)
	if err != nil {
		return "", fmt.Errorf("read token file: %w", err)
	}
	return tok, nil
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for {
		cur := m.Load()
		if v <= cur || m.CompareAndSwap(cur, v) {
			return
		}
	}
}
