package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	stdlog "log"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"go.yaml.in/yaml/v3"

	sdconfig "github.com/custom-sd/custom-sd/internal/config"
)

// The multi-job scenario runs the same ten jobs, with
// overlapping selections, four ways on one catalog, each behind a fresh
// counting proxy: one job alone in one custom-sd (the baseline), the ten
// jobs in one custom-sd, the ten jobs as ten custom-sd processes, and the
// ten jobs as consul_sd jobs in one Prometheus.

// benchJob is one job of the scenario: its selection, as custom-sd's
// configuration file and consul_sd both spell it, and which instances of
// the catalog it selects.
type benchJob struct {
	name         string
	what         string // the selection in a few words, for the report
	services     []string
	tags         []string
	nodeMeta     map[string]string
	filter       string
	healthFilter string
	tagSeparator string
	health       string   // custom-sd's health; consul_sd keeps passing instances by relabelling
	exclude      []string // custom-sd's exclude_services; consul_sd drops them by relabelling
	// selects reports whether the job selects instance i of service s,
	// in the given state.
	selects func(s, i int, status string) bool
}

// multiJobs are the scenario's jobs, the all-services job first.
func multiJobs(services int) []benchJob {
	var listed []string
	for s := 0; s < services; s += 10 {
		listed = append(listed, serviceName(s))
	}
	firstTwo := regexp.MustCompile(`-[01]$`)
	return []benchJob{
		{name: "all", what: "every service", selects: func(int, int, string) bool { return true }},
		{name: "prod", what: "tags: [prod]", tags: []string{"prod"},
			selects: func(s, _ int, _ string) bool { return s%2 == 0 }},
		{name: "t1", what: `tags: [t1], tag_separator: ";"`, tags: []string{"t1"}, tagSeparator: ";",
			selects: func(s, _ int, _ string) bool { return s%3 == 1 }},
		{name: "listed", what: fmt.Sprintf("services: every 10th (%d names)", len(listed)), services: listed,
			selects: func(s, _ int, _ string) bool { return s%10 == 0 }},
		{name: "rack-r1", what: "node_meta: {rack: r1}", nodeMeta: map[string]string{"rack": "r1"},
			selects: func(s, i int, _ string) bool { return topo.node(s, i)%4 == 1 }},
		{name: "passing", what: "health: passing", health: "passing",
			selects: func(_, _ int, status string) bool { return status == api.HealthPassing }},
		{name: "catalog-filter", what: `filter: ServiceName matches "[05]$"`, filter: `ServiceName matches "[05]$"`,
			selects: func(s, _ int, _ string) bool { return s%5 == 0 }},
		{name: "health-filter", what: `health_filter: Service.ID matches "-[01]$"`, healthFilter: `Service.ID matches "-[01]$"`,
			selects: func(s, i int, _ string) bool { return firstTwo.MatchString(instanceID(s, i)) }},
		{name: "excluded", what: "exclude_services: [consul, svc-[0-9]*[0-4]]", exclude: []string{"consul", "svc-[0-9]*[0-4]"},
			selects: func(s, _ int, _ string) bool { return s%10 >= 5 }},
		{name: "combined", what: "tags: [prod, t0], health: passing, exclude_services: [svc-[0-9]*9]",
			tags: []string{"prod", "t0"}, health: "passing", exclude: []string{"svc-[0-9]*9"},
			selects: func(s, _ int, status string) bool { return s%6 == 0 && s%10 != 9 && status == api.HealthPassing }},
	}
}

// loadedStatus is the state of a loaded instance's check in the scenario:
// one instance in ten is critical, so that health selections pick a share.
func loadedStatus(s, i int) string {
	if (s*topo.instances+i)%10 == 3 {
		return api.HealthCritical
	}
	return api.HealthPassing
}

// expected lists the addresses of the loaded instances job selects.
func (j benchJob) expected(cfg config) map[string]bool {
	out := map[string]bool{}
	for s := range cfg.services {
		for i := range cfg.instances {
			if j.selects(s, i, loadedStatus(s, i)) {
				out[targetAddress(s, i)] = true
			}
		}
	}
	return out
}

