package adapter

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the adapter's own metrics. The Adapter is a
// prometheus.Collector for them.
type metrics struct {
	writes       *prometheus.CounterVec
	lastWrite    prometheus.Gauge
	lastSync     prometheus.Gauge
	targets      prometheus.Gauge
	groups       prometheus.Gauge
	fileBytes    prometheus.Gauge
	skipped      prometheus.Counter
	guardHolding prometheus.Gauge
	guardHolds   prometheus.Counter
	guardRemoved prometheus.Gauge
	collectors   []prometheus.Collector
}

func newMetrics(m *manager, ready func() bool) *metrics {
	x := &metrics{
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "custom_sd_file_writes_total",
			Help: "Writes of the output file, by result (success or failure). Unchanged content is not written.",
		}, []string{"result"}),
		lastWrite: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_file_last_write_success_timestamp_seconds",
			Help: "When the output file was last written successfully, in Unix seconds; 0 before the first write.",
		}),
		lastSync: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_last_sync_timestamp_seconds",
			Help: "When the output last matched the discovered targets (written, or found already equal), in Unix seconds.",
		}),
		targets: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_targets",
			Help: "Targets in the current complete set, as written to the file and served by HTTP SD.",
		}),
		groups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_target_groups",
			Help: "Target groups (sources) in the current complete set.",
		}),
		fileBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_file_bytes",
			Help: "Size of the current complete set, as written to the file.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custom_sd_targets_skipped_total",
			Help: "Targets left out because Prometheus would reject them (no address, invalid label).",
		}),
		guardHolding: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_removal_guard_holding",
			Help: "1 while an update that would remove more than the allowed share of the targets is held back, else 0.",
		}),
		guardHolds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custom_sd_removal_guard_holds_total",
			Help: "Times an update was held back for removing too many targets at once.",
		}),
		guardRemoved: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_removal_guard_held_targets",
			Help: "Targets the held-back update would remove; 0 when nothing is held.",
		}),
	}
	updates := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "custom_sd_updates_received_total",
		Help: "Updates the discoverers sent.",
	}, func() float64 { return float64(m.updates.Load()) })
	syncs := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "custom_sd_syncs_total",
		Help: "Complete sets handed to the output.",
	}, func() float64 { return float64(m.handOuts.Load()) })
	early := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "custom_sd_syncs_early_total",
		Help: "Complete sets handed to the output within a burst's pacing gap, because the discoverer said it had settled.",
	}, func() float64 { return float64(m.early.Load()) })
	coalesced := prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "custom_sd_updates_coalesced_total",
		Help: "Updates merged into a later hand-out instead of causing one of their own.",
	}, func() float64 { u, h := m.updates.Load(), m.handOuts.Load(); return float64(u - min(u, h)) })
	readyGauge := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "custom_sd_ready",
		Help: "1 once the output holds a complete set (written, or found already equal), else 0.",
	}, func() float64 { return oneIf(ready()) })
	for _, r := range []string{"success", "failure"} {
		x.writes.WithLabelValues(r)
	}
	x.collectors = []prometheus.Collector{readyGauge, x.writes, x.lastWrite, x.lastSync, x.targets, x.groups, x.fileBytes, x.skipped,
		updates, syncs, early, coalesced, x.guardHolding, x.guardHolds, x.guardRemoved}
	return x
}

// Describe implements prometheus.Collector.
func (a *Adapter) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range a.metrics.collectors {
		c.Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (a *Adapter) Collect(ch chan<- prometheus.Metric) {
	for _, c := range a.metrics.collectors {
		c.Collect(ch)
	}
}

func oneIf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
