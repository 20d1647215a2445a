package testproc

import (
	"os/exec"
	"runtime"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestListenAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		log  string
		want string
	}{
		{
			name: "custom-sd, logfmt",
			log: `level=info ts=2026-11-29T18:38:54.48827695Z caller=main.go:180 msg="Starting custom-sd" output=/tmp/x.json
ts=2026-11-29T18:38:54.48849409Z caller=handler.go:145 component=web level=info caller=tls_config.go:395 time=2026-11-29T18:38:54.488485137Z msg="Listening on" address=127.0.0.1:41375
ts=2026-11-29T18:38:54.488720428Z caller=handler.go:145 component=web level=info caller=tls_config.go:398 msg="TLS is disabled." http2=false address=127.0.0.1:41375
`,
			want: "127.0.0.1:41375",
		},
		{
			name: "custom-sd, fewer fields",
			log:  `level=info component=web msg="Listening on" address=127.0.0.1:9`,
			want: "127.0.0.1:9",
		},
		{
			name: "custom-sd, JSON",
			log: `{"caller":"main.go:180","level":"info","msg":"Starting custom-sd"}
{"address":"127.0.0.1:33267","caller":"tls_config.go:395","component":"web","level":"info","msg":"Listening on","time":"2026-11-29T18:38:56.497450698Z","ts":"2026-11-29T18:38:56.4974725Z"}
`,
			want: "127.0.0.1:33267",
		},
		{
			name: "Prometheus 3.16, logfmt",
			log: `time=2026-11-29T18:40:07.318Z level=INFO source=web.go:731 msg="Start listening for connections" component=web address=127.0.0.1:0
time=2026-11-29T18:40:07.320Z level=INFO source=tls_config.go:395 msg="Listening on" component=web address=127.0.0.1:38473
`,
			want: "127.0.0.1:38473",
		},
		{
			name: "Prometheus 3.16, JSON",
			log: `{"time":"2026-11-29T18:40:12.384940784Z","level":"INFO","source":"web.go:731","msg":"Start listening for connections","component":"web","address":"127.0.0.1:0"}
{"time":"2026-11-29T18:40:12.39026521Z","level":"INFO","source":"tls_config.go:395","msg":"Listening on","component":"web","address":"127.0.0.1:38777"}
`,
			want: "127.0.0.1:38777",
		},
		{
			name: "IPv6",
			log:  `level=info msg="Listening on" address=[::1]:9090`,
			want: "[::1]:9090",
		},
		{
			name: "not yet listening",
			log:  `level=info msg="Starting custom-sd"` + "\n" + `level=info msg="TLS is disabled." address=127.0.0.1:41375`,
		},
		{
			name: "the words elsewhere",
			log:  `level=warn msg="Consul query failed" err="Listening on nothing" address=127.0.0.1:1`,
		},
		{
			name: "a line cut short",
			log:  `level=info msg="Listening on" addr`,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, listenAddress(tc.log))
		})
	}
}

func TestListenAddressFailsWhenTheProcessExits(t *testing.T) {
	t.Parallel()
	ft := &fakeT{TB: t}
	out, exited := Start(t, "true", exec.Command("true"))
	done := make(chan struct{})
	go func() {
		defer close(done)
		ListenAddress(ft, out, exited)
	}()
	<-done
	require.True(t, ft.fatal, "an exit before listening fails the test")
}

// fakeT records a fatal failure instead of ending the real test.
type fakeT struct {
	testing.TB
	fatal bool
}

func (f *fakeT) Helper() {}

func (f *fakeT) Errorf(string, ...any) {}

func (f *fakeT) FailNow() {
	f.fatal = true
	runtime.Goexit()
}

func (f *fakeT) Fatalf(string, ...any) { f.FailNow() }
