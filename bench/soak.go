package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// soakSample is one reading of the sidecar during a soak.
type soakSample struct {
	at         time.Duration
	rss        int64 // bytes, from /proc
	heap       float64
	goroutines float64
	writes     float64
	changes    int64
}

// runSoak churns a catalog steadily for d and samples custom-sd's memory
// and goroutines every interval, while a reader parses the file over and
// over. It prints a markdown table.
func runSoak(cfg config, d, interval time.Duration) error {
	dir, a, cleanup, err := startCatalog(cfg, "soak", false)
	if err != nil {
		return err
	}
	defer cleanup()
	port, err := freePort()
	if err != nil {
		return err
	}
	web := fmt.Sprintf("127.0.0.1:%d", port)
	out := filepath.Join(dir, "custom_sd.json")
	sd, err := startDaemon(cfg.customSD, a.addr, out, filepath.Join(dir, "custom-sd.log"),
		append([]string{"--web.listen-address=" + web}, cfg.extra...)...)
	if err != nil {
		return err
	}
	defer sd.stop()
	if err := waitReady("http://" + web + "/-/ready"); err != nil {
		return err
	}

	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	reads, bad := 0, 0
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for ctx.Err() == nil {
			b, err := os.ReadFile(out)
			var v []struct {
				Targets []string          `json:"targets"`
				Labels  map[string]string `json:"labels"`
			}
			if err != nil || json.Unmarshal(b, &v) != nil {
				bad++
			}
			reads++
			time.Sleep(5 * time.Millisecond)
		}
	}()

	var changes atomic.Int64
	churnDone := make(chan error, 1)
	go func() {
		t := time.NewTicker(50 * time.Millisecond) // 20 changes a second
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				churnDone <- nil
				return
			case <-t.C:
			}
			s, i := rand.N(cfg.services), rand.N(cfg.instances)
			status := api.HealthPassing
			if rand.N(2) == 0 {
				status = api.HealthCritical
			}
			if err := a.txn(registerOps(s, i, status)); err != nil {
				churnDone <- err
				return
			}
			changes.Add(1)
		}
	}()

	var samples []soakSample
	start := time.Now()
	sample := func() error {
		m, err := scrape("http://" + web + "/metrics")
		if err != nil {
			return err
		}
		rss, err := currentRSS(sd.cmd.Process.Pid)
		if err != nil {
			return err
		}
		samples = append(samples, soakSample{
			at: time.Since(start).Round(time.Second), rss: rss, heap: m["go_memstats_heap_inuse_bytes"],
			goroutines: m["go_goroutines"], writes: m[`custom_sd_file_writes_total{result="success",sd_job="default"}`], changes: changes.Load(),
		})
		return nil
	}
	if err := sample(); err != nil {
		return err
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			if err := sample(); err != nil {
				return err
			}
		}
	}
	if err := <-churnDone; err != nil {
		return fmt.Errorf("churn: %w", err)
	}
	<-readerDone
	if err := sample(); err != nil {
		return err
	}

	fmt.Printf("## Soak: %d services × %d instances, 20 health changes a second for %s\n\n", cfg.services, cfg.instances, d)
	fmt.Println("| time | RSS | Go heap in use | goroutines | file writes | changes made |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, s := range samples {
		fmt.Printf("| %s | %.1f MiB | %.1f MiB | %.0f | %.0f | %d |\n", s.at, float64(s.rss)/(1<<20), s.heap/(1<<20), s.goroutines, s.writes, s.changes)
	}
	fmt.Printf("\nA reader parsed the file %d times during the soak; %d reads were not valid JSON.\n", reads, bad)
	return nil
}

func waitReady(url string) error {
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("%s: not ready after a minute", url)
}

// scrape reads a Prometheus text exposition into name{labels} -> value.
func scrape(url string) (map[string]float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
			if name, _, labelled := strings.Cut(line[:i], "{"); labelled {
				out[name] += v // the sum of every series, under the bare name
			}
		}
	}
	return out, nil
}

// currentRSS reads a process's resident set size from /proc.
func currentRSS(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}
