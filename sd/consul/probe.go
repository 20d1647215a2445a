package consul

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"syscall"
	"time"
)

// A refusal reaches only a client that opens a connection: a process that
// holds its whole budget in long polls never opens one, so it would never
// hear that the agent refuses its neighbours. So the watch probes now and
// then: it opens one connection more, which says nothing and is closed
// again. The agent refuses a connection past its per-client limit the
// moment it accepts it (Consul's connection limiter answers 429 before any
// request is read), so a probe that stays open for probeWait was accepted.
// A refused probe counts as any other 429: the budget shrinks. The probe
// uses one of the connections headroom keeps free, and sends no request.
const (
	probeEvery = time.Minute
	probeWait  = 500 * time.Millisecond
)

// errNoTarget: no request has named the agent's address yet.
var errNoTarget = errors.New("no request sent yet")

// probe opens a connection to the agent as the requests do (over TLS when
// they use it, with the server name they would send), waits up to
// probeWait for the agent to refuse it, and closes it. It reports whether
// the agent refused it: it answered 429, or closed or reset the connection
// (which is how a refused TLS connection ends when its handshake cannot
// finish in time). An error means the probe could not tell: the agent is
// unreachable, its certificate is not trusted, the watch is stopping.
func (t *transport) probe(ctx context.Context) (refused bool, err error) {
	target := t.target.Load()
	if target == nil {
		return false, errNoTarget
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := t.dial(ctx, "tcp", hostPort(target))
	if err != nil {
		return false, fmt.Errorf("probe %s: %w", target.Host, err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(probeWait)); err != nil {
		return false, fmt.Errorf("probe %s: %w", target.Host, err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if target.Scheme == "https" {
		conf := t.tlsConfig.Clone()
		conf.NextProtos = nil // nothing follows the handshake
		if conf.ServerName == "" {
			conf.ServerName = target.Hostname() // as http.Transport sends it
		}
		tc := tls.Client(conn, conf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return refusal(ctx, target, err)
		}
		conn = tc
	}
	buf := make([]byte, len(tooManyRequests))
	n, err := io.ReadFull(conn, buf)
	if bytes.Equal(buf[:n], tooManyRequests) {
		return true, nil
	}
	return refusal(ctx, target, err)
}

// tooManyRequests is how the agent's answer to a refused connection starts.
var tooManyRequests = []byte("HTTP/1.1 429")

// refusal tells from how the probe's connection ended whether the agent
// refused it: a connection still open at probeWait (or one that said
// something other than 429) was accepted; one the agent closed or reset
// first, or ended with a TLS alert, was refused. Any other error (a
// certificate not trusted, the watch stopping) says nothing about the
// agent's limit.
func refusal(ctx context.Context, target *url.URL, err error) (refused bool, _ error) {
	var op *net.OpError
	switch {
	case err == nil, errors.Is(err, os.ErrDeadlineExceeded):
		return false, nil
	case ctx.Err() != nil:
		return false, fmt.Errorf("probe %s: %w", target.Host, ctx.Err())
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.As(err, &op) && op.Op == "remote error":
		return true, nil
	default:
		return false, fmt.Errorf("probe %s: %w", target.Host, err)
	}
}

// hostPort returns the host:port a request URL connects to.
func hostPort(u *url.URL) string {
	if u.Port() != "" {
		return u.Host
	}
	if u.Scheme == "https" {
		return net.JoinHostPort(u.Hostname(), "443")
	}
	return net.JoinHostPort(u.Hostname(), "80")
}

// noteTarget keeps where a request goes, for the probe. A request sent
// through a proxy does not reach the agent from this host, so the probe
// would measure nothing: it gets no target; nor does a transport whose
// requests do not go over the network (tests' fakes).
func (t *transport) noteTarget(req *http.Request) {
	if t.target.Load() != nil {
		return
	}
	if _, ok := t.base.(*http.Transport); !ok {
		return
	}
	if p, err := http.ProxyFromEnvironment(req); err != nil || p != nil {
		return
	}
	u := &url.URL{Scheme: req.URL.Scheme, Host: req.URL.Host}
	t.target.CompareAndSwap(nil, u)
}
