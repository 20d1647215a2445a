package migrate

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// mergeBomb is a consul_sd_configs entry that merges the level below
// twice, levels deep: a few hundred bytes that expand to 2^levels
// mappings.
func mergeBomb(levels int) string {
	var b strings.Builder
	b.WriteString("anchors:\n  - &a0 {server: 'c:8500'}\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  - &a%d {<<: [*a%d, *a%d]}\n", i, i-1, i-1)
	}
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: bomb\n    consul_sd_configs: [*a%d]\n", levels)
	return b.String()
}

// laughs is the "billion laughs": each level a list of ten aliases of the
// level below, levels deep, as the services of an entry.
func laughs(levels int) string {
	var b strings.Builder
	b.WriteString("anchors:\n  - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  - &l%d [%s]\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 10), ", "))
	}
	fmt.Fprintf(&b, "scrape_configs:\n  - job_name: bomb\n    consul_sd_configs: [{services: *l%d}]\n", levels)
	return b.String()
}

// TestAliasBomb: a document whose aliases expand it beyond reason is
// refused with one line, before anything expands it (BenchmarkAliasBomb
// shows how long that takes).
func TestAliasBomb(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"merge keys, 22 levels", mergeBomb(22), "prometheus.yml: aliases: line 21: alias *a18 expands to more than 1000000 nodes"},
		{"merge keys, 64 levels", mergeBomb(64), "prometheus.yml: aliases: line 21: alias *a18 expands to more than 1000000 nodes"},
		{"billion laughs", laughs(8), "prometheus.yml: aliases: line 8: alias *l5 expands to more than 1000000 nodes"},
		{"many aliases, each small", "a: &a [" + strings.Repeat("x, ", 999) + "x]\nb: [" + strings.Repeat("*a, ", 1000) + "*a]\n",
			"prometheus.yml: aliases: expanded, the document has more than 1000000 nodes"},
		{"an anchor holding an alias to itself", "a: &a [x, *a]\n", "prometheus.yml: aliases: line 1: anchor &a holds an alias to itself"},
		{"aliasing yaml refuses, within the bound", "x: &a [" + strings.Repeat("abcdef, ", 999) + "x]\nscrape_configs:\n  - job_name: j\n    consul_sd_configs: [{}]\n    relabel_configs: [{source_labels: [" + strings.Repeat("*a, ", 900) + "*a]}]\n",
			"prometheus.yml: the edited configuration does not parse: document contains excessive aliasing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := convertString(t, tc.in, "")
			require.EqualError(t, err, tc.want)
		})
	}
}

// TestAliasesWithinBounds: anchors shared by many scrape jobs, through
// aliases and merge keys, are fine.
func TestAliasesWithinBounds(t *testing.T) {
	var b strings.Builder
	b.WriteString("scrape_configs:\n  - job_name: j0\n    consul_sd_configs: [&sd {server: 'c:8500', tags: [a, b]}]\n    relabel_configs: [{source_labels: &labels [__meta_consul_tags]}]\n")
	for i := 1; i < 500; i++ {
		fmt.Fprintf(&b, "  - job_name: j%d\n    consul_sd_configs: [{<<: *sd, services: [s%d]}, *sd]\n    relabel_configs: [{source_labels: *labels}]\n", i, i)
	}
	res, err := convertString(t, b.String(), "")
	require.NoError(t, err)
	require.Len(t, res.File.Jobs, 999)
	require.Equal(t, []string{"s499"}, res.File.Jobs[997].Services)
	require.Equal(t, []string{"a", "b"}, res.File.Jobs[998].Tags)
}

func BenchmarkAliasBomb(b *testing.B) {
	for _, levels := range []int{22, 64} {
		src := []byte(mergeBomb(levels))
		b.Run(fmt.Sprintf("merge keys, %d levels", levels), func(b *testing.B) {
			for b.Loop() {
				if _, err := Convert(src, Options{Input: "p.yml", Dir: "/p", Out: "/out"}); err == nil {
					b.Fatal("not refused")
				}
			}
		})
	}
}