// configJob is the job as an entry of custom-sd's configuration file.
func (j benchJob) configJob() *sdconfig.Job {
	c := &sdconfig.Job{Name: j.name, Services: j.services, Tags: j.tags, NodeMeta: j.nodeMeta, Filter: j.filter,
		HealthFilter: j.healthFilter, Health: j.health, ExcludeServices: j.exclude}
	if j.tagSeparator != "" {
		c.TagSeparator = &j.tagSeparator
	}
	return c
}

// promJob is the job as a Prometheus scrape config with consul_sd.
func (j benchJob) promJob(server string) map[string]any {
	sd := map[string]any{"server": server}
	if len(j.services) > 0 {
		sd["services"] = j.services
	}
	if len(j.tags) > 0 {
		sd["tags"] = j.tags
	}
	if len(j.nodeMeta) > 0 {
		sd["node_meta"] = j.nodeMeta
	}
	for k, v := range map[string]string{"filter": j.filter, "health_filter": j.healthFilter, "tag_separator": j.tagSeparator} {
		if v != "" {
			sd[k] = v
		}
	}
	job := map[string]any{"job_name": j.name, "consul_sd_configs": []any{sd}}
	var relabel []any
	if j.health == "passing" {
		relabel = append(relabel, map[string]any{"source_labels": []string{"__meta_consul_health"}, "regex": "passing", "action": "keep"})
	}
	if len(j.exclude) > 0 {
		relabel = append(relabel, map[string]any{"source_labels": []string{"__meta_consul_service"}, "regex": strings.Join(j.exclude, "|"), "action": "drop"})
	}
	if relabel != nil {
		job["relabel_configs"] = relabel
	}
	return job
}

// setupRow is what one setup cost and showed.
type setupRow struct {
	name       string
	prometheus bool
	procs      int
	jobs       []benchJob
	want, seen []int           // per job: bench targets expected, and shown at the end of start-up
	complete   []time.Duration // per job: start → file (or Prometheus) complete; 0: never
	last       time.Duration   // start → every job complete; 0: not all
	polled     time.Duration   // consul_sd: how often its targets were polled
	startup    int64           // Consul requests from start until every job was complete (or the deadline)
	// Register → file: to the all-services job's file; to each selecting
	// job's file (every pair); to the last of them.
	toAll, toEach, toLast []time.Duration
	missed, wrong         int // selecting files that never showed a register; others that did
	idle                  int64
	requests, limited     int64
	failed                int64
	peakConns, opened     int64
	rss                   int64
	cpu                   time.Duration
	refused               int64
	err                   error
}

func runJobs(cfg config, cc compareConfig, n int, promWait time.Duration) error {
	all := multiJobs(cfg.services)
	if n < 2 || n > len(all) {
		return fmt.Errorf("-jobs %d: give 2 to %d", n, len(all))
	}
	jobs := all[:n]
	topo.labelled = true
	// Over its limit the agent answers 429 on a new connection before any
	// request; net/http logs that through the standard logger, once per
	// refused connection. The proxy counts the answers; the lines are noise.
	stdlog.SetOutput(io.Discard)
	dir, a, cleanup, err := startCatalog(cfg, "jobs", false)
	if err != nil {
		return err
	}
	defer cleanup()
	// One instance in ten critical.
	var ops api.TxnOps
	for s := range cfg.services {
		for i := range cfg.instances {
			if loadedStatus(s, i) != api.HealthPassing {
				ops = append(ops, registerOps(s, i, loadedStatus(s, i))...)
			}
		}
	}
	for len(ops) > 0 {
		k := min(len(ops), 60)
		if err := a.txn(ops[:k]); err != nil {
			return err
		}
		ops = ops[k:]
	}
	fmt.Fprintf(os.Stderr, "jobs: loaded %d×%d, %d jobs\n", cfg.services, cfg.instances, n)

	var rows []setupRow
	one := make([][]benchJob, n)
	for i, j := range jobs {
		one[i] = []benchJob{j}
	}
	setups := []struct {
		name  string
		procs [][]benchJob
	}{
		{"one job (all services), one custom-sd", [][]benchJob{jobs[:1]}},
		{fmt.Sprintf("%d jobs, one custom-sd", n), [][]benchJob{jobs}},
		{fmt.Sprintf("%d jobs, %d custom-sd processes", n, n), one},
	}
	for k, s := range setups {
		fmt.Fprintf(os.Stderr, "jobs: %s\n", s.name)
		row := runSetup(cfg, cc, a, filepath.Join(dir, fmt.Sprintf("setup-%d", k)), s.name, s.procs, k*cfg.samples)
		if row.err != nil {
			fmt.Fprintf(os.Stderr, "jobs: %s: %v\n", s.name, row.err)
		}
		rows = append(rows, row)
	}
	if cc.prometheus != "" {
		name := fmt.Sprintf("%d consul_sd jobs, one Prometheus", n)
		fmt.Fprintf(os.Stderr, "jobs: %s\n", name)
		row := runPromSetup(cfg, cc, a, filepath.Join(dir, "setup-prometheus"), name, jobs, promWait)
		if row.err != nil {
			fmt.Fprintf(os.Stderr, "jobs: %s: %v\n", name, row.err)
		}
		rows = append(rows, row)
	}
	reportJobs(cfg, promWait, rows)
	return nil
}

