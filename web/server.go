package web

import (
	"net/http"
	"time"
)

// The bounds on how long one client holds a connection, and with it a
// goroutine, a file descriptor and one of the slots LimitListeners allows.
const (
	// ReadTimeout is how long a client has to send a whole request,
	// headers and body, from connecting (TLS handshake included) or from
	// the first bytes of its next request on a kept-alive connection.
	// Requests here are a line and a few headers: 10 s is ample on any link.
	ReadTimeout = 10 * time.Second
	// WriteTimeout is how long an answer has to go out, from the end of
	// its request: any answer but a large /targets is at most a few hundred
	// KB, 30 s at 10 KB/s. /targets adds its size at SlowLink; the pprof
	// profile and trace add their seconds.
	WriteTimeout = 30 * time.Second
	// IdleTimeout is how long a kept-alive connection may wait for its next
	// request: a Prometheus that reads /targets or scrapes /metrics every
	// minute keeps its connection from one request to the next.
	IdleTimeout = 2 * time.Minute
	// SlowLink is the bandwidth, in bytes per second, /targets is given
	// time for on top of WriteTimeout: 1 MB/s, a congested or long-haul
	// link of 8 Mbit/s. At 100,000 targets the answer is about 35 MB: 35 s
	// at SlowLink, 65 s in all.
	SlowLink = 1_000_000
)

// NewServer returns an HTTP server for h with ReadTimeout, WriteTimeout
// and IdleTimeout.
func NewServer(h http.Handler) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
	}
}

// allowWrite gives an answer of size bytes the time it takes at SlowLink on
// top of the server's WriteTimeout, as pprof gives a profile its seconds.
func allowWrite(w http.ResponseWriter, r *http.Request, size int) {
	srv, ok := r.Context().Value(http.ServerContextKey).(*http.Server)
	if !ok || srv.WriteTimeout <= 0 {
		return
	}
	// The server's writers support deadlines; a writer that does not
	// (a test's recorder) has none to extend.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(writeAllowance(srv.WriteTimeout, size)))
}

// writeAllowance is the time an answer of size bytes has to go out: base,
// plus size at SlowLink.
func writeAllowance(base time.Duration, size int) time.Duration {
	return base + time.Duration(size)*time.Second/SlowLink
}
