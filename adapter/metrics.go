package adapter

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the adapter's own metrics. The Adapter is a
// prometheus.Collector for them.
type metrics struct {
	writes     *prometheus.CounterVec
	lastWrite  prometheus.Gauge
	lastSync   prometheus.Gauge
	targets    prometheus.Gauge
	groups     prometheus.Gauge
	fileBytes  prometheus.Gauge
	skipped    prometheus.Counter
	updates    prometheus.CounterFunc
	syncs      prometheus.CounterFunc
	coalesced  prometheus.CounterFunc
	collectors []prometheus.Collector

	guardHolding prometheus.Gauge
	guardHolds   prometheus.Counter
	guardRemoved prometheus.Gauge
}

func newMetrics(m *Manager) *metrics {
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
			Help: "Targets in the current complete set, as served by HTTP SD and written to the file.",
		}),
		groups: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_target_groups",
			Help: "Target groups (one per Consul service) in the current complete set.",
		}),
		fileBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "custom_sd_file_bytes",
			Help: "Size of the current complete set, as written to the file.",
		}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "custom_sd_targets_skipped_total",
			Help: "Targets left out because Prometheus would reject them (no address, invalid label).",
		}),
		updates: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "custom_sd_updates_received_total",
			Help: "Updates the discoverers sent to the manager.",
		}, func() float64 { u, _ := m.Stats(); return float64(u) }),
		syncs: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "custom_sd_syncs_total",
			Help: "Complete sets the manager handed to the writer.",
		}, func() float64 { _, s := m.Stats(); return float64(s) }),
		coalesced: prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "custom_sd_updates_coalesced_total",
			Help: "Updates merged into a later hand-out instead of causing one of their own.",
		}, func() float64 { u, s := m.Stats(); return float64(u - min(u, s)) }),
	}
	x.guardHolding = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "custom_sd_removal_guard_holding",
		Help: "1 while an update that would remove more than --output.max-removal of the targets is held back, else 0.",
	})
	x.guardHolds = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "custom_sd_removal_guard_holds_total",
		Help: "Times an update was held back for removing too many targets at once.",
	})
	x.guardRemoved = prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "custom_sd_removal_guard_held_targets",
		Help: "Targets the held-back update would remove; 0 when nothing is held.",
	})
	for _, r := range []string{"success", "failure"} {
		x.writes.WithLabelValues(r)
	}
	x.collectors = []prometheus.Collector{x.writes, x.lastWrite, x.lastSync, x.targets, x.groups, x.fileBytes, x.skipped, x.updates, x.syncs, x.coalesced, x.guardHolding, x.guardHolds, x.guardRemoved}
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
