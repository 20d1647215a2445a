//go:build tools

// Package tools pins the Prometheus server and promtool that the end-to-end
// tests and `make demo` run. It is its own module so that Prometheus's
// dependencies never reach custom-sd's go.mod. `make prometheus` builds both
// binaries into the cache.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