// newRow starts a row for jobs.
func newRow(cfg config, name string, jobs []benchJob) setupRow {
	row := setupRow{name: name, jobs: jobs, complete: make([]time.Duration, len(jobs)), seen: make([]int, len(jobs))}
	for _, j := range jobs {
		row.want = append(row.want, len(j.expected(cfg)))
	}
	return row
}

// runSetup runs one custom-sd process for each list of jobs in procs, each
// from a configuration file of its own, all behind one counting proxy.
func runSetup(cfg config, cc compareConfig, a *agent, dir, name string, procs [][]benchJob, offset int) setupRow {
	var jobs []benchJob
	for _, p := range procs {
		jobs = append(jobs, p...)
	}
	row := newRow(cfg, name, jobs)
	row.procs = len(procs)
	refusedBefore := a.refused.Load()
	p, err := startProxy(a.addr)
	if err != nil {
		row.err = err
		return row
	}
	defer func() {
		p.close()
		time.Sleep(time.Second) // until the agent has seen the connections close
	}()

	// One directory and configuration file for each process.
	var (
		paths   []string
		watches []*fileWatch
		confs   []string
	)
	for k, pj := range procs {
		sub := filepath.Join(dir, fmt.Sprint(k))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			row.err = err
			return row
		}
		f := sdconfig.File{Consul: &sdconfig.Consul{Server: p.addr}}
		for _, j := range pj {
			f.Jobs = append(f.Jobs, j.configJob())
			path := filepath.Join(sub, j.name+".json")
			w, err := watchFile(path)
			if err != nil {
				row.err = err
				return row
			}
			paths, watches = append(paths, path), append(watches, w)
		}
		b, err := yaml.Marshal(&f)
		if err != nil {
			row.err = err
			return row
		}
		conf := filepath.Join(sub, "custom-sd.yml")
		if err := os.WriteFile(conf, b, 0o644); err != nil {
			row.err = err
			return row
		}
		if _, err := sdconfig.Load(conf); err != nil { // the harness's own slip, before custom-sd says so
			row.err = fmt.Errorf("%s: %w", conf, err)
			return row
		}
		confs = append(confs, conf)
	}

	start := time.Now()
	var daemons []*daemon
	defer func() {
		for _, d := range daemons {
			d.stop()
		}
	}()
	for k, conf := range confs {
		d, err := startConfigDaemon(cfg.customSD, conf, filepath.Join(dir, fmt.Sprintf("custom-sd-%d.log", k)), cfg.extra...)
		if err != nil {
			row.err = err
			return row
		}
		daemons = append(daemons, d)
	}

	// Start-up: until every job's file holds exactly its targets.
	row.last, row.startup = waitAll(cc.deadline, start, p, row.complete, func(ctx context.Context, k int) (time.Time, error) {
		want := jobs[k].expected(cfg)
		return watches[k].waitFor(ctx, paths[k], func(b []byte) bool { return exactly(fileTargetHealth(b), want, cfg.services) })
	})
	for k, path := range paths {
		b, _ := os.ReadFile(path)
		row.seen[k] = benchTargets(fileTargetHealth(b), cfg.services)
	}
	fmt.Fprintf(os.Stderr, "jobs: %d of %d files complete after %s\n", countNonZero(row.complete), len(jobs), time.Since(start).Round(time.Millisecond))
	if row.last == 0 {
		row.err = fmt.Errorf("not every file complete within %s", cc.deadline)
	}

	// Single registers, each on a node of its own, timed to every file
	// that selects it; then the node's deletion, untimed.
	time.Sleep(2 * time.Second) // past the start-up writes
	for k := range cfg.samples {
		if err := sampleRegister(cfg, a, &row, paths, watches, cfg.instances+offset+k); err != nil {
			row.err = err
			break
		}
		if (k+1)%10 == 0 {
			fmt.Fprintf(os.Stderr, "jobs: register samples %d/%d\n", k+1, cfg.samples)
		}
	}

	if cfg.idle > 0 {
		time.Sleep(10 * time.Second)
		before := p.requests.Load()
		fmt.Fprintf(os.Stderr, "jobs: idle for %s\n", cfg.idle)
		time.Sleep(cfg.idle)
		row.idle = p.requests.Load() - before
	}
	for _, d := range daemons {
		rss, cpu, err := usage(d.cmd.Process.Pid)
		if err == nil {
			row.rss, row.cpu = row.rss+rss, row.cpu+cpu
		}
	}
	row.requests, row.limited, row.failed = p.requests.Load(), p.limited.Load(), p.failed.Load()
	row.peakConns, row.opened = p.peakConns.Load(), p.opened.Load()
	row.refused = a.refused.Load() - refusedBefore
	return row
}

