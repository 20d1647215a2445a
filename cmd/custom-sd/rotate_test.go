package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testcerts"
	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// replaceFile replaces path with content atomically, as a rotation does.
func replaceFile(t *testing.T, path string, content []byte) {
	t.Helper()
	tmp := path + ".new"
	require.NoError(t, os.WriteFile(tmp, content, 0o600))
	require.NoError(t, os.Rename(tmp, path))
}

// copyFile copies src over dst atomically.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err)
	replaceFile(t, dst, b)
}

// TestPasswordFileRotation: behind a basic-auth proxy, a new password
// written to the password file is used from the next request on, with or
// without a reload; it never shows in the log.
func TestPasswordFileRotation(t *testing.T) {
	t.Parallel()
	for _, reload := range []bool{false, true} {
		name := map[bool]string{false: "read when it changes", true: "and on SIGHUP"}[reload]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := testconsul.Start(t)
			srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
			target, err := url.Parse("http://" + srv.HTTPAddr)
			require.NoError(t, err)
			rp := httputil.NewSingleHostReverseProxy(target)
			var password atomic.Value
			password.Store("first-pa55word")
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				user, pass, ok := r.BasicAuth()
				if !ok || user != "prom" || pass != password.Load().(string) {
					http.Error(w, "unauthorized", http.StatusUnauthorized)
					return
				}
				rp.ServeHTTP(w, r)
			}))
			t.Cleanup(proxy.Close)

			dir := t.TempDir()
			passFile := filepath.Join(dir, "password")
			replaceFile(t, passFile, []byte("first-pa55word\n"))
			out := filepath.Join(dir, "custom_sd.json")
			cfg := filepath.Join(dir, "custom-sd.yml")
			require.NoError(t, os.WriteFile(cfg, []byte("consul: {server: '"+proxy.URL+"', username: prom, password_file: password}\njobs: [{name: sd, output: {file: custom_sd.json}}]\n"), 0o600))
			d := startDaemon(t, "--config.file="+cfg)
			testconsul.Eventually(t, hasTarget(out, "web-1"))

			password.Store("second-pa55word")
			replaceFile(t, passFile, []byte("second-pa55word\n"))
			if reload {
				require.NoError(t, d.cmd.Process.Signal(syscall.SIGHUP))
				d.waitLog(t, 1, "Completed loading of configuration")
			}
			srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
			testconsul.Eventually(t, hasTarget(out, "api-1"), "a change after the rotation reaches the file")
			require.Equal(t, 0, d.terminate(t))
			require.NotContains(t, d.stderr.String(), "pa55word")
		})
	}
}

// TestTLSRotationToANewCA: the agent moves to certificates of a new CA and
// asks for client certificates of that CA; custom-sd's CA file,
// certificate and key are replaced by the new CA's. The next connections
// verify the agent against the new CA and present the new certificate,
// without a restart.
func TestTLSRotationToANewCA(t *testing.T) {
	t.Parallel()
	first, err := testcerts.Write(t.TempDir())
	require.NoError(t, err)
	second, err := testcerts.Write(t.TempDir())
	require.NoError(t, err)
	// The agent's files and custom-sd's, each in a directory of its own.
	agentDir, sdDir := t.TempDir(), t.TempDir()
	agent := testcerts.Files{CA: filepath.Join(agentDir, "ca.pem"), ServerCert: filepath.Join(agentDir, "server.pem"), ServerKey: filepath.Join(agentDir, "server-key.pem")}
	sd := testcerts.Files{CA: filepath.Join(sdDir, "ca.pem"), ClientCert: filepath.Join(sdDir, "client.pem"), ClientKey: filepath.Join(sdDir, "client-key.pem")}
	install := func(from testcerts.Files) {
		copyFile(t, from.CA, agent.CA)
		copyFile(t, from.ServerCert, agent.ServerCert)
		copyFile(t, from.ServerKey, agent.ServerKey)
	}
	installClient := func(from testcerts.Files) {
		copyFile(t, from.CA, sd.CA)
		copyFile(t, from.ClientCert, sd.ClientCert)
		copyFile(t, from.ClientKey, sd.ClientKey)
	}
	install(first)
	installClient(first)
	srv := testconsul.Start(t, testconsul.WithHTTPS(agent), testconsul.WithVerifiedClients())
	srv.Register(t, testconsul.Instance{Service: "web", ID: "web-1", Port: 8080})
	relay := startRelay(t, srv.HTTPSAddr)

	out := filepath.Join(t.TempDir(), "custom_sd.json")
	d := startDaemon(t, "--consul.server=https://"+relay.addr, "--output.file="+out,
		"--consul.tls.ca-file="+sd.CA, "--consul.tls.cert-file="+sd.ClientCert, "--consul.tls.key-file="+sd.ClientKey)
	testconsul.Eventually(t, hasTarget(out, "web-1"))

	install(second)
	require.NoError(t, srv.Client.Agent().Reload()) // the agent reads its TLS files again
	testconsul.Eventually(t, func() bool { return handshakes(relay.addr, second) && !handshakes(relay.addr, first) }, "the agent serves the new CA's certificate")
	installClient(second)
	relay.drop() // connections made before the rotation end, as when an agent restarts
	srv.Register(t, testconsul.Instance{Service: "api", ID: "api-1", Port: 9000})
	testconsul.Eventually(t, hasTarget(out, "api-1"), "custom-sd reconnects with the new CA and certificate")
	require.Equal(t, 0, d.terminate(t))
}

// handshakes reports whether a client with the CA, certificate and key of
// files completes a TLS handshake with addr.
func handshakes(addr string, files testcerts.Files) bool {
	ca, err := os.ReadFile(files.CA)
	if err != nil {
		return false
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		return false
	}
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"})
	if err != nil {
		return false
	}
	defer conn.Close()
	// The agent checks the client certificate after the handshake; a
	// request shows whether it was accepted.
	_, err = conn.Write([]byte("GET /v1/status/leader HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	if err != nil {
		return false
	}
	b, err := io.ReadAll(conn)
	return err == nil && len(b) > 0
}

// relay forwards TCP connections to a target and can drop them all.
type relay struct {
	addr  string
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	r := &relay{addr: l.Addr().String(), conns: map[net.Conn]struct{}{}}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		_ = l.Close()
		r.drop()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				_ = in.Close()
				continue
			}
			r.mu.Lock()
			r.conns[in], r.conns[out] = struct{}{}, struct{}{}
			r.mu.Unlock()
			for _, pair := range [][2]net.Conn{{in, out}, {out, in}} {
				wg.Go(func() {
					_, _ = io.Copy(pair[0], pair[1])
					_ = pair[0].Close()
					_ = pair[1].Close()
				})
			}
		}
	})
	return r
}

// drop closes every connection the relay carries.
func (r *relay) drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for c := range r.conns {
		_ = c.Close()
	}
	clear(r.conns)
}
