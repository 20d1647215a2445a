package consul

import (
	"context"
	"net"
	"net/url"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"
)

// TestProbe walks the probe through the ways an agent can take a new
// connection: refuse it with a 429 as Consul's limiter does, close it at
// once, or accept it and wait for a request.
func TestProbe(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		serve   func(net.Conn) // takes each accepted connection
		refused bool
	}{
		{"answers 429 and closes", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 429 Too Many Requests\r\nContent-Type: text/plain\r\n\r\n"))
			_ = c.Close()
		}, true},
		{"closes at once", func(c net.Conn) { _ = c.Close() }, true},
		{"accepts and waits for a request", func(c net.Conn) {
			_, _ = c.Read(make([]byte, 1)) // until the probe closes it
			_ = c.Close()
		}, false},
		{"answers something else", func(c net.Conn) {
			_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\n\r\n"))
			_, _ = c.Read(make([]byte, 1))
			_ = c.Close()
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			done := make(chan struct{})
			go func() {
				defer close(done)
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					tt.serve(c)
				}
			}()
			t.Cleanup(func() { _ = ln.Close(); <-done })

			tr, err := newTransport(4, ln.Addr().String(), &api.TLSConfig{}, nil)
			require.NoError(t, err)
			tr.target.Store(&url.URL{Scheme: "http", Host: ln.Addr().String()})
			refused, err := tr.probe(context.Background())
			require.NoError(t, err)
			require.Equal(t, tt.refused, refused)
			require.Zero(t, tr.conns.Load(), "the probe's connection is closed")
		})
	}
}

func TestProbeWithoutATarget(t *testing.T) {
	t.Parallel()
	tr, err := newTransport(4, "127.0.0.1:8500", &api.TLSConfig{}, nil)
	require.NoError(t, err)
	_, err = tr.probe(context.Background())
	require.ErrorIs(t, err, errNoTarget)
}