// waitAll runs wait for every job at once, until deadline after start,
// and fills complete with the time each job took. It returns when the last
// one completed (0 if not all did) and the proxy's request count then (or
// at the deadline).
func waitAll(deadline time.Duration, start time.Time, p *proxy, complete []time.Duration, wait func(ctx context.Context, k int) (time.Time, error)) (last time.Duration, requests int64) {
	ctx, cancel := context.WithDeadline(context.Background(), start.Add(deadline))
	defer cancel()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		left = len(complete)
	)
	for k := range complete {
		wg.Go(func() {
			at, err := wait(ctx, k)
			if err != nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			complete[k] = max(at.Sub(start), time.Nanosecond)
			if left--; left == 0 {
				requests = p.requests.Load()
				last = slices.Max(complete)
			}
		})
	}
	wg.Wait()
	if last == 0 {
		requests = p.requests.Load()
	}
	return last, requests
}

// exactly reports whether the view lists exactly want among the loaded
// catalog's addresses.
func exactly(view map[string]string, want map[string]bool, services int) bool {
	if benchTargets(view, services) != len(want) {
		return false
	}
	for addr := range want {
		if _, ok := view[addr]; !ok {
			return false
		}
	}
	return true
}

func countNonZero(ds []time.Duration) int {
	n := 0
	for _, d := range ds {
		if d > 0 {
			n++
		}
	}
	return n
}

