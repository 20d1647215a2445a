package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	toolkit "github.com/prometheus/exporter-toolkit/web"

	"github.com/custom-sd/custom-sd/web"
)

// serve returns the HTTP server as an actor: it serves handler on every
// listener within web.NewServer's timeouts, and at most
// --web.max-connections connections at a time across the listeners.
func serve(s settings, listeners []net.Listener, handler http.Handler, base, logger log.Logger) (func() error, func(error)) {
	srv := web.NewServer(handler)
	listeners = web.LimitListeners(listeners, s.maxConns)
	return func() error {
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
		}
}
