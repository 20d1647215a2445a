package adapter

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-kit/log"
	"github.com/prometheus/common/model"
)

// benchSet returns groups × perGroup targets labelled like Consul instances.
func benchSet(groups, perGroup int) map[Key]*Group {
	set := make(map[Key]*Group, groups)
	for g := range groups {
		src := fmt.Sprintf("svc-%05d", g)
		grp := &Group{Source: src, Labels: model.LabelSet{"__meta_consul_service": model.LabelValue(src)}}
		for i := range perGroup {
			grp.Targets = append(grp.Targets, model.LabelSet{
				model.AddressLabel:            model.LabelValue(fmt.Sprintf("127.0.%d.%d:%d", i/250, i%250+1, 10000+g)),
				"__meta_consul_node":          model.LabelValue(fmt.Sprintf("node-%d", i)),
				"__meta_consul_service_id":    model.LabelValue(fmt.Sprintf("%s-%d", src, i)),
				"__meta_consul_tags":          ",prod,v1,",
				"__meta_consul_health":        "passing",
				"__meta_consul_dc":            "dc1",
				"__meta_consul_service_port":  model.LabelValue(fmt.Sprint(10000 + g)),
				"__meta_consul_metadata_rack": "r1",
			})
		}
		set[Key{"consul", src}] = grp
	}
	return set
}

var benchSizes = []struct{ groups, perGroup int }{{100, 10}, {1000, 10}, {10000, 10}}

// BenchmarkUpdateOneChanged is the steady state: a full set in which one
// group changed, converted, diffed, rendered and written atomically.
func BenchmarkUpdateOneChanged(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("targets=%d", size.groups*size.perGroup), func(b *testing.B) {
			w, err := newWriter(filepath.Join(b.TempDir(), "out.json"), 0, 0o644, log.NewNopLogger())
			if err != nil {
				b.Fatal(err)
			}
			m := newManager(map[string]bool{"consul": false}, 1, 0)
			groups := benchSet(size.groups, size.perGroup)
			all := make([]*Group, 0, len(groups))
			for _, g := range groups {
				all = append(all, g)
			}
			m.receive(time.Now(), "consul", all)
			if _, err := w.write(w.render(m.groups), nil); err != nil {
				b.Fatal(err)
			}
			orig := groups[Key{"consul", "svc-00000"}]
			changed := &Group{Source: orig.Source, Labels: orig.Labels, Targets: orig.Targets[1:]}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				// What the adapter does per change: encode the changed group,
				// render the set and write it.
				g := changed
				if i%2 == 1 {
					g = orig
				}
				m.receive(time.Now(), "consul", []*Group{g})
				if _, err := w.write(w.render(m.groups), nil); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(w.onDisk.size), "file-bytes")
			// What the adapter keeps between rewrites: each group's encoding.
			held := 0
			for _, e := range m.groups {
				held += cap(e.chunks[0])
			}
			b.ReportMetric(float64(held), "held-bytes")
		})
	}
}

// BenchmarkUpdateAllChanged converts and writes everything: the first write,
// or a restart.
func BenchmarkUpdateAllChanged(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("targets=%d", size.groups*size.perGroup), func(b *testing.B) {
			dir := b.TempDir()
			groups := benchSet(size.groups, size.perGroup)
			all := make([]*Group, 0, len(groups))
			for _, g := range groups {
				all = append(all, g)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				w, err := newWriter(filepath.Join(dir, "out.json"), 0, 0o644, log.NewNopLogger())
				if err != nil {
					b.Fatal(err)
				}
				w.onDisk = nil // force the write
				m := newManager(map[string]bool{"consul": false}, 1, 0)
				m.receive(time.Now(), "consul", all)
				if _, err := w.write(w.render(m.groups), nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
