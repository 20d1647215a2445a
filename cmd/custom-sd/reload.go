package main

import (
	"os"
	"sync"
	"time"

	"github.com/go-kit/log"
	"github.com/go-kit/log/level"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/custom-sd/custom-sd/internal/supervisor"
)

// reloader reloads the configuration on SIGHUP and POST /-/reload: the
// configuration file, or the command line's one job, resolved again, so
// that the files it names (token, password, TLS) are read and checked
// again too. A configuration that does not load, or whose parts do not
// build, changes nothing (see supervisor.Apply).
type reloader struct {
	mu          sync.Mutex // one reload at a time
	s           settings
	sup         *supervisor.Supervisor
	logger      log.Logger
	successful  prometheus.Gauge
	successTime prometheus.Gauge
}

func newReloader(s settings, sup *supervisor.Supervisor, logger log.Logger, reg prometheus.Registerer) *reloader {
	r := &reloader{
		s: s, sup: sup, logger: logger,
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

// reload loads the configuration again and applies it.
func (r *reloader) reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	start := time.Now()
	cfg, err := r.s.load()
	if err == nil {
		r.s.warn(r.logger, cfg)
		err = r.sup.Apply(cfg)
	}
	source := r.s.configFile
	if source == "" {
		source = "the command line"
	}
	if err != nil {
		r.successful.Set(0)
		level.Error(r.logger).Log("msg", "Error reloading the configuration; keeping the running configuration", "source", source, "err", oneLine(err))
		return err
	}
	r.successful.Set(1)
	r.successTime.SetToCurrentTime()
	level.Info(r.logger).Log("msg", "Completed loading of configuration", "source", source, "jobs", len(cfg.Jobs), "took", time.Since(start))
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
