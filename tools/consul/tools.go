//go:build tools

// Package tools pins the Consul server that the tests and the demo run.
// It is a separate module so the daemon's go.mod stays free of Consul's
// server dependencies.
package tools

import _ "github.com/hashicorp/consul"
