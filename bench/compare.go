package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/internal/testcerts"
)

// The comparison runs each tool in turn against the same catalog, each
// behind its own counting proxy, and measures what a user sees: how long
// until the file (or Prometheus) holds every target, how long a change
// takes to show, and what the tool costs Consul and the host.

// errNotSupported is what a tool's start returns when it cannot reach
// Consul the way asked (the custom-sd example speaks plain HTTP only).
var errNotSupported = errors.New("not supported")

// healthView is how a tool shows an instance's health.
type healthView int

const (
	healthLabel  healthView = iota // __meta_consul_health on every target
	healthFilter                   // only passing instances are listed
	healthNone                     // not at all
)

// endpoint is where a tool finds Consul.
type endpoint struct {
	addr string // host:port
	ca   string // over HTTPS, the CA that signed the proxy's certificate; "" over plain HTTP
}

// tool is one way of feeding Consul targets to Prometheus.
type tool struct {
	name    string
	samples int // samples of each single change (the example polls every 30 s)
	health  healthView
	// start runs the tool against Consul at c, writing out; nil for
	// Prometheus's consul_sd, which measureTool runs itself.
	start func(dir string, c endpoint, out string) (*exec.Cmd, error)
}

// compareRow is one tool's figures.
type compareRow struct {
	name             string
	health           healthView
	unsupported      bool
	firstComplete    time.Duration // 0: never within the deadline
	seen, want       int           // targets seen at the deadline
	register         []time.Duration
	deregister       []time.Duration
	flip             []time.Duration
	burstWrites      int           // file writes (consul_sd: SD updates) during the burst
	burstConverge    time.Duration // last flip → final state shown; 0: not within a minute
	churn            churnStats
	churnCPU         time.Duration
	idleRequests     int64
	idleBytes        int64
	idleCPU          time.Duration
	requests, limits int64
	failed           int64 // requests the proxy could not forward
	peakConns        int64
	agentConns       int // over HTTPS: most connections on the agent's HTTPS port
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
	dir, a, cleanup, err := startCatalog(cfg, "compare", cfg.https)
	if err != nil {
		return err
	}
	defer cleanup()
	want := cfg.services * cfg.instances // Consul itself is not counted: not every tool lists it

	tools := []tool{{name: "custom-sd", samples: cfg.samples, health: healthLabel, start: func(dir string, c endpoint, out string) (*exec.Cmd, error) {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		args := []string{"--consul.server=" + c.addr, "--output.file=" + out, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)}
		if c.ca != "" {
			args[0] = "--consul.server=https://" + c.addr
			args = append(args, "--consul.tls.ca-file="+c.ca)
		}
		return command(dir, "custom-sd", cfg.customSD, append(args, cfg.extra...)...)
	}}}
	if cc.example != "" {
		tools = append(tools, tool{name: "custom-sd example", samples: 3, health: healthNone, start: func(dir string, c endpoint, out string) (*exec.Cmd, error) {
			if c.ca != "" {
				return nil, errNotSupported // it builds http:// URLs and has no TLS flag
			}
			return command(dir, "example", cc.example, "--listen.address="+c.addr, "--output.file="+out)
		}})
	}
	if cc.consulTemplate != "" {
		tools = append(tools, tool{name: "consul-template", samples: cfg.samples, health: healthFilter, start: func(dir string, c endpoint, out string) (*exec.Cmd, error) {
			tmpl := filepath.Join(dir, "file_sd.ctmpl")
			const t = `[{{range $i, $s := services}}{{if $i}},{{end}}{"targets":[{{range $j, $e := service $s.Name}}{{if $j}},{{end}}"{{.Address}}:{{.Port}}"{{end}}],"labels":{"service":"{{$s.Name}}"}}{{end}}]`
			if err := os.WriteFile(tmpl, []byte(t), 0o644); err != nil {
				return nil, err
			}
			args := []string{"-consul-addr=" + c.addr, "-template", tmpl + ":" + out}
			if c.ca != "" {
				args = append(args, "-consul-ssl", "-consul-ssl-ca-cert="+c.ca)
			}
			return command(dir, "consul-template", cc.consulTemplate, args...)
		}})
	}
	if cc.prometheus != "" {
		// consul_sd re-reads a service at most every 30 s (refresh_interval):
		// a few samples show that, as for the example.
		tools = append(tools, tool{name: "Prometheus consul_sd", samples: min(cfg.samples, 5), health: healthLabel})
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

// measureTool runs one tool behind a fresh counting proxy: over plain HTTP
// to the agent's HTTP port, with -https to its HTTPS port.
func measureTool(cfg config, cc compareConfig, a *agent, dir string, t tool, want int) (compareRow, error) {
	row := compareRow{name: t.name, want: want, health: t.health, burstWrites: -1}
	refusedBefore := a.refused.Load()
	sub := filepath.Join(dir, strings.ReplaceAll(t.name, " ", "-"))
	if err := os.Mkdir(sub, 0o755); err != nil {
		return row, err
	}
	var (
		p   *proxy
		c   endpoint
		err error
	)
	if cfg.https {
		certs, err := testcerts.Write(sub)
		if err != nil {
			return row, err
		}
		if p, err = startTLSProxy(a.httpsAddr, a.ca, certs); err != nil {
			return row, err
		}
		c = endpoint{addr: p.addr, ca: certs.CA}
		// What the agent itself holds, to check that the proxy passes
		// connections through one for one.
		_, port, _ := net.SplitHostPort(a.httpsAddr)
		n, _ := strconv.Atoi(port)
		stop := sampleEvery(100*time.Millisecond, func() { row.agentConns = max(row.agentConns, listeningConns(n)) })
		defer stop()
	} else {
		if p, err = startProxy(a.addr); err != nil {
			return row, err
		}
		c = endpoint{addr: p.addr}
	}
	defer p.srv.Close()
	out := filepath.Join(sub, "targets.json")

	// snapshot reads what the tool shows now: its file, or Prometheus's
	// active targets.
	var (
		snapshot func() ([]byte, error)
		parse    func([]byte) map[string]string // target address → health label ("" without one)
		writes   func() int                     // file writes, or consul_sd's SD updates
	)
	start := time.Now()
	var cmd *exec.Cmd
	if t.start == nil { // Prometheus consul_sd
		port, err := freePort()
		if err != nil {
			return row, err
		}
		sd := "server: " + c.addr
		if c.ca != "" {
			sd += fmt.Sprintf("\n        scheme: https\n        tls_config:\n          ca_file: %s", c.ca)
		}
		conf := fmt.Sprintf("global:\n  scrape_interval: 1h\nscrape_configs:\n  - job_name: consul\n    consul_sd_configs:\n      - %s\n", sd)
		confPath := filepath.Join(sub, "prometheus.yml")
		if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
			return row, err
		}
		promURL := fmt.Sprintf("http://127.0.0.1:%d", port)
		if cmd, err = command(sub, "prometheus", cc.prometheus, "--config.file="+confPath, "--storage.tsdb.path="+filepath.Join(sub, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port)); err != nil {
			return row, err
		}
		snapshot = func() ([]byte, error) { return promSnapshot(promURL) }
		parse = promTargetHealth
		writes = func() int {
			m, _ := scrape(promURL + "/metrics")
			return int(m[`prometheus_sd_updates_total{name="scrape"}`])
		}
	} else {
		w, err := watchFile(out)
		if err != nil {
			return row, err
		}
		if cmd, err = t.start(sub, c, out); err != nil {
			if errors.Is(err, errNotSupported) {
				row.unsupported = true
				return row, nil
			}
			return row, err
		}
		snapshot = func() ([]byte, error) { return os.ReadFile(out) }
		parse = fileTargetHealth
		writes = w.count
	}
	// shows reports whether the tool shows addr, and with the given health
	// where it shows health (a tool that lists passing instances only
	// shows a critical one by leaving it out).
	shows := func(addr, status string) bool {
		b, err := snapshot()
		if err != nil {
			return false
		}
		h, listed := healthOf(b, addr)
		switch {
		case status == "":
			return listed
		case status == "gone":
			return !listed
		case t.health == healthLabel:
			return listed && h == status
		case t.health == healthFilter:
			return listed == (status == api.HealthPassing)
		}
		return listed
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
		b, _ := snapshot()
		if row.seen = benchTargets(parse(b), cfg.services); row.seen >= want {
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
	var undo api.TxnOps // what puts the catalog back for the next tool
	if row.firstComplete > 0 {
		time.Sleep(2 * time.Second) // past the start-up writes and their coalescing
		// timeIt applies ops and polls every millisecond, for up to a
		// minute, until the tool shows addr as wanted.
		timeIt := func(into *[]time.Duration, ops api.TxnOps, addr, status string) error {
			if err := a.txn(ops); err != nil {
				return err
			}
			t0 := time.Now()
			for time.Since(t0) < time.Minute {
				if shows(addr, status) {
					*into = append(*into, time.Since(t0))
					break
				}
				time.Sleep(time.Millisecond)
			}
			time.Sleep(cfg.spacing)
			return nil
		}
		// Single changes: a new instance of a service, on a node of its
		// own, then its deregistration; a loaded instance's check to
		// critical, then back (untimed).
		for k := range t.samples {
			s := k % cfg.services
			i := cfg.instances + k
			addr := targetAddress(s, i)
			if err := timeIt(&row.register, registerOps(s, i, api.HealthPassing), addr, ""); err != nil {
				return row, err
			}
			dereg := api.TxnOps{{Service: &api.ServiceTxnOp{Verb: api.ServiceDelete, Node: nodeName(topo.node(s, i)), Service: api.AgentService{ID: instanceID(s, i), Service: serviceName(s)}}}}
			if err := timeIt(&row.deregister, dereg, addr, "gone"); err != nil {
				return row, err
			}
			if t.health == healthNone {
				continue
			}
			addr = targetAddress(s, 0)
			if err := timeIt(&row.flip, registerOps(s, 0, api.HealthCritical), addr, api.HealthCritical); err != nil {
				return row, err
			}
			var back []time.Duration
			if err := timeIt(&back, registerOps(s, 0, api.HealthPassing), addr, api.HealthPassing); err != nil {
				return row, err
			}
		}
		// A burst of health flips: writes, and time to the final state.
		if cfg.burst > 0 && t.health != healthNone {
			before := writes()
			final, sent, err := sendBurst(cfg, a)
			if err != nil {
				return row, err
			}
			for time.Since(sent) < time.Minute {
				if b, err := snapshot(); err == nil && showsAll(parse(b), final, t.health) {
					row.burstConverge = time.Since(sent)
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(2 * time.Second)
			row.burstWrites = writes() - before
			// Every instance passing again before the churn.
			for f, status := range final {
				if status != api.HealthPassing {
					if err := a.txn(registerOps(f.s, f.i, api.HealthPassing)); err != nil {
						return row, err
					}
					final[f] = api.HealthPassing
				}
			}
			for t0 := time.Now(); time.Since(t0) < time.Minute; time.Sleep(10 * time.Millisecond) {
				if b, err := snapshot(); err == nil && showsAll(parse(b), final, t.health) {
					break
				}
			}
		}
		// A churn period, counted at the proxy, with the tool's CPU time.
		if cfg.churn > 0 {
			time.Sleep(5 * time.Second)
			_, cpu0, err := usage(cmd.Process.Pid)
			if err != nil {
				return row, err
			}
			ctx, cancel := context.WithTimeout(context.Background(), cfg.churn+time.Minute)
			row.churn, err = undoableChurn(ctx, cfg, a, proxyCounter(p), cfg.churn, 30*time.Second, cfg.churnRate)
			cancel()
			if err != nil {
				return row, err
			}
			undo = row.churn.undo
			_, cpu1, err := usage(cmd.Process.Pid)
			if err != nil {
				return row, err
			}
			row.churnCPU = cpu1 - cpu0
		}
		// An idle period.
		time.Sleep(5 * time.Second)
		reqs, bytes := p.requests.Load(), p.bytes.Load()
		_, cpu0, err := usage(cmd.Process.Pid)
		if err != nil {
			return row, err
		}
		time.Sleep(cfg.idle)
		row.idleRequests, row.idleBytes = p.requests.Load()-reqs, p.bytes.Load()-bytes
		_, cpu1, err := usage(cmd.Process.Pid)
		if err != nil {
			return row, err
		}
		row.idleCPU = cpu1 - cpu0
	}
	row.requests, row.limits, row.failed, row.peakConns = p.requests.Load(), p.limited.Load(), p.failed.Load(), p.peakConns.Load()
	row.refused = a.refused.Load() - refusedBefore
	if row.rss, row.cpu, err = usage(cmd.Process.Pid); err != nil {
		return row, err
	}
	stop()
	// Put the catalog back for the next tool: the samples' nodes, the
	// churn's instances and flips.
	for k := range t.samples {
		node := nodeName(topo.node(k%cfg.services, cfg.instances+k))
		undo = append(undo, &api.TxnOp{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: node}}})
	}
	for len(undo) > 0 {
		n := min(len(undo), 60)
		if err := a.txn(undo[:n]); err != nil {
			return row, err
		}
		undo = undo[n:]
	}
	return row, nil
}

// sampleEvery calls f every d until the returned func is called.
func sampleEvery(d time.Duration, f func()) (stop func()) {
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(d)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	return func() { close(done); <-stopped }
}

// showsAll reports whether view (address → health) shows each instance
// in final with its health, as a tool of that kind shows health.
func showsAll(view map[string]string, final map[instanceRef]string, health healthView) bool {
	for f, status := range final {
		h, listed := view[targetAddress(f.s, f.i)]
		switch health {
		case healthLabel:
			if h != status {
				return false
			}
		case healthFilter:
			if listed != (status == api.HealthPassing) {
				return false
			}
		}
	}
	return true
}

// healthOf finds addr in a file_sd file or in Prometheus's active targets
// and returns the __meta_consul_health label that follows it in the same
// object: a file's labels come after its targets, and Prometheus sorts a
// target's discovered labels, __address__ first. Label values hold no "}".
func healthOf(b []byte, addr string) (health string, listed bool) {
	i := bytes.Index(b, []byte(`"`+addr+`"`))
	if i < 0 {
		return "", false
	}
	obj := b[i:]
	if j := bytes.IndexByte(obj, '}'); j >= 0 {
		obj = obj[:j]
	}
	return field(obj, `"__meta_consul_health":"`), true
}

// fileTargetHealth reads the targets of a file_sd file and their health
// labels.
func fileTargetHealth(b []byte) map[string]string {
	var entries []struct {
		Targets []string          `json:"targets"`
		Labels  map[string]string `json:"labels"`
	}
	if json.Unmarshal(b, &entries) != nil {
		return nil
	}
	out := map[string]string{}
	for _, e := range entries {
		for _, t := range e.Targets {
			out[t] = e.Labels["__meta_consul_health"]
		}
	}
	return out
}

// promSnapshot reads Prometheus's active targets.
func promSnapshot(url string) ([]byte, error) {
	resp, err := http.Get(url + "/api/v1/targets?state=active")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("targets: %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// promTargetHealth reads the addresses of Prometheus's active targets and
// their health labels.
func promTargetHealth(b []byte) map[string]string {
	var body struct {
		Data struct {
			ActiveTargets []struct {
				Labels     map[string]string `json:"labels"`
				Discovered map[string]string `json:"discoveredLabels"`
			} `json:"activeTargets"`
		} `json:"data"`
	}
	if json.Unmarshal(b, &body) != nil {
		return nil
	}
	out := map[string]string{}
	for _, t := range body.Data.ActiveTargets {
		out[t.Labels["instance"]] = t.Discovered["__meta_consul_health"]
	}
	return out
}

// benchTargets counts the addresses that belong to the loaded catalog:
// ports 10000 to 10000+services-1 (Consul's own entry is left out).
func benchTargets(addrs map[string]string, services int) int {
	n := 0
	for a := range addrs {
		i := strings.LastIndexByte(a, ':')
		if p, err := strconv.Atoi(a[i+1:]); err == nil && p >= 10000 && p < 10000+services {
			n++
		}
	}
	return n
}

func reportCompare(cfg config, rows []compareRow) {
	if cfg.https {
		fmt.Printf("### Side by side: %d services × %d instances (%d targets), HTTPS, default agent limits\n\n", cfg.services, cfg.instances, rows[0].want)
		fmt.Println("Each tool in turn against the agent's HTTPS port, behind its own counting proxy that terminates TLS (HTTP/2 to a tool that offers it, at most 250 streams a connection, as the agent) and forwards each of the tool's connections over one of its own to the agent, in the same protocol, so the agent sees the tool's connections one for one; register latency is Consul's ack to the target in the file (for consul_sd: in Prometheus's /api/v1/targets, polled every ms).")
	} else {
		fmt.Printf("### Side by side: %d services × %d instances (%d targets), plain HTTP, default agent limits\n\n", cfg.services, cfg.instances, rows[0].want)
		fmt.Println("Each tool in turn behind its own counting proxy; register latency is Consul's ack to the target in the file (for consul_sd: in Prometheus's /api/v1/targets, polled every ms).")
	}
	fmt.Println()
	fmt.Println("(N×): the tool's figure divided by custom-sd's, left out where either is 0. Deregister and health flip are timed the same way; consul-template's template lists passing instances only, so a flip to critical shows as the target leaving the file; the example's file carries no health. consul_sd's \"writes\" are Prometheus's SD updates to its scrape manager (prometheus_sd_updates_total). Churn: a new instance, a health flip, a deregistration in turn, counted until 30 s after the last change.")
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
			if r.unsupported {
				fmt.Print(" not supported |")
				continue
			}
			fmt.Printf(" %s |", f(r))
		}
		fmt.Println()
	}
	// vs follows a cell with the ratio of each of its figures to
	// custom-sd's, for the other tools.
	vs := func(r compareRow, of func(compareRow) []float64) string {
		if r.name == rows[0].name || rows[0].unsupported {
			return ""
		}
		var out []string
		base, v := of(rows[0]), of(r)
		for i := range v {
			out = append(out, ratio(v[i], base[i]))
		}
		if strings.Trim(strings.Join(out, ""), "–") == "" {
			return ""
		}
		return " (" + strings.Join(out, " / ") + ")"
	}
	base := rows[0]
	line("first complete view", func(r compareRow) string {
		if r.firstComplete == 0 {
			return fmt.Sprintf("never in the deadline: %d of %d targets", r.seen, r.want)
		}
		if r.name == base.name {
			return ms(r.firstComplete) + " (1×)"
		}
		return ms(r.firstComplete) + vs(r, func(r compareRow) []float64 { return []float64{float64(r.firstComplete)} })
	})
	latency := func(name string, of func(compareRow) []time.Duration, why func(compareRow) string) {
		line(name+", p50 / max", func(r compareRow) string {
			ds := of(r)
			if len(ds) == 0 {
				if w := why(r); w != "" {
					return w
				}
				return "n/a"
			}
			cell := fmt.Sprintf("%s / %s (n=%d)", ms(pct(ds, .5)), ms(pct(ds, 1)), len(ds))
			if r.name == base.name {
				return cell + " (1×)"
			}
			return cell + vs(r, func(r compareRow) []float64 { return []float64{float64(pct(of(r), .5))} })
		})
	}
	none := func(compareRow) string { return "" }
	latency("register → visible", func(r compareRow) []time.Duration { return r.register }, none)
	latency("deregister → gone", func(r compareRow) []time.Duration { return r.deregister }, none)
	latency("health flip → visible", func(r compareRow) []time.Duration { return r.flip }, func(r compareRow) string {
		if r.health == healthNone {
			return "n/a (no health in its output)"
		}
		return ""
	})
	if cfg.burst > 0 {
		line(fmt.Sprintf("burst of %d health flips in 1 s: file writes", cfg.burst), func(r compareRow) string {
			switch {
			case r.health == healthNone:
				return "n/a (no health in its output)"
			case r.burstWrites < 0:
				return "n/a"
			}
			return fmt.Sprint(r.burstWrites) + vs(r, func(r compareRow) []float64 { return []float64{float64(r.burstWrites)} })
		})
		line("burst: last change → final state shown", func(r compareRow) string {
			switch {
			case r.health == healthNone:
				return "n/a (no health in its output)"
			case r.burstWrites < 0:
				return "n/a"
			case r.burstConverge == 0:
				return "not within a minute"
			}
			return ms(r.burstConverge) + vs(r, func(r compareRow) []float64 { return []float64{float64(r.burstConverge)} })
		})
	}
	measured := func(r compareRow) bool { return r.firstComplete > 0 }
	if cfg.churn > 0 {
		churnCell := func(f func(r compareRow) []float64, format func([]float64) string) func(compareRow) string {
			return func(r compareRow) string {
				if !measured(r) || r.churn.changes == 0 {
					return "not measured"
				}
				return format(f(r)) + vs(r, f)
			}
		}
		per := func(n float64, by int) float64 { return n / float64(max(by, 1)) }
		line(fmt.Sprintf("churn %s at %d changes/s: Consul requests / bytes", cfg.churn, cfg.churnRate), churnCell(
			func(r compareRow) []float64 { return []float64{float64(r.churn.requests), float64(r.churn.bytes)} },
			func(v []float64) string { return fmt.Sprintf("%.0f / %.0f", v[0], v[1]) }))
		line("churn: Consul requests / bytes per changed service", churnCell(
			func(r compareRow) []float64 {
				return []float64{per(float64(r.churn.requests), r.churn.services), per(float64(r.churn.bytes), r.churn.services)}
			},
			func(v []float64) string { return fmt.Sprintf("%.1f / %.0f", v[0], v[1]) }))
		line("churn, per change: Consul requests / bytes / CPU ms", churnCell(
			func(r compareRow) []float64 {
				return []float64{per(float64(r.churn.requests), r.churn.changes), per(float64(r.churn.bytes), r.churn.changes), per(float64(r.churnCPU.Milliseconds()), r.churn.changes)}
			},
			func(v []float64) string { return fmt.Sprintf("%.1f / %.0f / %.1f", v[0], v[1], v[2]) }))
	}
	line(fmt.Sprintf("Consul requests in an idle %s", cfg.idle), func(r compareRow) string {
		if !measured(r) {
			return "not measured (never complete)"
		}
		return fmt.Sprint(r.idleRequests) + vs(r, func(r compareRow) []float64 { return []float64{float64(r.idleRequests)} })
	})
	if cfg.idle > 0 {
		line("idle, per minute: Consul requests / bytes / CPU ms", func(r compareRow) string {
			if !measured(r) {
				return "not measured (never complete)"
			}
			f := func(r compareRow) []float64 {
				m := float64(time.Minute) / float64(cfg.idle)
				return []float64{float64(r.idleRequests) * m, float64(r.idleBytes) * m, float64(r.idleCPU.Milliseconds()) * m}
			}
			v := f(r)
			return fmt.Sprintf("%.0f / %.0f / %.0f", v[0], v[1], v[2]) + vs(r, f)
		})
	}
	line("Consul requests in the whole run / 429 answers", func(r compareRow) string {
		return fmt.Sprintf("%d / %d", r.requests, r.limits) + vs(r, func(r compareRow) []float64 { return []float64{float64(r.requests), float64(r.limits)} })
	})
	line("most connections to Consul at once", func(r compareRow) string {
		return fmt.Sprint(r.peakConns) + vs(r, func(r compareRow) []float64 { return []float64{float64(r.peakConns)} })
	})
	if cfg.https {
		line("most connections on the agent's HTTPS port (/proc/net/tcp)", func(r compareRow) string { return fmt.Sprint(r.agentConns) })
		line("requests the proxy could not forward (the agent refused or cut the connection)", func(r compareRow) string { return fmt.Sprint(r.failed) })
	}
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
	var cpuParts []string
	if cfg.churn > 0 {
		cpuParts = append(cpuParts, fmt.Sprintf("in the churn (%s + 30 s)", cfg.churn))
	}
	if cfg.idle > 0 {
		cpuParts = append(cpuParts, fmt.Sprintf("in the idle %s", cfg.idle))
	}
	if len(cpuParts) > 0 {
		line("CPU seconds "+strings.Join(cpuParts, " / "), func(r compareRow) string {
			if !measured(r) {
				return "not measured"
			}
			f := func(r compareRow) []float64 {
				var v []float64
				if cfg.churn > 0 {
					v = append(v, r.churnCPU.Seconds())
				}
				if cfg.idle > 0 {
					v = append(v, r.idleCPU.Seconds())
				}
				return v
			}
			var cells []string
			for _, x := range f(r) {
				cells = append(cells, fmt.Sprintf("%.2f", x))
			}
			return strings.Join(cells, " / ") + vs(r, f)
		})
	}
	fmt.Println()
}

// ratio is v over custom-sd's b, as "2.4×", or "–" where either is 0.
func ratio(v, b float64) string {
	switch r := v / b; {
	case b <= 0 || v <= 0:
		return "–"
	case r >= 10:
		return fmt.Sprintf("%.0f×", r)
	default:
		return fmt.Sprintf("%.2g×", r)
	}
}
