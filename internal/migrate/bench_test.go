package migrate

import (
	"fmt"
	"strings"
	"testing"
)

// manyJobs is a configuration of n scrape jobs with consul_sd_configs in
// block style, each with a relabel rule and a relative path, as a large
// Prometheus server has them.
func manyJobs(n int) []byte {
	var b strings.Builder
	b.WriteString("global:\n  scrape_interval: 30s\nscrape_configs:\n")
	for i := range n {
		fmt.Fprintf(&b, `  - job_name: job-%d
    consul_sd_configs:
      - server: consul-%d.internal:8500
        services: [svc-%d]
    tls_config:
      ca_file: certs/ca.pem
    relabel_configs:
      - source_labels: [__meta_consul_tags]
        regex: .*,prod,.*
        action: keep
`, i, i%10, i)
	}
	return []byte(b.String())
}

func BenchmarkConvert(b *testing.B) {
	for _, n := range []int{100, 1000, 5000} {
		src := manyJobs(n)
		b.Run(fmt.Sprintf("%d scrape jobs", n), func(b *testing.B) {
			for b.Loop() {
				if _, err := Convert(src, Options{Input: "p.yml", Dir: "/p", Out: "/out"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
