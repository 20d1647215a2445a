package web

import (
	"net"
	"sync"
)

// DefaultMaxConnections is how many connections LimitListeners lets in at a
// time unless told otherwise, as Prometheus's --web.max-connections.
const DefaultMaxConnections = 512

// LimitListeners returns the listeners wrapped so that together they serve
// at most n connections at a time. Beyond that, each listener accepts one
// more connection and holds it until a served one closes; the rest wait in
// the kernel's accept queue and hold nothing of ours. At most n plus one
// per listener file descriptors, and n goroutines serving connections.
//
// A slot is taken once a connection is accepted, not before: a listener
// that waits for its next connection holds no slot the others could use.
func LimitListeners(listeners []net.Listener, n int) []net.Listener {
	slots := make(chan struct{}, n)
	out := make([]net.Listener, len(listeners))
	for i, l := range listeners {
		out[i] = &limitListener{Listener: l, slots: slots, closed: make(chan struct{})}
	}
	return out
}

// limitListener takes a slot for each connection it accepts, and the
// connection gives it back when it closes.
type limitListener struct {
	net.Listener
	slots     chan struct{} // shared by the listeners of one LimitListeners
	closed    chan struct{}
	closeOnce sync.Once
}

// Accept waits for a connection, then for a free slot.
func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	select {
	case l.slots <- struct{}{}:
		return &limitConn{Conn: c, slots: l.slots}, nil
	case <-l.closed:
		_ = c.Close()
		return nil, net.ErrClosed
	}
}

// Close closes the listener and ends a pending Accept, the connection it
// holds closed.
func (l *limitListener) Close() error {
	err := l.Listener.Close()
	l.closeOnce.Do(func() { close(l.closed) })
	return err
}

// limitConn gives its slot back on its first Close.
type limitConn struct {
	net.Conn
	slots     chan struct{}
	closeOnce sync.Once
}

// Close closes the connection and frees its slot.
func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() { <-c.slots })
	return err
}
