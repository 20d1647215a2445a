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
	"net"
	"net/http"
	"os"
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
	toolkit "github.com/prometheus/exporter-toolkit/web"

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

// run parses args, runs until ctx is cancelled or a signal arrives, and
// returns the exit code: 0 after a clean stop, 2 for bad flags, 1 otherwise.
func run(ctx context.Context, args []string, stderr io.Writer) int {
	s, err := parse(args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err))
		return 2
	}
	base, logger := newLogger(stderr, s.logFormat, s.logLevel)
	s.consul.Logger = log.With(logger, "component", "consul")
	s.adapter.Logger = logger
	d, err := consul.New(s.consul)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(flagError(err)))
		return 2
	}
	var disc adapter.Discoverer = d
	if s.shard >= 0 {
		disc = adapter.OnlyShard(d, s.shard, s.shardCount)
	}
	a, err := adapter.New(s.output, map[string]adapter.Discoverer{provider: disc}, s.adapter)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: --output.file: %s\n", name, oneLine(err))
		return 2
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("custom_sd"), d, a)
	handler, err := web.NewHandler(web.Options{
		Registry: reg, Ready: a.Ready, Targets: a.Snapshot, Version: version.Info(),
		ServiceOf: func(k adapter.Key) string { return consul.ServiceOf(k.Source) },
	})
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: %s\n", name, oneLine(err))
		return 1
	}
	// Listen before anything starts, so a port in use fails at once.
	listeners, err := listen(s.listen)
	if err != nil {
		fmt.Fprintf(stderr, "%s: error: --web.listen-address: %s\n", name, oneLine(err))
		return 1
	}
	level.Info(logger).Log("msg", "Starting custom-sd", "version", version.Info(), "output", s.output)

	var g oklog.Group
	g.Add(oklog.SignalHandler(ctx, os.Interrupt, syscall.SIGTERM))
	runCtx, stop := context.WithCancel(context.Background())
	g.Add(func() error { a.Run(runCtx); return nil }, func(error) { stop() })
	srv := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second}
	g.Add(func() error {
		err := toolkit.ServeMultiple(listeners, srv, &toolkit.FlagConfig{
			WebListenAddresses: &s.listen, WebSystemdSocket: new(bool), WebConfigFile: &s.webConfig,
		}, slogLogger(base, "web"))
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		return fmt.Errorf("HTTP server: %w", err)
	}, func(error) {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			level.Warn(logger).Log("msg", "HTTP server did not shut down cleanly", "err", err)
		}
	})
	if err := g.Run(); err != nil && !errors.As(err, new(oklog.SignalError)) && ctx.Err() == nil {
		level.Error(logger).Log("msg", "Stopped with an error", "err", err)
		return 1
	}
	level.Info(logger).Log("msg", "Stopped")
	return 0
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
			for _, l := range listeners {
				_ = l.Close()
			}
			return nil, err
		}
		listeners = append(listeners, l)
	}
	return listeners, nil
}

// oneLine keeps an error message on one line.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
