// Command custom-sd keeps a Prometheus file_sd file in step with Consul.
//
// It watches Consul's catalog with blocking queries and rewrites the file
// atomically whenever the targets change, so Prometheus scrapes exactly what
// Consul knows. See README.md for flags and labels.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/version"
	toolkit "github.com/prometheus/exporter-toolkit/web"
	sloggokit "github.com/tjhop/slog-gokit"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/sd/consul"
	"github.com/custom-sd/custom-sd/web"
)

const name = "custom-sd"

// provider is the name the Consul discoverer runs under in the adapter.
const provider = "consul"

// DefaultListenAddress is where the HTTP side listens unless told otherwise.
const DefaultListenAddress = ":9099"

// shutdownTimeout bounds how long in-flight HTTP requests may delay exit.
const shutdownTimeout = 5 * time.Second

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stderr))
}

// flags holds the parsed command line.
type flags struct {
	consul          consulFlags
	outputFile      string
	outputMode      string
	outputInterval  time.Duration
	maxRemoval      float64
	shards          int
	shard           int
	removalHold     time.Duration
	logLevel        string
	logFormat       string
	listenAddresses []string
	webConfigFile   string
}

func newApp(f *flags) *kingpin.Application {
	app := kingpin.New(name, "Keeps a Prometheus file_sd file in step with Consul's catalog.")
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')

	f.consul.register(app)
	app.Flag("output.file", "The file_sd file to write.").Default("custom_sd.json").StringVar(&f.outputFile)
	app.Flag("output.mode", "Permission bits of the output file, in octal.").Default("0644").StringVar(&f.outputMode)
	durationFlag(app, "output.interval", "Coalescing window: a change after a quiet period is written at once, later ones at most once per interval.",
		adapter.DefaultInterval, &f.outputInterval)
	ratioFlag(app, "output.max-removal", "Largest share of the targets one update may remove at once; a larger removal is held back for --output.removal-hold (an empty catalog from a token without rights, or a Consul rebuilt empty). 1 turns the guard off.",
		adapter.DefaultMaxRemoval, &f.maxRemoval)
	durationFlag(app, "output.removal-hold", "How long a large removal must last before it is applied.",
		adapter.DefaultRemovalHold, &f.removalHold)
	intFlag(app, "output.shards", "Split the targets by address into this many files, custom_sd.0.json, custom_sd.1.json..., matching Prometheus's hashmod relabelling on __address__.",
		1, &f.shards)
	intFlag(app, "output.shard", "With --output.shards, write only this shard (0 to shards-1), to --output.file as named; -1 writes every shard.",
		-1, &f.shard)
	app.Flag("web.listen-address", "Address for /metrics, /-/healthy, /-/ready and the HTTP SD endpoint /targets. Repeatable.").
		Default(DefaultListenAddress).StringsVar(&f.listenAddresses)
	app.Flag("web.config.file", "Prometheus web configuration file that enables TLS or basic auth on the HTTP side (exporter-toolkit format).").
		Default("").StringVar(&f.webConfigFile)
	enumFlag(app, "log.level", "Only log messages at or above this level: debug, info, warn or error.", "info", &f.logLevel, "debug", "info", "warn", "error")
	enumFlag(app, "log.format", "Log format: logfmt or json.", "logfmt", &f.logFormat, "logfmt", "json")
	return app
}

