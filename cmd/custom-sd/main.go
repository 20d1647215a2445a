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
	"github.com/hashicorp/consul/api"
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
	consulServer    string
	consulTokenFile string
	consulDC        string
	tagSeparator    string
	waitTime        time.Duration
	maxConnections  int
	allowStale      bool
	outputFile      string
	outputMode      string
	outputInterval  time.Duration
	logLevel        string
	logFormat       string
	listenAddresses []string
	webConfigFile   string
}

func newApp(f *flags) *kingpin.Application {
	app := kingpin.New(name, "Keeps a Prometheus file_sd file in step with Consul's catalog.")
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')

	app.Flag("consul.server", "Consul agent address: host:port, or a URL such as https://host:8501.").
		Default("localhost:8500").Envar("CONSUL_HTTP_ADDR").StringVar(&f.consulServer)
	app.Flag("consul.token-file", "File holding the Consul ACL token (otherwise CONSUL_HTTP_TOKEN, if set).").
		Envar("CONSUL_HTTP_TOKEN_FILE").StringVar(&f.consulTokenFile)
	app.Flag("consul.datacenter", "Datacenter to query (default: the agent's own).").StringVar(&f.consulDC)
	app.Flag("consul.tag-separator", "Separator that joins tags in __meta_consul_tags, also put at both ends.").
		Default(consul.DefaultTagSeparator).StringVar(&f.tagSeparator)
	durationFlag(app, "consul.wait-time", "How long Consul may hold a blocking query (at most 10m).",
		consul.DefaultWaitTime, &f.waitTime)
	intFlag(app, "consul.max-connections", "Most connections held to the Consul agent; keep it well below the agent's limits.http_max_conns_per_client (200).",
		consul.DefaultMaxConnections, &f.maxConnections)
	app.Flag("consul.allow-stale", "Let any Consul server answer reads, not only the leader.").
		Default("true").BoolVar(&f.allowStale)
	app.Flag("output.file", "The file_sd file to write.").Default("custom_sd.json").StringVar(&f.outputFile)
	app.Flag("output.mode", "Permission bits of the output file, in octal.").Default("0644").StringVar(&f.outputMode)
	durationFlag(app, "output.interval", "Coalescing window: a change after a quiet period is written at once, later ones at most once per interval.",
		adapter.DefaultInterval, &f.outputInterval)
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
	mode, apiConf, err := f.validate()
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", name, oneLine(err))
		return 2
	}
	logger := newLogger(stderr, f.logFormat, f.logLevel)

	d, err := consul.New(consul.Config{
		API:            apiConf,
		TagSeparator:   f.tagSeparator,
		WaitTime:       f.waitTime,
		MaxConnections: f.maxConnections,
		AllowStale:     f.allowStale,
		Logger:         log.With(logger, "component", "consul"),
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %v\n", name, oneLine(err))
		return 2
	}
	a, err := adapter.New(f.outputFile, map[string]adapter.Discoverer{provider: d}, adapter.Options{
		Logger:   logger,
		FileMode: mode,
		Interval: f.outputInterval,
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
		Provider: provider,
		Version:  version.Info(),
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

// validate checks what kingpin cannot and builds the Consul client config.
// Errors name the flag.
func (f *flags) validate() (os.FileMode, api.Config, error) {
	mode, err := strconv.ParseUint(f.outputMode, 8, 32)
	if err != nil || mode > 0o777 {
		return 0, api.Config{}, fmt.Errorf("--output.mode: %q is not an octal permission such as 0644", f.outputMode)
	}
	if f.outputFile == "" {
		return 0, api.Config{}, errors.New("--output.file: must not be empty")
	}
	if fi, err := os.Stat(f.outputFile); err == nil && fi.IsDir() {
		return 0, api.Config{}, fmt.Errorf("--output.file: %s is a directory", f.outputFile)
	}
	if f.outputInterval <= 0 {
		return 0, api.Config{}, fmt.Errorf("--output.interval: %s is not positive", f.outputInterval)
	}
	if f.waitTime <= 0 || f.waitTime > 10*time.Minute {
		return 0, api.Config{}, fmt.Errorf("--consul.wait-time: %s is not between 0 and 10m", f.waitTime)
	}
	if f.maxConnections < consul.MinConnections {
		return 0, api.Config{}, fmt.Errorf("--consul.max-connections: %d is below the minimum of %d", f.maxConnections, consul.MinConnections)
	}
	if f.tagSeparator == "" {
		return 0, api.Config{}, errors.New("--consul.tag-separator: must not be empty")
	}
	if len(f.listenAddresses) == 0 {
		return 0, api.Config{}, errors.New("--web.listen-address: at least one address is needed")
	}
	for _, addr := range f.listenAddresses {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return 0, api.Config{}, fmt.Errorf("--web.listen-address: %w", err)
		}
	}
	if f.webConfigFile != "" {
		if err := toolkit.Validate(f.webConfigFile); err != nil {
			return 0, api.Config{}, fmt.Errorf("--web.config.file: %s: %w", f.webConfigFile, err)
		}
	}
	if f.consulServer == "" {
		return 0, api.Config{}, errors.New("--consul.server: must not be empty")
	}
	if scheme, _, ok := strings.Cut(f.consulServer, "://"); ok && scheme != "http" && scheme != "https" {
		return 0, api.Config{}, fmt.Errorf("--consul.server: scheme %q is not http or https", scheme)
	}

	// The defaults read CONSUL_HTTP_TOKEN(_FILE), CONSUL_HTTP_SSL and the TLS
	// variables the consul CLI reads.
	conf := *api.DefaultConfig()
	conf.Address = f.consulServer
	conf.Datacenter = f.consulDC
	if f.consulTokenFile != "" {
		b, err := os.ReadFile(f.consulTokenFile)
		if err != nil {
			return 0, api.Config{}, fmt.Errorf("--consul.token-file: %w", err)
		}
		conf.Token = strings.TrimSpace(string(b))
		if conf.Token == "" {
			return 0, api.Config{}, fmt.Errorf("--consul.token-file: %s is empty", f.consulTokenFile)
		}
	}
	conf.TokenFile = "" // read above; never read again behind our back
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