// sampleRegister registers instance i (past the loaded ones, on a node of
// its own) of a random service and times it to every file whose job
// selects it and was complete; then deletes its node and waits, untimed,
// until those files drop it.
func sampleRegister(cfg config, a *agent, row *setupRow, paths []string, watches []*fileWatch, i int) error {
	s := rand.N(cfg.services)
	addr := []byte(`"` + targetAddress(s, i) + `"`)
	var sel []int
	for k, j := range row.jobs {
		if row.complete[k] > 0 && j.selects(s, i, api.HealthPassing) {
			sel = append(sel, k)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := a.txn(registerOps(s, i, api.HealthPassing)); err != nil {
		return err
	}
	t0 := time.Now()
	took := make([]time.Duration, len(sel))
	var wg sync.WaitGroup
	for n, k := range sel {
		wg.Go(func() {
			if at, err := watches[k].waitFor(ctx, paths[k], func(b []byte) bool { return bytes.Contains(b, addr) }); err == nil {
				took[n] = max(at.Sub(t0), 0)
			} else {
				took[n] = -1
			}
		})
	}
	wg.Wait()
	var last time.Duration
	for n, d := range took {
		if d < 0 {
			row.missed++
			continue
		}
		row.toEach = append(row.toEach, d)
		last = max(last, d)
		if row.jobs[sel[n]].name == "all" {
			row.toAll = append(row.toAll, d)
		}
	}
	if len(sel) > 0 && !slices.Contains(took, -1) {
		row.toLast = append(row.toLast, last)
	}
	for k, path := range paths {
		if row.complete[k] > 0 && !slices.Contains(sel, k) {
			if b, err := os.ReadFile(path); err == nil && bytes.Contains(b, addr) {
				row.wrong++
			}
		}
	}
	del := api.TxnOps{{Node: &api.NodeTxnOp{Verb: api.NodeDelete, Node: api.Node{Node: nodeName(topo.node(s, i))}}}}
	if err := a.txn(del); err != nil {
		return err
	}
	for _, k := range sel {
		if _, err := watches[k].waitFor(ctx, paths[k], func(b []byte) bool { return !bytes.Contains(b, addr) }); err != nil {
			return fmt.Errorf("%s: deleted node still listed: %w", row.jobs[k].name, err)
		}
	}
	time.Sleep(cfg.spacing + rand.N(cfg.spacing/4))
	return nil
}

// startConfigDaemon starts custom-sd with a configuration file.
func startConfigDaemon(bin, conf, logPath string, extra ...string) (*daemon, error) {
	log, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	web, err := freePort()
	if err != nil {
		return nil, err
	}
	args := append([]string{"--config.file=" + conf, fmt.Sprintf("--web.listen-address=127.0.0.1:%d", web)}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	d := &daemon{cmd: cmd, start: time.Now(), web: fmt.Sprintf("http://127.0.0.1:%d", web)}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start custom-sd: %w", err)
	}
	return d, nil
}

// runPromSetup runs the jobs as consul_sd jobs of one Prometheus behind a
// counting proxy, polls each job's active targets every 5 s, and takes
// what it shows after wait.
func runPromSetup(cfg config, cc compareConfig, a *agent, dir, name string, jobs []benchJob, wait time.Duration) setupRow {
	row := newRow(cfg, name, jobs)
	row.prometheus, row.procs, row.polled = true, 1, 5*time.Second
	refusedBefore := a.refused.Load()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		row.err = err
		return row
	}
	p, err := startProxy(a.addr)
	if err != nil {
		row.err = err
		return row
	}
	defer func() {
		p.close()
		time.Sleep(time.Second)
	}()
	var scrapes []any
	for _, j := range jobs {
		scrapes = append(scrapes, j.promJob(p.addr))
	}
	b, err := yaml.Marshal(map[string]any{"global": map[string]any{"scrape_interval": "1h"}, "scrape_configs": scrapes})
	if err != nil {
		row.err = err
		return row
	}
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, b, 0o644); err != nil {
		row.err = err
		return row
	}
	port, err := freePort()
	if err != nil {
		row.err = err
		return row
	}
	promURL := fmt.Sprintf("http://127.0.0.1:%d", port)
	start := time.Now()
	cmd, err := command(dir, "prometheus", cc.prometheus, "--config.file="+conf, "--storage.tsdb.path="+filepath.Join(dir, "data"), fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port))
	if err != nil {
		row.err = err
		return row
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}()
	view := func(k int) map[string]string {
		resp, err := http.Get(promURL + "/api/v1/targets?state=active&scrapePool=" + url.QueryEscape(jobs[k].name))
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK {
			return nil
		}
		return promTargetHealth(b)
	}
	// Every 5 s, each job not yet complete.
	row.last, row.startup = waitAll(wait, start, p, row.complete, func(ctx context.Context, k int) (time.Time, error) {
		want := jobs[k].expected(cfg)
		t := time.NewTicker(row.polled)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return time.Time{}, ctx.Err()
			case now := <-t.C:
				if exactly(view(k), want, cfg.services) {
					return now, nil
				}
			}
		}
	})
	time.Sleep(time.Until(start.Add(wait)))
	for k := range jobs {
		row.seen[k] = benchTargets(view(k), cfg.services)
	}
	fmt.Fprintf(os.Stderr, "jobs: consul_sd: %d of %d jobs complete after %s\n", countNonZero(row.complete), len(jobs), wait)
	if cfg.idle > 0 {
		before := p.requests.Load()
		fmt.Fprintf(os.Stderr, "jobs: idle for %s\n", cfg.idle)
		time.Sleep(cfg.idle)
		row.idle = p.requests.Load() - before
	}
	row.rss, row.cpu, _ = usage(cmd.Process.Pid)
	row.requests, row.limited, row.failed = p.requests.Load(), p.limited.Load(), p.failed.Load()
	row.peakConns, row.opened = p.peakConns.Load(), p.opened.Load()
	row.refused = a.refused.Load() - refusedBefore
	return row
}

