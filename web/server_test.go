package web

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/adapter"
)

func TestNewServerBounds(t *testing.T) {
	t.Parallel()
	srv := NewServer(http.NotFoundHandler())
	tests := []struct {
		name      string
		got, want time.Duration
	}{
		{"a request's headers", srv.ReadHeaderTimeout, 10 * time.Second},
		{"a whole request", srv.ReadTimeout, 10 * time.Second},
		{"an answer", srv.WriteTimeout, 30 * time.Second},
		{"a kept-alive connection between requests", srv.IdleTimeout, 2 * time.Minute},
		{"/targets at 100,000 targets (35 MB)", writeAllowance(srv.WriteTimeout, 35_000_000), 65 * time.Second},
		{"/targets at 1,000 targets (350 KB)", writeAllowance(srv.WriteTimeout, 350_000), 30*time.Second + 350*time.Millisecond},
	}
	for _, tc := range tests {
		require.Equal(t, tc.want, tc.got, tc.name)
	}
}

// testServer is NewServer's server, with the bounds a test sets, serving h
// on a loopback port. It records the connections it has closed, by the
// client's address.
type testServer struct {
	addr   string
	mu     sync.Mutex
	closed map[string]bool
}

func startServer(t *testing.T, h http.Handler, set func(*http.Server)) *testServer {
	t.Helper()
	ts := &testServer{closed: map[string]bool{}}
	srv := NewServer(h)
	set(srv)
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed || s == http.StateHijacked {
			ts.mu.Lock()
			ts.closed[c.RemoteAddr().String()] = true
			ts.mu.Unlock()
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	ts.addr = l.Addr().String()
	l = smallBuffers{l}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return ts
}

// waitClosed waits until the server has closed the connection c.
func (ts *testServer) waitClosed(t *testing.T, c net.Conn) {
	t.Helper()
	addr := c.LocalAddr().String()
	require.Eventually(t, func() bool {
		ts.mu.Lock()
		defer ts.mu.Unlock()
		return ts.closed[addr]
	}, 20*time.Second, 5*time.Millisecond, "the server closes the connection")
}

// socketBuffer is the size of the server's send buffer and of the
// client's receive buffer, which the kernel would otherwise grow to
// several MB.
const socketBuffer = 64 << 10

// bigAnswer is far more than the kernel holds between the server and a
// client that does not read, so that writing it waits for the client.
const bigAnswer = 2 << 20

// smallBuffers gives each connection a send buffer of socketBuffer.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(socketBuffer)
	}
	return c, err
}

// dial connects to addr with a receive buffer of socketBuffer, sends send
// and returns the connection, closed when the test ends.
func dial(t *testing.T, addr, send string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = c.Close() })
	require.NoError(t, c.(*net.TCPConn).SetReadBuffer(socketBuffer))
	_, err = io.WriteString(c, send)
	require.NoError(t, err)
	return c
}

var bigBody = bytes.Repeat([]byte("x"), bigAnswer)

// big answers bigAnswer bytes, with their length.
func big(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Length", strconv.Itoa(bigAnswer))
	_, _ = w.Write(bigBody)
}

// Each client misbehaves, then waits without reading until the server
// closes its connection: the server's bounds, not the client, end it.
func TestServerClosesHostileClients(t *testing.T) {
	t.Parallel()
	h, err := NewHandler(Options{
		Registry: prometheus.NewRegistry(), Ready: func() bool { return true },
		Jobs:    func() []string { return nil },
		Targets: func(string) (*adapter.Snapshot, bool) { return nil, false },
	})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/", h)
	mux.HandleFunc("/big", big)
	ts := startServer(t, mux, func(s *http.Server) {
		s.ReadHeaderTimeout = 200 * time.Millisecond
		s.ReadTimeout = 200 * time.Millisecond
		s.WriteTimeout = 2 * time.Second
		s.IdleTimeout = 200 * time.Millisecond
	})

	tests := []struct {
		name string
		send string // what the client sends before it waits
		// check is what the client reads once the server closed the
		// connection.
		check func(t *testing.T, got []byte)
	}{
		{"connects and sends nothing", "", nothingRead},
		{"sends whole header lines, not all", "GET /-/healthy HTTP/1.1\r\nHost: x\r\n", nothingRead},
		{"sends half a header line", "GET /-/healthy HTTP/1.1\r\nHost: x\r\nUser-Ag", badRequest},
		{"sends half its request line", "GET /-/hea", badRequest},
		{"sends half the body it announced", "POST /-/reload HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345", func(t *testing.T, got []byte) {
			// It is answered (403: no lifecycle API), but the connection
			// is not kept for another request.
			resp := readResponse(t, got, http.MethodPost)
			require.Equal(t, http.StatusForbidden, resp.StatusCode)
		}},
		{"keeps its connection after an answer", "GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n", func(t *testing.T, got []byte) {
			resp := readResponse(t, got, http.MethodGet)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			b, err := io.ReadAll(resp.Body)
			require.NoError(t, err, "a whole answer")
			require.Equal(t, "custom-sd is Healthy.\n", string(b))
		}},
		{"never reads a large answer", "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", func(t *testing.T, got []byte) {
			// Fewer bytes than Content-Length: the client sees an error,
			// never a shorter answer it could take for the whole.
			resp := readResponse(t, got, http.MethodGet)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			require.Equal(t, int64(bigAnswer), resp.ContentLength)
			b, err := io.ReadAll(resp.Body)
			require.ErrorIs(t, err, io.ErrUnexpectedEOF)
			require.Less(t, len(b), bigAnswer)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, ts.addr, tc.send)
			ts.waitClosed(t, c)
			got, err := io.ReadAll(c)
			require.NoError(t, err, "the server closes the connection cleanly")
			tc.check(t, got)
		})
	}
}

