// Command custom-sd keeps a Prometheus file_sd file in step with Consul.
//
// It watches Consul's catalog with blocking queries and rewrites the file
// atomically whenever the targets change, so Prometheus scrapes exactly what
// Consul knows. See README.md for flags and labels.
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	oklog "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/internal/supervisor"
	"github.com/custom-sd/custom-sd/sd/consul"
	"github.com/custom-sd/custom-sd/web"
)

const name = "custom-sd"

// DefaultListenAddress is where the HTTP side listens unless told otherwise.
const DefaultListenAddress = ":9099"

// Stopping is bounded: a SIGTERM ends the process within stopTimeout
// whatever it is doing (a write to a stuck file system, an agent that
// hangs, a reload under way), after in-flight HTTP requests have had
// shutdownTimeout to finish.
const (
	stopTimeout     = 4500 * time.Millisecond
	shutdownTimeout = 3 * time.Second
)

// defaultGOGC is the garbage collector's target unless GOGC says
// otherwise: custom-sd holds its output (35 MB at 100,000 targets) for as
// long as it runs, and at Go's default of 100 the heap would grow to twice
// that between collections. At 50 it peaks near 3× the output, for a little
// more CPU at start-up.
const defaultGOGC = 50

func main() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(defaultGOGC)
	}
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

// run parses args, runs until ctx is cancelled or a signal arrives, and
// returns the exit code: 0 after a clean stop, 2 for bad flags or a bad
// configuration file, 1 otherwise.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return runMigrate(args[1:], os.Stdout, stderr)
		case "check":
			return runCheck(args[1:], os.Stdout, stderr)
		}
	}
	s, err := parse(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err))
		return 2
	}
	base, logger := newLogger(stderr, s.logFormat, s.logLevel)
	cfg, err := s.load()
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err))
		return 2
	}
	s.warn(logger, cfg)
	// Signals are caught from here on: a SIGTERM or SIGHUP that arrives while
	// the jobs start must not kill the process, and a SIGTERM ends it within
	// stopTimeout whatever it is doing.
	ctx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	done := make(chan int, 1)
	go func() { done <- serveJobs(ctx, s, cfg, hup, stderr, base, logger) }()
	select {
	case code := <-done:
		return code
	case <-ctx.Done():
	}
	select {
	case code := <-done:
		return code
	case <-time.After(stopTimeout):
		level.Error(logger).Log("msg", "Did not stop in time; exiting anyway", "timeout", stopTimeout)
		return 1
	}
}

// serveJobs starts the configuration's jobs and the HTTP side, and runs
// them until ctx is cancelled.
func serveJobs(ctx context.Context, s settings, cfg *config.Config, hup <-chan os.Signal, stderr io.Writer, base, logger log.Logger) int {
	// Listen before anything starts, so a port in use fails at once.
	listeners, err := listen(s.listen)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: --web.listen-address: %s\n", name, oneLine(err))
		return 1
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("custom_sd"))
	runCtx, stopJobs := context.WithCancel(context.Background())
	defer stopJobs()
	sup := supervisor.New(runCtx, logger, supervisor.Real{})
	rl := newReloader(s, sup, logger, reg)
	handler, err := newHandler(s, sup, rl, reg)
	if err == nil {
		err = sup.Apply(cfg)
	}
	if err != nil {
		sup.Stop()
		closeAll(listeners)
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err))
		return 2
	}
	level.Info(logger).Log("msg", "Starting custom-sd", "version", version.Info(), "jobs", strings.Join(sup.Jobs(), ","))

	var g oklog.Group
	g.Add(oklog.ContextHandler(ctx))
	g.Add(func() error { <-runCtx.Done(); sup.Stop(); return nil }, func(error) { stopJobs() })
	g.Add(rl.on(hup))
	g.Add(serve(s, listeners, handler, base, logger))
	if err := g.Run(); err != nil && ctx.Err() == nil {
		level.Error(logger).Log("msg", "Stopped with an error", "err", err)
		return 1
	}
	level.Info(logger).Log("msg", "Stopped")
	return 0
}

// newHandler returns the HTTP side.
func newHandler(s settings, sup *supervisor.Supervisor, rl *reloader, reg *prometheus.Registry) (http.Handler, error) {
	o := web.Options{
		Registry: reg, Gatherer: prometheus.Gatherers{reg, sup},
		Ready: sup.Ready, Unreadable: sup.Unreadable, Jobs: sup.Jobs, Targets: sup.Targets, Version: version.Info(),
		ServiceOf: func(k adapter.Key) string { return consul.ServiceOf(k.Source) },
	}
	if s.lifecycle {
		o.Reload = rl.reload
	}
	return web.NewHandler(o)
}

// warn logs the settings of cfg that are accepted but do nothing.
func (s settings) warn(logger log.Logger, cfg *config.Config) {
	for _, w := range cfg.Warnings {
		msg := w.Error()
		if s.configFile == "" {
			msg = w.Flags()
		}
		level.Warn(logger).Log("msg", "A setting does nothing", "setting", msg)
	}
}

// inputs are the files of the command line custom-sd reads.
func (s settings) inputs() []config.Input {
	return []config.Input{{Path: s.configFile, What: "the configuration file"}, {Path: s.webConfig, What: "the web configuration file"}}
}

// load loads the configuration, at start and at each reload: the
// configuration file, or the command line's one job resolved again, so
// that the files it names are read again; then the files it would write
// are checked against the file system and against what it reads.
func (s settings) load() (*config.Config, error) {
	if s.configFile == "" {
		cfg, err := s.flagsFile.Resolve(s.dir)
		if err == nil {
			err = cfg.CheckPaths(s.inputs()...)
		}
		return cfg, config.FlagError(err)
	}
	cfg, err := config.Load(s.configFile)
	if err == nil {
		err = cfg.CheckPaths(s.inputs()...)
	}
	if err != nil {
		return nil, fmt.Errorf("--config.file: %s: %w", s.configFile, err)
	}
	return cfg, nil
}

// parse parses and checks the command line.
func parse(args []string, stderr io.Writer) (settings, error) {
	var f flags
	app := newApp(&f)
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	if _, err := app.Parse(args); err != nil {
		if strings.HasPrefix(oneLine(err), "unexpected ") {
			err = fmt.Errorf("%w (boolean flags take no value: use --flag or --no-flag)", err)
		}
		return settings{}, err
	}
	return f.settings()
}

// listen opens every listen address.
func listen(addrs []string) ([]net.Listener, error) {
	listeners := make([]net.Listener, 0, len(addrs))
	for _, addr := range addrs {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			closeAll(listeners)
			return nil, err
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

func closeAll(listeners []net.Listener) {
	for _, l := range listeners {
		_ = l.Close()
	}
}

// oneLine keeps an error message on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
