package web

import (
	"net"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/stretchr/testify/require"
)

// chanListener hands out the connections sent on conns.
type chanListener struct {
	conns  chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener() *chanListener {
	return &chanListener{conns: make(chan net.Conn, 100), closed: make(chan struct{})}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)} }

func TestLimitListeners(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		max       int
		offered   []int // connections waiting on each listener
		close     int   // accepted connections closed once Accept waits
		twice     bool  // each of them closed twice
		held      int   // connections accepted before any closes
		heldAfter int   // connections accepted after
	}{
		{name: "one listener stops at the cap", max: 2, offered: []int{3}, held: 2},
		{name: "a closed connection lets one more in", max: 2, offered: []int{4}, close: 1, held: 2, heldAfter: 3},
		{name: "the cap is shared by every listener", max: 3, offered: []int{2, 2, 2}, held: 3},
		{name: "a slot freed on one listener serves another", max: 3, offered: []int{3, 0, 2}, close: 2, held: 3, heldAfter: 5},
		{name: "closing a connection twice frees one slot", max: 2, offered: []int{4}, close: 1, twice: true, held: 2, heldAfter: 3},
		{name: "below the cap every connection is in", max: 10, offered: []int{2, 3}, held: 5},
		{name: "a listener without connections holds no slot", max: 2, offered: []int{0, 3}, held: 2},
		{name: "a cap below the listeners starves none", max: 1, offered: []int{1, 1}, close: 1, held: 1, heldAfter: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				var raw []net.Listener
				var peers []net.Conn
				for _, n := range tc.offered {
					l := newChanListener()
					for range n {
						server, client := net.Pipe()
						l.conns <- server
						peers = append(peers, client)
					}
					raw = append(raw, l)
				}
				limited := LimitListeners(raw, tc.max)
				accepted := make(chan net.Conn, 100)
				errs := make(chan error, len(limited))
				for _, l := range limited {
					go func() {
						for {
							c, err := l.Accept()
							if err != nil {
								errs <- err
								return
							}
							accepted <- c
						}
					}()
				}

				synctest.Wait() // every Accept waits: for a slot or a connection
				require.Len(t, accepted, tc.held)
				var open []net.Conn
				for range tc.held {
					open = append(open, <-accepted)
				}
				for _, c := range open[:tc.close] {
					require.NoError(t, c.Close())
					if tc.twice {
						_ = c.Close()
					}
				}
				if tc.close > 0 {
					synctest.Wait()
					require.Len(t, accepted, tc.heldAfter-tc.held)
				}

				// Closing the listeners ends every Accept, waiting for a slot
				// or not.
				for _, l := range limited {
					require.NoError(t, l.Close())
				}
				for range limited {
					require.ErrorIs(t, <-errs, net.ErrClosed)
				}
				close(accepted)
				for c := range accepted {
					open = append(open, c)
				}
				for _, c := range append(open, peers...) {
					_ = c.Close()
				}
			})
		})
	}
}
