package adapter

import (
	"encoding/json"
	"path/filepath"
	"testing"
	"unicode/utf8"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

// FuzzFileSD feeds arbitrary label names, values and addresses through the
// conversion and rendering, and checks that the output is what Prometheus's
// file_sd loader accepts: valid JSON, label names of the classic pattern,
// UTF-8 values, and every target either written with its labels intact or
// reported as skipped.
//
//	go test -run '^$' -fuzz FuzzFileSD -fuzztime 10m ./adapter
func FuzzFileSD(f *testing.F) {
	f.Add("127.0.0.1:80", "__meta_consul_service", "web", "team", "a\"b\\c\n", "10.0.0.1:9100")
	f.Add("", "x", "y", "1abc", "v", "h:1")
	f.Add("[::1]:9090", "ünïcode", "\xff\xfe", "_ok", "\x00\x1f\u2028", "127.0.0.1:80")
	f.Add("a:1", "__address__", "b:2", "job", "", "a:1")
	f.Fuzz(func(t *testing.T, addr1, name1, value1, name2, value2, addr2 string) {
		g := &Group{
			Source:  "fuzz",
			Labels:  model.LabelSet{model.LabelName(name2): model.LabelValue(value2)},
			Targets: []model.LabelSet{{model.AddressLabel: model.LabelValue(addr1), model.LabelName(name1): model.LabelValue(value1)}, {model.AddressLabel: model.LabelValue(addr2)}},
		}
		enc, rejected := encode(g, 1)
		skipped := len(rejected)
		w := newTestWriter(t, filepath.Join(t.TempDir(), "out.json"), 0o644)
		data := w.render(map[Key]*encoded{{Provider: "p", Source: "fuzz"}: enc}).JSON()

		require.True(t, json.Valid(data), "valid JSON: %q", data)
		var entries []struct {
			Targets []string          `json:"targets"`
			Labels  map[string]string `json:"labels"`
		}
		require.NoError(t, json.Unmarshal(data, &entries))
		written := 0
		for _, e := range entries {
			require.NotEmpty(t, e.Targets)
			for _, tg := range e.Targets {
				require.NotEmpty(t, tg)
				require.True(t, utf8.ValidString(tg))
			}
			for n, v := range e.Labels {
				require.True(t, validLabelName(n), "label name %q", n)
				require.True(t, model.LegacyValidation.IsValidLabelName(n), "label name %q", n)
				require.True(t, utf8.ValidString(v))
			}
			written += len(e.Targets)
		}
		// Two targets in, each either written or skipped; the same address
		// with the same labels is written once.
		require.LessOrEqual(t, written+skipped, 2)
		require.GreaterOrEqual(t, written+skipped, 1)
		if skipped == 0 && (addr1 != addr2 || written == 2) {
			require.Equal(t, 2, written)
		}
	})
}
