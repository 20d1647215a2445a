package main

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/consul/api"
	"github.com/stretchr/testify/require"

	"github.com/custom-sd/custom-sd/internal/testconsul"
)

// TestReloadStorm: 200 reloads, alternating a valid, a broken and a
// changed configuration, while the catalog churns and a reader parses
// every job's file throughout. No read finds a file invalid or empty; the
// process holds no more goroutines or descriptors after the storm than
// before; SIGTERM then ends it cleanly.
func TestReloadStorm(t *testing.T) {
	t.Parallel()
	srv := testconsul.Start(t)
	const services, nodes = 20, 2
	instance := func(s, n int, status string, tags ...string) testconsul.Instance {
		return testconsul.Instance{Node: fmt.Sprintf("node-%d", n), Service: fmt.Sprintf("svc-%d", s), ID: fmt.Sprintf("svc-%d-%d", s, n),
			Port: 10000 + s, Tags: tags, Status: status}
	}
	for s := range services {
		for n := range nodes {
			srv.Register(t, instance(s, n, api.HealthPassing, "prod"))
		}
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "custom-sd.yml")
	head := "consul: {server: " + srv.HTTPAddr + "}\njobs:\n  - {name: all, exclude_services: [consul]}\n  - {name: prod, tags: [prod]}\n"
	valid := head + "  - {name: few, services: [svc-1, svc-2, svc-3]}\n"
	changed := head + "  - {name: few, services: [svc-4, svc-5]}\n  - {name: extra, services: [svc-6]}\n"
	broken := head + "  - {name: few, services: [svc-1], output: {mode: rw}}\n"
	require.NoError(t, os.WriteFile(cfg, []byte(valid), 0o600))
	d := startDaemon(t, "--config.file="+cfg, "--web.enable-lifecycle")
	testconsul.Eventually(t, d.status(t, "/-/ready", http.StatusOK))
	goroutines, fds := d.metric(t, "go_goroutines", nil), d.metric(t, "process_open_fds", nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	// The reader: every job's file, parsed as Prometheus would.
	var reads, bad atomic.Int64
	var badRead atomic.Value
	files := []string{"all.json", "prod.json", "few.json", "extra.json"}
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, f := range files {
				b, err := os.ReadFile(filepath.Join(dir, f))
				if os.IsNotExist(err) && f == "extra.json" {
					continue // not written until the changed configuration first runs
				}
				reads.Add(1)
				var groups []fileSDEntry
				if err != nil || json.Unmarshal(b, &groups) != nil || len(groups) == 0 {
					bad.Add(1)
					badRead.Store(fmt.Sprintf("%s: %v: %q", f, err, b))
				}
			}
		}
	})

	// The churn, between reloads: health flips and tag changes of the
	// instances there are, so that what custom-sd watches stays the same
	// size.
	rnd := rand.New(rand.NewPCG(1, 2))
	statuses := []string{api.HealthPassing, api.HealthWarning, api.HealthCritical}
	churn := func() {
		tags := []string{"prod"}
		if rnd.IntN(3) == 0 {
			tags = []string{"canary"}
		}
		srv.Register(t, instance(rnd.IntN(services), rnd.IntN(nodes), statuses[rnd.IntN(3)], tags...))
	}
	for i := range 200 {
		churn()
		churn()
		content, code := valid, http.StatusOK
		switch i % 3 {
		case 1:
			content, code = broken, http.StatusInternalServerError
		case 2:
			content = changed
		}
		require.NoError(t, os.WriteFile(cfg, []byte(content), 0o600))
		got, _, body := d.get(t, http.MethodPost, "/-/reload")
		require.Equal(t, code, got, "reload %d: %s", i, body)
	}
	require.NoError(t, os.WriteFile(cfg, []byte(valid), 0o600))
	got, _, body := d.get(t, http.MethodPost, "/-/reload")
	require.Equal(t, http.StatusOK, got, body)
	close(stop)
	wg.Wait()

	require.Positive(t, reads.Load())
	require.Zero(t, bad.Load(), "no invalid or empty read; one was %v", badRead.Load())
	testconsul.Eventually(t, d.status(t, "/-/ready", http.StatusOK))
	testconsul.Eventually(t, func() bool {
		return d.metric(t, "go_goroutines", nil) <= goroutines+20 && d.metric(t, "process_open_fds", nil) <= fds+10
	}, "back to the goroutines (%v) and descriptors (%v) of before the storm", goroutines, fds)
	require.Equal(t, 0, d.terminate(t))
	require.Equal(t, 1, d.countLog("Stopped"))
}
