//go:build tools

// Package tools pins the Prometheus server and promtool that the end-to-end
// tests and `make demo` run, and the Prometheus custom-sd example adapter
// that `make compare` measures custom-sd against. It is its own module so
// that Prometheus's dependencies never reach custom-sd's go.mod.
// `make prometheus` and `make alternatives` build them into the cache.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
	_ "github.com/prometheus/prometheus/documentation/examples/custom-sd/adapter-usage"
)
