package config

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// aliasBomb returns a document whose aliases expand to 10^levels values.
func aliasBomb(levels int, merge bool) string {
	var b strings.Builder
	b.WriteString("a0: &a0 [x]\n")
	for i := 1; i <= levels; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d, ", i-1), 10), ", ")
		if merge {
			fmt.Fprintf(&b, "m%d: &a%d {<<: [%s]}\n", i, i, refs)
		} else {
			fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, refs)
		}
	}
	fmt.Fprintf(&b, "jobs:\n  - name: a\n    services: *a%d\n", levels)
	return b.String()
}

// TestParseBoundsAliases: a document whose aliases expand exponentially
// is refused, without being expanded, whether it hides in a known key, an
// unknown one or a merge.
func TestParseBoundsAliases(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"a list bomb under a known key", "jobs:\n  - name: a\n    services: &s [" + strings.Repeat("x, ", 9) + "x]\n" + nested("services", 30), "jobs[n0].services[0]: line 3: takes a single value, not a list"},
		{"a list bomb under an unknown key", aliasBomb(22, false), "a0: line 1: unknown key"},
		{"a merge bomb", "jobs:\n  - &j0 {name: a}\n" + mergeBomb(22), "values (through YAML aliases)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			require.Error(t, err)
			require.Contains(t, err.Error(), tc.want)
			require.NotContains(t, err.Error(), "\n")
		})
	}
}

// nested returns jobs whose services alias a list of lists, levels deep.
func nested(key string, levels int) string {
	var b strings.Builder
	prev := "s"
	for i := range levels {
		fmt.Fprintf(&b, "  - name: n%d\n    %s: &s%d [%s]\n", i, key, i, strings.TrimSuffix(strings.Repeat("*"+prev+", ", 10), ", "))
		prev = fmt.Sprintf("s%d", i)
	}
	return b.String()
}

// mergeBomb returns jobs each merging the previous one ten times.
func mergeBomb(levels int) string {
	var b strings.Builder
	for i := 1; i <= levels; i++ {
		fmt.Fprintf(&b, "  - &j%d {<<: [%s]}\n", i, strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*j%d, ", i-1), 10), ", "))
	}
	return b.String()
}

// FuzzParse: no input panics the decoder, and each is decoded or refused
// with one line; the alias bound keeps each bounded in time and memory.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		"consul: {server: 127.0.0.1:8500}\njobs: [{name: a, services: [web], output: {file: a.json, mode: '0644'}}]\n",
		"consuls: {east: {tls_config: {ca_file: ca.pem}}}\njobs: [{name: a, consul: east, node_meta: {rack: a}}]\n",
		"jobs: [{name: a}]\n---\njobs: []\n",
		"x: &x {name: a}\njobs: [*x, {<<: *x}]\n",
		aliasBomb(6, true),
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			require.NotContains(t, err.Error(), "\n", "one line")
			return
		}
		_, err = file.Resolve(t.TempDir())
		if err != nil {
			require.NotContains(t, err.Error(), "\n", "one line")
		}
	})
}
