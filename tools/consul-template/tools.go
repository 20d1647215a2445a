//go:build tools

// Package tools pins consul-template, which `make compare` measures
// custom-sd against. It is its own module so that its dependencies never
// reach custom-sd's go.mod. `make alternatives` builds it into the cache.
package tools

import _ "github.com/hashicorp/consul-template"
