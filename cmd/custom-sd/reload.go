package main

import (
	"os"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custom-sd/custom-sd/internal/config"
)

// reloader reloads the configuration file on SIGHUP and POST /-/reload. A
// file that does not load keeps the running configuration.
type reloader struct {
	mu          sync.Mutex // one reload at a time
	path        string     // "" when the flags describe the job
	sup         *supervisor
	logger      log.Logger
	successful  prometheus.Gauge
	successTime prometheus.Gauge
}

func newReloader(path string, sup *supervisor, logger log.Logger, reg prometheus.Registerer) *reloader {
	r := &reloader{
		path: path, sup: sup, logger: logger,
		successful: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		successTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
	}
	reg.MustRegister(r.successful, r.successTime)
	r.successful.Set(1)
	r.successTime.SetToCurrentTime()
	return r
}

// reload loads the configuration file again and applies it.
func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.path == "" {
		level.Info(r.logger).Log("msg", "Asked to reload, but there is no configuration file: the flags describe the job")
		return nil
	}
	start := time.Now()
	cfg, err := config.Load(r.path)
	if err == nil {
		err = r.sup.apply(cfg)
	}
	if err != nil {
		r.successful.Set(0)
		level.Error(r.logger).Log("msg", "Error reloading the configuration file; keeping the running configuration", "file", r.path, "err", oneLine(err))
		return err
	}
	r.successful.Set(1)
	r.successTime.SetToCurrentTime()
	level.Info(r.logger).Log("msg", "Completed loading of configuration file", "file", r.path, "jobs", len(cfg.Jobs), "took", time.Since(start))
	return nil
}

// on returns the actor that reloads on each signal from hup (SIGHUP).
func (r *reloader) on(hup <-chan os.Signal) (func() error, func(error)) {
	done := make(chan struct{})
	return func() error {
			for {
				select {
				case <-hup:
					_ = r.reload() // logged
				case <-done:
					return nil
				}
			}
		}, func(error) {
			close(done)
		}
}
