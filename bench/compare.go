package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// The comparison runs each tool in turn against the same catalog, each
// behind its own counting proxy, and measures what a user sees: how long
// until the file (or Prometheus) holds every target, how long a new
// instance takes to show, and what the tool costs Consul and the host.

// tool is one way of feeding Consul targets to Prometheus.
type tool struct {
	name    string
	samples int // register samples (the example polls every 30 s)
	// start runs the tool against the Consul at addr, writing out; nil for
	// Prometheus's consul_sd, which measureTool runs itself.
	start func(dir, addr, out string) (*exec.Cmd, error)
}

// compareRow is one tool's figures.
type compareRow struct {
	name             string
	firstComplete    time.Duration // 0: never within the deadline
	seen, want       int           // targets seen at the deadline
	register         []time.Duration
	idleRequests     int64
	requests, limits int64
	peakConns        int64
	rss              int64
	cpu              time.Duration
	refused          int64 // the harness's own writes refused meanwhile
	err              error // the measurement could not finish
	probes           int   // another client's requests while waiting for the first complete view
	probesRefused    int
}

type compareConfig struct {
	example, consulTemplate, prometheus string
	deadline                            time.Duration
}

func runCompare(cfg config, cc compareConfig) error {
	dir, a, cleanup, err := startCatalog(cfg, "compare")
	if err != nil {
		return err
	}
	defer cleanup()
	want := cfg.services * cfg.instances // Consul itself is not counted: not every tool lists it

	tools := []tool{{name: "custom-sd", samples: cfg.samples, start: func(dir, addr, out string) (*exec.Cmd, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		return command(dir, "custom-sd", cfg.customSD, append([]string{"--consul.server=" + addr, "--output.file=" + out, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)}, cfg.extra...)...)
	}}}
	if cc.example != "" {
		tools = append(tools, tool{name: "custom-sd example", samples: 3, start: func(dir, addr, out string) (*exec.Cmd, error) {
			return command(dir, "example", cc.example, "--listen.address="+addr, "--output.file="+out)
		}})
	}
	if cc.consulTemplate != "" {
		tools = append(tools, tool{name: "consul-template", samples: cfg.samples, start: func(dir, addr, out string) (*exec.Cmd, error) {
			tmpl := filepath.Join(dir, "file_sd.ctmpl")
			const t = `[{{range $i, $s := services}}{{if $i}},{{end}}{"targets":[{{range $j, $e := service $s.Name}}{{if $j}},{{end}}"{{.Address}}:{{.Port}}"{{end}}],"labels":{"service":"{{$s.Name}}"}}{{end}}]`
			if err := os.WriteFile(tmpl, []byte(t), 0o644); err != nil {
				return nil, err
			}
			return command(dir, "consul-template", cc.consulTemplate, "-consul-addr="+addr, "-template", tmpl+":"+out)
		}})
	}
	if cc.prometheus != "" {
		tools = append(tools, tool{name: "Prometheus consul_sd", samples: cfg.samples})
	}

	var rows []compareRow
	for _, t := range tools {
		fmt.Fprintf(os.Stderr, "compare: %s\n", t.name)
		row, err := measureTool(cfg, cc, a, dir, t, want)
		if err != nil {
			row.err = err
			fmt.Fprintf(os.Stderr, "compare: %s: %v\n", t.name, err)
		}
		rows = append(rows, row)
	}
	reportCompare(cfg, rows)
	return nil
}

func command(dir, name, bin string, args ...string) (*exec.Cmd, error) {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	return cmd, cmd.Start()
}