func reportJobs(cfg config, promWait time.Duration, rows []setupRow) {
	n := len(rows[len(rows)-1].jobs)
	total := 0
	for _, w := range rows[1].want {
		total += w
	}
	fmt.Printf("### %d jobs: %d services × %d instances (%d targets; %d across the %d jobs), plain HTTP, default agent limits\n\n",
		n, cfg.services, cfg.instances, cfg.services*cfg.instances, total, n)
	fmt.Printf("Each setup in turn behind its own counting proxy, on one catalog (service s tagged t<s%%3>, and prod when even; node n with meta rack=r<n%%4>; one instance in ten critical). A job is complete when its file (for consul_sd: Prometheus's active targets of the job, polled every 5 s) lists exactly the instances it selects. Start-up requests are counted from start until every job is complete. Register latency runs from Consul's ack of a new instance (on a node of its own) to inotify reporting the rename of each file that selects it, %d samples. Idle requests are counted over %s, after 10 s to settle (for consul_sd: right after its targets are counted). (N×): the figure over the one-job baseline's; the issue's target is within 1.1× for connections, start-up and idle requests, and the same p50 to every file as to one.\n\n", cfg.samples, cfg.idle)
	fmt.Print("| measure |")
	for _, r := range rows {
		fmt.Printf(" %s |", r.name)
	}
	fmt.Print("\n|---|")
	for range rows {
		fmt.Print("---|")
	}
	fmt.Println()
	base := rows[0]
	line := func(name string, f func(r setupRow) string) {
		fmt.Printf("| %s |", name)
		for _, r := range rows {
			fmt.Printf(" %s |", f(r))
		}
		fmt.Println()
	}
	vs := func(r setupRow, v, b float64) string {
		if r.name == base.name {
			return ""
		}
		return " (" + ratio(v, b) + ")"
	}
	line("processes / jobs", func(r setupRow) string { return fmt.Sprintf("%d / %d", r.procs, len(r.jobs)) })
	line("jobs complete; start → the last complete", func(r setupRow) string {
		done := countNonZero(r.complete)
		switch {
		case r.last > 0 && r.prometheus:
			return fmt.Sprintf("%d of %d; within %s (polled every %s)", done, len(r.jobs), r.last.Round(time.Second), r.polled)
		case r.last > 0:
			return fmt.Sprintf("%d of %d; %s", done, len(r.jobs), ms(r.last)) + vs(r, float64(r.last), float64(base.last))
		case r.prometheus:
			return fmt.Sprintf("%d of %d after %s", done, len(r.jobs), promWait)
		}
		return fmt.Sprintf("%d of %d in the deadline", done, len(r.jobs))
	})
	line("targets shown at the end of start-up / expected, all jobs", func(r setupRow) string {
		seen, want := 0, 0
		for k := range r.jobs {
			seen, want = seen+r.seen[k], want+r.want[k]
		}
		return fmt.Sprintf("%d / %d", seen, want)
	})
	line("Consul requests, start → every job complete", func(r setupRow) string {
		s := fmt.Sprint(r.startup) + vs(r, float64(r.startup), float64(base.startup))
		if r.last == 0 {
			s += " (at the deadline, not all complete)"
		}
		return s
	})
	line("most connections to Consul at once", func(r setupRow) string {
		return fmt.Sprint(r.peakConns) + vs(r, float64(r.peakConns), float64(base.peakConns))
	})
	line("connections opened in the whole run", func(r setupRow) string {
		return fmt.Sprint(r.opened) + vs(r, float64(r.opened), float64(base.opened))
	})
	line("429 answers / requests the proxy could not forward, whole run", func(r setupRow) string {
		return fmt.Sprintf("%d / %d", r.limited, r.failed)
	})
	if cfg.idle > 0 {
		line(fmt.Sprintf("Consul requests in an idle %s", cfg.idle), func(r setupRow) string {
			return fmt.Sprint(r.idle) + vs(r, float64(r.idle), float64(base.idle))
		})
	}
	lat := func(name string, of func(setupRow) []time.Duration) {
		line(name, func(r setupRow) string {
			ds := of(r)
			if r.prometheus {
				return "not measured"
			}
			if len(ds) == 0 {
				return "n/a"
			}
			return fmt.Sprintf("%s / %s (n=%d)", ms(pct(ds, .5)), ms(pct(ds, .99)), len(ds)) + vs(r, float64(pct(ds, .5)), float64(pct(base.toLast, .5)))
		})
	}
	lat("register → the all-services job's file: p50 / p99", func(r setupRow) []time.Duration { return r.toAll })
	lat("register → each file that selects it (every pair): p50 / p99", func(r setupRow) []time.Duration { return r.toEach })
	lat("register → the last file that selects it: p50 / p99", func(r setupRow) []time.Duration { return r.toLast })
	line("registers a selecting file missed (30 s) / shown by a file that does not select them", func(r setupRow) string {
		if r.prometheus {
			return "not measured"
		}
		return fmt.Sprintf("%d / %d", r.missed, r.wrong)
	})
	line("Consul requests in the whole run", func(r setupRow) string {
		return fmt.Sprint(r.requests) + vs(r, float64(r.requests), float64(base.requests))
	})
	line("peak RSS / CPU time (summed over processes)", func(r setupRow) string {
		return fmt.Sprintf("%.0f MiB / %.1f s", float64(r.rss)/(1<<20), r.cpu.Seconds())
	})
	line("the harness's own writes refused (retried)", func(r setupRow) string { return fmt.Sprint(r.refused) })
	line("measurement stopped by", func(r setupRow) string {
		if r.err == nil {
			return ""
		}
		return strings.Join(strings.Fields(strings.ReplaceAll(r.err.Error(), "|", "/")), " ")
	})
	fmt.Println()

	// Per job: targets shown at the end of start-up, against the expected.
	fmt.Print("| job | selection | expected |")
	for _, r := range rows[1:] {
		fmt.Printf(" %s |", r.name)
	}
	fmt.Print("\n|---|---|---|")
	for range rows[1:] {
		fmt.Print("---|")
	}
	fmt.Println()
	for k, j := range rows[1].jobs {
		fmt.Printf("| %s | %s | %d |", j.name, strings.ReplaceAll(j.what, "|", `\|`), rows[1].want[k])
		for _, r := range rows[1:] {
			cell := fmt.Sprint(r.seen[k])
			if r.complete[k] > 0 && !r.prometheus {
				cell += ", complete at " + ms(r.complete[k])
			} else if r.complete[k] > 0 {
				cell += fmt.Sprintf(", complete within %s", r.complete[k].Round(time.Second))
			}
			fmt.Printf(" %s |", cell)
		}
		fmt.Println()
	}
	fmt.Println()
}