// run parses args, runs until ctx is cancelled or a signal arrives, and
// returns the exit code: 0 after a clean stop, 2 for bad flags, 1 otherwise.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	var f flags
	app := newApp(&f)
	app.UsageWriter(stderr)
	app.ErrorWriter(stderr)
	if _, err := app.Parse(args); err != nil {
		msg := oneLine(err)
		if strings.HasPrefix(msg, "unexpected ") {
			msg += " (boolean flags take no value: use --flag or --no-flag)"
		}
		fmt.Fprintf(stderr, "%s: error: %s\n", name, msg)
		return 2
	}
	mode, consulConf, err := f.validate()
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", name, oneLine(err))
		return 2
	}
	logger := newLogger(stderr, f.logFormat, f.logLevel)

	consulConf.Logger = log.With(logger, "component", "consul")
	d, err := consul.New(consulConf)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", name, oneLine(err))
		return 2
	}
	a, err := adapter.New(f.outputFile, map[string]adapter.Discoverer{provider: d}, adapter.Options{
		Logger:      logger,
		FileMode:    mode,
		Interval:    f.outputInterval,
		MaxRemoval:  f.maxRemoval,
		RemovalHold: f.removalHold,
		Shards:      f.shards,
		OneShard:    f.shard >= 0,
		Shard:       f.shard,
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: --output.file: %v\n", name, oneLine(err))
		return 2
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("custom_sd"),
		d, a,
	)
	handler, err := web.NewHandler(web.Options{
		Registry: reg,
		Ready:    a.Ready,
		Targets:  a.Targets,
		ServiceOf: func(k adapter.Key) string {
			if k.Provider != provider {
				return ""
			}
			return consul.ServiceOf(k.Source)
		},
		Version: version.Info(),
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", name, oneLine(err))
		return 1
	}
	// Listen before anything starts, so a port in use fails at once.
	listeners := make([]net.Listener, 0, len(f.listenAddresses))
	defer func() {
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	for _, addr := range f.listenAddresses {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			fmt.Fprintf(stderr, "%s: error: --web.listen-address: %v\n", name, oneLine(err))
			return 1
		}
		listeners = append(listeners, l)
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	level.Info(logger).Log("msg", "Starting custom-sd", "version", version.Info(), "output", f.outputFile)

	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	webLogger := slog.New(sloggokit.NewGoKitHandler(log.With(logger, "component", "web"), slog.LevelDebug))
	webFlags := &toolkit.FlagConfig{
		WebListenAddresses: &f.listenAddresses,
		WebSystemdSocket:   new(bool),
		WebConfigFile:      &f.webConfigFile,
	}
	webErr := make(chan error, 1)
	go func() { webErr <- toolkit.ServeMultiple(listeners, srv, webFlags, webLogger) }()

	runCtx, cancelRun := context.WithCancel(ctx)
	defer cancelRun()
	runErr := make(chan error, 1)
	go func() { runErr <- a.Run(runCtx) }()

	// Run until a signal, or until the adapter or the HTTP server fails.
	var failure error
	select {
	case <-ctx.Done():
	case failure = <-runErr:
		runErr = nil
	case err := <-webErr:
		failure = fmt.Errorf("HTTP server: %w", err)
	}
	cancelRun()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		level.Warn(logger).Log("msg", "HTTP server did not shut down cleanly", "err", err)
	}
	if runErr != nil {
		if err := <-runErr; err != nil && failure == nil {
			failure = err
		}
	}
	if failure != nil {
		level.Error(logger).Log("msg", "Stopped with an error", "err", failure)
		return 1
	}
	level.Info(logger).Log("msg", "Stopped", "writes", a.Writes())
	return 0
}

// validate checks what kingpin cannot and builds the Consul discoverer's
// config. Errors name the flag.
func (f *flags) validate() (os.FileMode, consul.Config, error) {
	mode, err := strconv.ParseUint(f.outputMode, 8, 32)
	if err != nil || mode > 0o777 {
		return 0, consul.Config{}, fmt.Errorf("--output.mode: %q is not an octal permission such as 0644", f.outputMode)
	}
	if f.outputFile == "" {
		return 0, consul.Config{}, errors.New("--output.file: must not be empty")
	}
	if fi, err := os.Stat(f.outputFile); err == nil && fi.IsDir() {
		return 0, consul.Config{}, fmt.Errorf("--output.file: %s is a directory", f.outputFile)
	}
	if f.outputInterval <= 0 {
		return 0, consul.Config{}, fmt.Errorf("--output.interval: %s is not positive", f.outputInterval)
	}
	if f.shards < 1 {
		return 0, consul.Config{}, fmt.Errorf("--output.shards: %d is not at least 1", f.shards)
	}
	if f.shard < -1 || f.shard >= f.shards || f.shard >= 0 && f.shards == 1 {
		return 0, consul.Config{}, fmt.Errorf("--output.shard: %d is not -1 or a shard from 0 to %d (set --output.shards)", f.shard, f.shards-1)
	}
	if f.removalHold <= 0 {
		return 0, consul.Config{}, fmt.Errorf("--output.removal-hold: %s is not positive", f.removalHold)
	}
	if len(f.listenAddresses) == 0 {
		return 0, consul.Config{}, errors.New("--web.listen-address: at least one address is needed")
	}
	for _, addr := range f.listenAddresses {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return 0, consul.Config{}, fmt.Errorf("--web.listen-address: %w", err)
		}
	}
	if f.webConfigFile != "" {
		if err := toolkit.Validate(f.webConfigFile); err != nil {
			return 0, consul.Config{}, fmt.Errorf("--web.config.file: %s: %w", f.webConfigFile, err)
		}
	}
	conf, err := f.consul.config()
	if err != nil {
		return 0, consul.Config{}, err
	}
	return os.FileMode(mode), conf, nil
}

func newLogger(w io.Writer, format, lvl string) log.Logger {
	var l log.Logger
	if format == "json" {
		l = log.NewJSONLogger(log.NewSyncWriter(w))
	} else {
		l = log.NewLogfmtLogger(log.NewSyncWriter(w))
	}
	l = level.NewFilter(l, level.Allow(level.ParseDefault(lvl, level.InfoValue())))
	return log.With(l, "ts", log.DefaultTimestampUTC, "caller", log.DefaultCaller)
}

// oneLine keeps an error message on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