func nothingRead(t *testing.T, got []byte) {
	t.Helper()
	require.Empty(t, got, "no answer")
}

// badRequest: a request cut off within a line is answered 400.
func badRequest(t *testing.T, got []byte) {
	t.Helper()
	require.Equal(t, http.StatusBadRequest, readResponse(t, got, http.MethodGet).StatusCode)
}

func readResponse(t *testing.T, got []byte, method string) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(got)), &http.Request{Method: method})
	require.NoError(t, err, "an HTTP answer: %q", got)
	return resp
}

// deadlineRecorder records the write deadline a handler sets, as the
// server's writer would take it.
type deadlineRecorder struct {
	*httptest.ResponseRecorder
	deadline time.Time
}

func (r *deadlineRecorder) SetWriteDeadline(t time.Time) error {
	r.deadline = t
	return nil
}

// A large /targets is given the time its size takes at SlowLink on top of
// the write timeout, and a trace the seconds it asks (pprof's own), through
// every wrapper of the writer.
func TestAnswersGetTimeForTheirSize(t *testing.T) {
	t.Parallel()
	// 1 MB of targets: 1 s at SlowLink.
	var targets []model.LabelSet
	pad := model.LabelValue(strings.Repeat("p", 16<<10))
	for i := range 64 {
		service := model.LabelValue([]string{"web", "db"}[i%2])
		targets = append(targets, model.LabelSet{
			model.AddressLabel: model.LabelValue("127.0.0.1:" + strconv.Itoa(1024+i)), "__meta_consul_service": service,
			"__meta_pad": pad + model.LabelValue(strconv.Itoa(i)),
		})
	}
	g := &gate{release: make(chan struct{}), groups: []*adapter.Group{{Source: "web", Targets: targets[:32]}, {Source: "db", Targets: targets[32:]}}}
	close(g.release)
	a, err := adapter.New(t.TempDir()+"/out.json", map[string]adapter.Discoverer{"consul": g}, adapter.Options{Interval: time.Millisecond})
	require.NoError(t, err)
	runAdapter(t, a)
	require.Eventually(t, a.Ready, 20*time.Second, time.Millisecond)
	snap := a.Snapshot()
	require.Greater(t, snap.Size(), 1_000_000)
	db := len(snap.Filter(func(k adapter.Key) bool { return k.Source == "db" }))

	h, err := NewHandler(Options{
		Registry: prometheus.NewRegistry(), Ready: a.Ready, Jobs: func() []string { return []string{"web"} },
		Targets: func(string) (*adapter.Snapshot, bool) { return snap, true },
	})
	require.NoError(t, err)
	const writeTimeout = 30 * time.Second
	srv := &http.Server{WriteTimeout: writeTimeout}

	tests := []struct {
		name, method, path string
		allowance          time.Duration // beyond the write timeout; -1: no deadline set
	}{
		{"the whole set", "GET", TargetsPath, time.Duration(snap.Size()) * time.Second / SlowLink},
		{"the services asked for", "GET", TargetsPath + "?service=db", time.Duration(db) * time.Second / SlowLink},
		{"HEAD writes no body", "HEAD", TargetsPath, -1},
		{"a small answer", "GET", HealthyPath, -1},
		{"a trace of 50ms", "GET", PprofPath + "trace?seconds=0.05", 50 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := &deadlineRecorder{ResponseRecorder: httptest.NewRecorder()}
			r := httptest.NewRequestWithContext(context.WithValue(t.Context(), http.ServerContextKey, srv), tc.method, tc.path, nil)
			before := time.Now()
			h.ServeHTTP(rec, r)
			after := time.Now()
			require.Equal(t, http.StatusOK, rec.Code)
			if tc.allowance < 0 {
				require.True(t, rec.deadline.IsZero(), "no deadline of its own")
				return
			}
			want := writeTimeout + tc.allowance
			require.WithinRange(t, rec.deadline, before.Add(want), after.Add(want))
		})
	}
}
