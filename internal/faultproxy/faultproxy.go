// Package faultproxy is an HTTP proxy for tests that sits in front of a real
// Consul agent and injects the faults a real agent cannot produce on demand:
// error statuses, hangs, reset connections, truncated or malformed bodies
// and delays, per path prefix. It counts the requests it sees.
//
// The proxy listens on a port of its own, so a test can start the client
// before the agent, or replace the agent, and point the proxy at the new
// one with SetTarget. While it has no target, or its target does not
// answer, it closes each connection without an answer, as an agent that
// is down would look.
package faultproxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Fault is what the proxy does to a matching request.
type Fault int

// Faults.
const (
	Pass      Fault = iota // forward unchanged
	Status500              // answer 500 without asking Consul
	Status429              // answer 429, as an agent over its limits does
	Hang                   // hold the request until the client gives up
	Reset                  // close the connection without an answer
	Truncate               // forward, then cut the body in half
	Malformed              // forward the headers, replace the body with broken JSON
	Slow                   // forward after Delay
)

var names = map[Fault]string{Pass: "pass", Status500: "500", Status429: "429", Hang: "hang", Reset: "reset", Truncate: "truncated body", Malformed: "malformed JSON", Slow: "slow"}

func (f Fault) String() string { return names[f] }

// Proxy is a running fault-injecting proxy.
type Proxy struct {
	URL   string // http://127.0.0.1:port
	Addr  string // 127.0.0.1:port
	Delay time.Duration

	rp     *httputil.ReverseProxy
	mu     sync.Mutex
	target *url.URL         // nil: no agent yet
	faults map[string]Fault // path prefix -> fault
	counts map[string]int   // path -> requests
	hung   chan struct{}
}

// Start starts a proxy to the agent at addr (host:port), or to no agent
// yet if addr is "", and stops it when the test ends.
func Start(t testing.TB, addr string) *Proxy {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	p := &Proxy{faults: map[string]Fault{}, counts: map[string]int{}, hung: make(chan struct{}), Delay: 2 * time.Second}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			p.mu.Lock()
			target := p.target
			p.mu.Unlock()
			if target == nil { // cleared since ServeHTTP looked: the transport fails
				r.Out.URL.Host = ""
				return
			}
			r.SetURL(target)
			r.Out.Host = r.In.Host
		},
		Transport:     transport,
		FlushInterval: -1,
		ErrorHandler:  func(w http.ResponseWriter, _ *http.Request, _ error) { reset(w) },
	}
	if addr != "" {
		require.NoError(t, p.SetTarget(addr))
	}
	srv := httptest.NewServer(p)
	p.URL, p.Addr = srv.URL, strings.TrimPrefix(srv.URL, "http://")
	t.Cleanup(func() {
		close(p.hung)
		srv.CloseClientConnections()
		srv.Close()
		transport.CloseIdleConnections()
	})
	return p
}

// SetTarget points the proxy at the agent at addr (host:port), or at no
// agent if addr is ""; requests from then on go there.
func (p *Proxy) SetTarget(addr string) error {
	var target *url.URL
	if addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("faultproxy: target %q: %w", addr, err)
		}
		target = &url.URL{Scheme: "http", Host: addr}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.target = target
	return nil
}

func (p *Proxy) hasTarget() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.target != nil
}

// Set makes requests whose path starts with prefix meet fault; Pass clears
// it.
func (p *Proxy) Set(prefix string, f Fault) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f == Pass {
		delete(p.faults, prefix)
		return
	}
	p.faults[prefix] = f
}

// Count returns how many requests with a path starting with prefix the
// proxy has seen.
func (p *Proxy) Count(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for path, c := range p.counts {
		if strings.HasPrefix(path, prefix) {
			n += c
		}
	}
	return n
}

func (p *Proxy) fault(path string) Fault {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.counts[path]++
	best, f := "", Pass
	for prefix, pf := range p.faults {
		if strings.HasPrefix(path, prefix) && len(prefix) > len(best) {
			best, f = prefix, pf
		}
	}
	return f
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f := p.fault(r.URL.Path)
	if !p.hasTarget() {
		reset(w)
		return
	}
	switch f {
	case Status500:
		http.Error(w, "injected fault", http.StatusInternalServerError)
	case Status429:
		http.Error(w, "Your IP is issuing too many concurrent connections, please rate limit your calls", http.StatusTooManyRequests)
	case Hang:
		select {
		case <-r.Context().Done():
		case <-p.hung:
		}
	case Reset:
		reset(w)
	case Truncate, Malformed:
		p.mangle(w, r, f)
	case Slow:
		select {
		case <-time.After(p.Delay):
		case <-r.Context().Done():
			return
		case <-p.hung:
			return
		}
		p.rp.ServeHTTP(w, r)
	default:
		p.rp.ServeHTTP(w, r)
	}
}

// mangle forwards r and sends back Consul's headers with a broken body:
// half of it, or JSON that does not parse.
func (p *Proxy) mangle(w http.ResponseWriter, r *http.Request, f Fault) {
	rec := httptest.NewRecorder()
	p.rp.ServeHTTP(rec, r)
	body, _ := io.ReadAll(rec.Result().Body)
	for k, vs := range rec.Header() {
		if k == "Content-Length" {
			continue
		}
		w.Header()[k] = vs
	}
	if f == Malformed {
		body = []byte(`[{"Node": {"Node": "n1", "Address": 12}, "Service": nul}]`)
	} else {
		body = body[:len(body)/2]
	}
	w.WriteHeader(rec.Code)
	_, _ = w.Write(body)
}

// reset closes the connection without an answer, or answers 502 where the
// connection cannot be taken over.
func reset(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if c, _, err := hj.Hijack(); err == nil {
			_ = c.Close()
			return
		}
	}
	http.Error(w, "no agent", http.StatusBadGateway)
}
