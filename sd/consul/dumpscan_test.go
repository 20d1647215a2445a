package consul

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// referenceSumDump reads a node dump with encoding/json: what sumDump must
// read.
func referenceSumDump(body io.Reader, writes map[string]uint64) error {
	type node struct {
		Node     string
		Services []dumpService
	}
	dec := json.NewDecoder(body)
	if tok, err := dec.Token(); err != nil || tok != json.Delim('[') {
		return fmt.Errorf("not a list (%v)", err)
	}
	for dec.More() {
		var n node
		if err := dec.Decode(&n); err != nil {
			return err
		}
		for _, s := range n.Services {
			if s.PeerName == "" {
				writes[s.Service] += instanceWrite(n.Node, s.ID, s.ModifyIndex)
			}
		}
	}
	_, err := dec.Token()
	return err
}

// dumpOf builds a node dump as Consul writes it, with the fields a
// verification skips, pretty-printed or not.
func dumpOf(t testing.TB, nodes map[string][][4]any, indent bool) []byte {
	type svc struct {
		ID          string
		Service     string
		Tags        []string
		Meta        map[string]string
		Port        int
		Proxy       map[string]any
		PeerName    string
		CreateIndex uint64
		ModifyIndex uint64
	}
	type node struct {
		ID       string
		Node     string
		Meta     map[string]string
		Services []svc
		Checks   []map[string]any
	}
	var list []node
	for name, services := range nodes {
		n := node{Node: name, Meta: map[string]string{"a]\"{": "}[\\"}, Checks: []map[string]any{{"Output": "x\"]}", "Nested": []any{[]any{}, map[string]any{}}}}}
		for _, s := range services {
			n.Services = append(n.Services, svc{ID: s[0].(string), Service: s[1].(string), PeerName: s[2].(string), ModifyIndex: s[3].(uint64),
				Tags: []string{"t\\\"", "[{"}, Meta: map[string]string{"k": "v\u2028é"}, Port: 80, Proxy: map[string]any{"Expose": map[string]any{}, "N": nil, "B": true, "F": -1.5e3}})
		}
		list = append(list, n)
	}
	var b []byte
	var err error
	if indent {
		b, err = json.MarshalIndent(list, "", "    ")
	} else {
		b, err = json.Marshal(list)
	}
	require.NoError(t, err)
	return b
}

func TestSumDump(t *testing.T) {
	dump := dumpOf(t, map[string][][4]any{
		"node-0":       {{"web-0", "web", "", uint64(16)}, {"db-0", "db", "", uint64(17)}, {"imported", "web", "peer", uint64(3)}},
		"n\"ode-1é":    {{"web-1", "web", "", uint64(18446744073709551615)}, {"e\\sc\u00e9", "odd \"name\"", "", uint64(0)}},
		"node-2-empty": nil,
	}, true)
	tests := []struct {
		name string
		body string
		ok   bool
	}{
		{"a dump as Consul writes it", string(dump), true},
		{"compact", string(dumpOf(t, map[string][][4]any{"n": {{"a", "b", "", uint64(1)}}}, false)), true},
		{"empty", "[]", true},
		{"null nodes and lists", `[null, {"Node": null, "Services": null}, {"Node": "n", "Services": [null, {"ID": null, "ModifyIndex": null}]}]`, true},
		{"keys in another case", `[{"node": "n", "SERVICES": [{"id": "a", "service": "b", "modifyindex": 7, "peername": ""}]}]`, true},
		{"a repeated key: the last wins", `[{"Node": "x", "Node": "n", "Services": [{"ID": "a", "ID": "b", "Service": "s", "ModifyIndex": 1, "ModifyIndex": 2}]}]`, true},
		{"not a list", `{}`, false},
		{"cut short", string(dump[:len(dump)/2]), false},
		{"cut in a string", `[{"Node": "n`, false},
		{"a fraction for an index", `[{"Node": "n", "Services": [{"ModifyIndex": 1.5}]}]`, false},
		{"a negative index", `[{"Node": "n", "Services": [{"ModifyIndex": -1}]}]`, false},
		{"an index too large", `[{"Node": "n", "Services": [{"ModifyIndex": 18446744073709551616}]}]`, false},
		{"a string for an index", `[{"Node": "n", "Services": [{"ModifyIndex": "1"}]}]`, false},
		{"a number for a name", `[{"Node": 5}]`, false},
		{"a number for a node", `[5]`, false},
		{"an object for the services", `[{"Services": {}}]`, false},
		{"a control byte in a string", "[{\"Node\": \"a\x01\"}]", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			want, got := map[string]uint64{}, map[string]uint64{}
			wantErr := referenceSumDump(strings.NewReader(tc.body), want)
			err := sumDump(strings.NewReader(tc.body), got)
			require.Equal(t, tc.ok, wantErr == nil, "encoding/json: %v", wantErr)
			if !tc.ok {
				require.Error(t, err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, want, got)
		})
	}
}

// FuzzSumDump: whatever encoding/json reads from a node dump, sumDump reads
// the same; whatever the bytes, it does not panic. Repeated "Services" keys
// in one node are left out: encoding/json then reuses the instances it
// decoded first, which no dump of Consul's has.
func FuzzSumDump(f *testing.F) {
	f.Add(string(dumpOf(f, map[string][][4]any{"node-0": {{"web-0", "web", "", uint64(16)}}, "n1": {{"x", "y", "p", uint64(2)}}}, true)))
	f.Add(`[null, {"Node": null, "Services": [null, {"ID": "a\u00e9\"", "ModifyIndex": 0}]}]`)
	f.Add(`[{"node": "n", "SERVICES": [{"id": "a", "Service": "b", "ModifyIndex": 7, "Proxy": {"A": [1, "]", {}]}}]}]`)
	f.Fuzz(func(t *testing.T, body string) {
		got := map[string]uint64{}
		err := sumDump(strings.NewReader(body), got)
		if strings.Count(strings.ToLower(body), `"services"`) > 1 {
			return
		}
		want := map[string]uint64{}
		if referenceSumDump(strings.NewReader(body), want) != nil {
			return
		}
		require.NoError(t, err)
		require.Equal(t, want, got)
	})
}

// BenchmarkSumDump reads a node dump of 1,000 nodes with 10 instances each,
// pretty-printed as Consul's -dev agent writes it; DUMP names a file to
// read instead (a dump saved from an agent).
func BenchmarkSumDump(b *testing.B) {
	var body []byte
	if path := os.Getenv("DUMP"); path != "" {
		var err error
		body, err = os.ReadFile(path)
		require.NoError(b, err)
	} else {
		nodes := map[string][][4]any{}
		for n := range 1000 {
			for i := range 10 {
				name := fmt.Sprintf("node-%d", n)
				nodes[name] = append(nodes[name], [4]any{fmt.Sprintf("svc-%d-%d", n, i), fmt.Sprintf("svc-%d", n*10+i), "", uint64(n + i)})
			}
		}
		body = dumpOf(b, nodes, true)
	}
	for _, bc := range []struct {
		name string
		sum  func(io.Reader, map[string]uint64) error
	}{{"scanner", sumDump}, {"encoding-json", referenceSumDump}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := bc.sum(bytes.NewReader(body), map[string]uint64{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
