package consul

import (
	"context"
	"crypto/tls"
	"net"
	"net/url"
	"os"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testcerts"
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
			addr := serveProbes(t, tt.serve)
			tr, err := newTransport(4, addr, &api.TLSConfig{}, nil)
			require.NoError(t, err)
			tr.target.Store(&url.URL{Scheme: "http", Host: addr})
			refused, err := tr.probe(context.Background())
			require.NoError(t, err)
			require.Equal(t, tt.refused, refused)
			require.Zero(t, tr.conns.Load(), "the probe's connection is closed")
		})
	}
}

// TestProbeOverTLS: over HTTPS the probe shakes hands as the requests do,
// with the server name they send when none is configured; a connection
// closed before the handshake is refused, and a certificate that is not
// trusted says nothing about the agent's limit.
func TestProbeOverTLS(t *testing.T) {
	t.Parallel()
	certs, err := testcerts.Write(t.TempDir())
	require.NoError(t, err)
	pair, err := tls.LoadX509KeyPair(certs.ServerCert, certs.ServerKey)
	require.NoError(t, err)
	caPEM, err := os.ReadFile(certs.CA)
	require.NoError(t, err)
	serverConf := &tls.Config{Certificates: []tls.Certificate{pair}}
	accept := func(c net.Conn) {
		tc := tls.Server(c, serverConf)
		if tc.Handshake() == nil {
			_, _ = tc.Read(make([]byte, 1)) // until the probe closes it
		}
		_ = tc.Close()
	}
	tests := []struct {
		name    string
		serve   func(net.Conn)
		conf    *api.TLSConfig
		refused bool
		err     bool
	}{
		{"accepts; trusted CA, no server name", accept, &api.TLSConfig{CAPem: caPEM}, false, false},
		{"accepts; CA file", accept, &api.TLSConfig{CAFile: certs.CA}, false, false},
		{"closes before the handshake", func(c net.Conn) { _ = c.Close() }, &api.TLSConfig{CAPem: caPEM}, true, false},
		{"certificate not trusted", accept, &api.TLSConfig{}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			addr := serveProbes(t, tt.serve)
			tr, err := newTransport(4, addr, tt.conf, nil)
			require.NoError(t, err)
			tr.target.Store(&url.URL{Scheme: "https", Host: addr})
			refused, err := tr.probe(context.Background())
			if tt.err {
				require.Error(t, err)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.refused, refused)
			require.Zero(t, tr.conns.Load(), "the probe's connection is closed")
		})
	}
}

// serveProbes listens on loopback and hands each connection to serve, one
// at a time, until the test ends; it returns the address.
func serveProbes(t *testing.T, serve func(net.Conn)) string {
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
			serve(c)
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return ln.Addr().String()
}

func TestProbeWithoutATarget(t *testing.T) {
	t.Parallel()
	tr, err := newTransport(4, "127.0.0.1:8500", &api.TLSConfig{}, nil)
	require.NoError(t, err)
	_, err = tr.probe(context.Background())
	require.ErrorIs(t, err, errNoTarget)
}