// measureTool runs one tool behind a fresh counting proxy.
func measureTool(cfg config, cc compareConfig, a *agent, dir string, t tool, want int) (compareRow, error) {
	row := compareRow{name: t.name, want: want}
	refusedBefore := a.refused.Load()
	p, err := startProxy(a.addr)
	if err != nil {
		return row, err
	}
	defer p.srv.Close()
	sub := filepath.Join(dir, strings.ReplaceAll(t.name, " ", "-"))
	if err := os.Mkdir(sub, 0o755); err != nil {
		return row, err
	}
	out := filepath.Join(sub, "targets.json")

	// count reports how many of the catalog's targets the tool shows now;
	// has whether it shows a given address.
	var (
		count func() int
		has   func(addr string) bool
	)
	start := time.Now()
	var cmd *exec.Cmd
	if t.start == nil { // Prometheus consul_sd
		port, err := freePort()
		if err != nil {
			return row, err
		}
		conf := fmt.Sprintf("global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: consul\n    consul_sd_configs:\n      - server: %s\n", p.addr)
		confPath := filepath.Join(sub, "prometheus.yml")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return row, err
		}
		promURL := fmt.Sprintf("http://127.0.0.1:%d", port)
		if cmd, err = command(sub, "prometheus", cc.prometheus, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(sub, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)); err != nil {
			return row, err
		}
		count = func() int { return benchTargets(promTargets(promURL), cfg.services) }
		has = func(addr string) bool { return promHas(promURL, addr) }
	} else {
		if cmd, err = t.start(sub, p.addr, out); err != nil {
			return row, err
		}
		count = func() int { b, _ := os.ReadFile(out); return benchTargets(fileTargets(b), cfg.services) }
		has = func(addr string) bool { return fileHas(out, addr) }
	}
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	defer stop()

	// First complete view, within the deadline. Meanwhile another client
	// on the host asks the agent for its leader every second: does the
	// agent still answer it?
	lastProbe := time.Time{}
	for time.Since(start) < cc.deadline {
		if row.seen = count(); row.seen >= want {
			row.firstComplete = time.Since(start)
			break
		}
		if time.Since(lastProbe) >= time.Second {
			lastProbe = time.Now()
			row.probes++
			if _, err := a.client.Status().Leader(); err != nil {
				row.probesRefused++
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	if row.firstComplete > 0 {
		time.Sleep(2 * time.Second) // past the start-up writes and their coalescing
		// Register samples: a new instance of a service, on a node of its own.
		for k := range t.samples {
			s := k % cfg.services
			addr := targetAddress(s, cfg.instances+k)
			ops := registerOps(s, cfg.instances+k, api.HealthPassing)
			t0 := time.Now()
			if err := a.txn(ops); err != nil {
				return row, err
			}
			for time.Since(t0) < time.Minute {
				if has(addr) {
					row.register = append(row.register, time.Since(t0))
					break
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(cfg.spacing)
		}
		// An idle minute.
		time.Sleep(5 * time.Second)
		before := p.requests.Load()
		time.Sleep(cfg.idle)
		row.idleRequests = p.requests.Load() - before
	}
	row.requests, row.limits, row.peakConns = p.requests.Load(), p.limited.Load(), p.peakConns.Load()
	row.refused = a.refused.Load() - refusedBefore
	if row.rss, row.cpu, err = usage(cmd.Process.Pid); err != nil {
		return row, err
	}
	stop()
	// Clean up the samples' instances for the next tool.
	for k := range t.samples {
		node := nodeName(topo.node(k%cfg.services, cfg.instances+k))
		if err := a.txn(api.TxnOps{{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: node}}}}); err != nil {
			return row, err
		}
	}
	return row, nil
}

// promHas reports whether the Prometheus at url lists addr among its
// active targets.
func promHas(url, addr string) bool {
	resp, err := http.Get(url + "/api/v1/targets?state=active")
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	return bytes.Contains(buf.Bytes(), []byte(`"`+addr+`"`))
}

func fileHas(path, addr string) bool {
	b, err := os.ReadFile(path)
	return err == nil && bytes.Contains(b, []byte(`"`+addr+`"`))
}

// fileTargets returns the target addresses in file_sd JSON.
func fileTargets(b []byte) []string {
	var entries []struct {
		Targets []string `json:"targets"`
	}
	if json.Unmarshal(b, &entries) != nil {
		return nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Targets...)
	}
	return out
}

// promTargets returns the addresses of Prometheus's active targets.
func promTargets(url string) []string {
	resp, err := http.Get(url + "/api/v1/targets?state=active")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	var body struct {
		Data struct {
			ActiveTargets []struct {
				Labels map[string]string `json:"labels"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if json.NewDecoder(resp.Body).Decode(&body) != nil {
		return nil
	}
	var out []string
	for _, t := range body.Data.ActiveTargets {
		out = append(out, t.Labels["instance"])
	}
	return out
}

// benchTargets counts the addresses that belong to the loaded catalog:
// ports 10000 to 10000+services-1 (Consul's own entry is left out).
func benchTargets(addrs []string, services int) int {
	n := 0
	for _, a := range addrs {
		i := strings.LastIndexByte(a, ':')
		if p, err := strconv.Atoi(a[i+1:]); err == nil && p >= 10000 && p < 10000+services {
			n++
		}
	}
	return n
}

func reportCompare(cfg config, rows []compareRow) {
	fmt.Printf("### Side by side: %d services × %d instances (%d targets), plain HTTP, default agent limits\n\n", cfg.services, cfg.instances, rows[0].want)
	fmt.Println("Each tool in turn behind its own counting proxy; register latency is Consul's ack to the target in the file (for consul_sd: in Prometheus's /api/v1/targets, polled every ms).")
	fmt.Println()
	fmt.Print("| measure |")
	for _, r := range rows {
		fmt.Printf(" %s |", r.name)
	}
	fmt.Print("\n|---|")
	for range rows {
		fmt.Print("---|")
	}
	fmt.Println()
	line := func(name string, f func(r compareRow) string) {
		fmt.Printf("| %s |", name)
		for _, r := range rows {
			fmt.Printf(" %s |", f(r))
		}
		fmt.Println()
	}
	base := rows[0]
	ratio := func(v, b float64) string {
		if b == 0 || v == 0 {
			return ""
		}
		return fmt.Sprintf(" (%.0f×)", v/b)
	}
	line("first complete view", func(r compareRow) string {
		if r.firstComplete == 0 {
			return fmt.Sprintf("never in the deadline: %d of %d targets", r.seen, r.want)
		}
		return ms(r.firstComplete) + ratio(float64(r.firstComplete), float64(base.firstComplete))
	})
	line("register → visible, p50 / max", func(r compareRow) string {
		if len(r.register) == 0 {
			return "n/a"
		}
		return fmt.Sprintf("%s / %s (n=%d)%s", ms(pct(r.register, .5)), ms(pct(r.register, 1)), len(r.register), ratio(float64(pct(r.register, .5)), float64(pct(base.register, .5))))
	})
	line(fmt.Sprintf("Consul requests in an idle %s", cfg.idle), func(r compareRow) string {
		if r.firstComplete == 0 {
			return "not measured (never complete)"
		}
		return fmt.Sprint(r.idleRequests)
	})
	line("Consul requests in the whole run / 429 answers", func(r compareRow) string { return fmt.Sprintf("%d / %d", r.requests, r.limits) })
	line("most connections to Consul at once", func(r compareRow) string { return fmt.Sprint(r.peakConns) })
	line("another client on the host, while waiting for the first complete view: requests refused", func(r compareRow) string {
		return fmt.Sprintf("%d of %d", r.probesRefused, r.probes)
	})
	line("the harness's own writes refused (retried)", func(r compareRow) string { return fmt.Sprint(r.refused) })
	line("measurement stopped by", func(r compareRow) string {
		if r.err == nil {
			return ""
		}
		return strings.Join(strings.Fields(strings.ReplaceAll(r.err.Error(), "|", "/")), " ")
	})
	line("peak RSS / CPU time", func(r compareRow) string {
		return fmt.Sprintf("%.0f MiB / %.1f s", float64(r.rss)/(1<<20), r.cpu.Seconds())
	})
	fmt.Println()
}
