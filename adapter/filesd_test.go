package adapter

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
)

var updateGolden = flag.Bool("update", false, "rewrite golden files")

// fileSDEntry is file_sd's format, decoded the way Prometheus decodes it.
type fileSDEntry struct {
	Targets []string          `json:"targets"`
	Labels  map[string]string `json:"labels"`
}

func TestToFileSD(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		group   *Group
		want    []fileSDEntry
		skipped int
	}{
		{
			name: "targets with only an address share the group's labels",
			group: &Group{Source: "s", Labels: model.LabelSet{"job": "a"}, Targets: []model.LabelSet{
				{model.AddressLabel: "b:2"}, {model.AddressLabel: "a:1"}, {model.AddressLabel: "a:1"},
			}},
			want: []fileSDEntry{{Targets: []string{"a:1", "b:2"}, Labels: map[string]string{"job": "a"}}},
		},
		{
			name: "target labels override group labels and split entries",
			group: &Group{Source: "s", Labels: model.LabelSet{"env": "prod", "job": "a"}, Targets: []model.LabelSet{
				{model.AddressLabel: "b:2", "env": "dev"},
				{model.AddressLabel: "a:1"},
			}},
			want: []fileSDEntry{
				{Targets: []string{"a:1"}, Labels: map[string]string{"env": "prod", "job": "a"}},
				{Targets: []string{"b:2"}, Labels: map[string]string{"env": "dev", "job": "a"}},
			},
		},
		{
			name: "targets Prometheus would reject are skipped",
			group: &Group{Source: "s", Targets: []model.LabelSet{
				{"no_address": "x"},
				{model.AddressLabel: "a:1", "bad-name": "x"},
				{model.AddressLabel: "a:2", "0digit": "x"},
				{model.AddressLabel: "a:3", "ok": "bad \xff utf8"},
				{model.AddressLabel: "a:4", "ok": "fine"},
			}},
			want:    []fileSDEntry{{Targets: []string{"a:4"}, Labels: map[string]string{"ok": "fine"}}},
			skipped: 4,
		},
		{
			name:  "a group without targets gives no entries",
			group: &Group{Source: "s", Labels: model.LabelSet{"job": "a"}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			entries, skipped := toFileSD(tc.group.Source, tc.group.Labels, tc.group.Targets)
			require.Len(t, skipped, tc.skipped)
			var got []fileSDEntry
			for _, e := range entries {
				labels := map[string]string{}
				require.NoError(t, json.Unmarshal(e.labels, &labels))
				got = append(got, fileSDEntry{Targets: e.Targets, Labels: labels})
			}
			require.Equal(t, tc.want, got)
		})
	}
}

func TestAppendStringIsJSON(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"", "plain", `quote " and \ backslash`, "new\nline\ttab\rcr", "\x00\x01\x1f\x7f",
		"ünïcødé ✓", "line\u2028sep\u2029", "<html>&amp;",
	} {
		var got string
		require.NoError(t, json.Unmarshal(appendString(nil, s), &got), "%q", s)
		require.Equal(t, s, got)
	}
}

func TestValidLabelName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		valid bool
	}{
		{"job", true}, {"_x", true}, {"__meta_consul_tags", true}, {"a1", true},
		{"", false}, {"1a", false}, {"a-b", false}, {"a.b", false}, {"ä", false},
	}
	for _, tc := range tests {
		require.Equal(t, tc.valid, validLabelName(tc.name), tc.name)
	}
}

// goldenSet covers several providers, sources and label shapes.
func goldenSet() map[Key]*Group {
	return map[Key]*Group{
		{"consul", "web"}: {Source: "web", Labels: model.LabelSet{"__meta_consul_service": "web"}, Targets: []model.LabelSet{
			{model.AddressLabel: "127.0.0.2:80", "__meta_consul_node": "n2", "__meta_consul_tags": ",a,b,"},
			{model.AddressLabel: "127.0.0.1:80", "__meta_consul_node": "n1", "__meta_consul_tags": ""},
		}},
		{"consul", "db"}: {Source: "db", Labels: model.LabelSet{"__meta_consul_service": "db"}, Targets: []model.LabelSet{
			{model.AddressLabel: "[::1]:5432", "__meta_consul_node": "n1", "note": "quote \" and \\ and \n"},
		}},
		{"static", "all"}: {Source: "all", Labels: model.LabelSet{"job": "static"}, Targets: []model.LabelSet{
			{model.AddressLabel: "127.0.0.1:9100"}, {model.AddressLabel: "127.0.0.1:9090"},
		}},
		{"static", "empty"}: {Source: "empty", Labels: model.LabelSet{"job": "none"}},
	}
}

func TestRenderGolden(t *testing.T) {
	t.Parallel()
	w := newTestWriter(t, filepath.Join(t.TempDir(), "out.json"), 0o644)
	got := w.render(encodeSet(t, goldenSet())).JSON()

	golden := filepath.Join("testdata", "filesd.golden.json")
	if *updateGolden {
		require.NoError(t, os.WriteFile(golden, got, 0o644))
	}
	want, err := os.ReadFile(golden)
	require.NoError(t, err)
	require.Equal(t, string(want), string(got))

	var decoded []fileSDEntry
	require.NoError(t, json.Unmarshal(got, &decoded), "the output is valid JSON")
	require.Len(t, decoded, 4)
}

func TestRenderEmpty(t *testing.T) {
	t.Parallel()
	w := newTestWriter(t, filepath.Join(t.TempDir(), "out.json"), 0o644)
	require.Equal(t, "[]\n", string(w.render(map[Key]*encoded{}).JSON()))
}

// The snapshot is never held rendered: JSON, WriteTo, Size, Filter and the
// file written from it must agree byte for byte.
func TestSnapshotRenderingsAgree(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		set  map[Key]*Group
	}{
		{"empty", map[Key]*Group{}},
		{"one group", oneGroup("a:1")},
		{"golden set", goldenSet()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "out.json")
			w := newTestWriter(t, path, 0o644)
			snap := w.render(encodeSet(t, tc.set))
			_, err := w.write(snap, nil)
			require.NoError(t, err)

			whole := snap.JSON()
			var streamed bytes.Buffer
			n, err := snap.WriteTo(&streamed)
			require.NoError(t, err)
			require.Equal(t, string(whole), streamed.String())
			require.EqualValues(t, len(whole), n)
			require.Equal(t, len(whole), snap.Size())
			require.Equal(t, string(whole), string(snap.Filter(func(Key) bool { return true })))
			onDisk, err := os.ReadFile(path)
			require.NoError(t, err)
			require.Equal(t, string(whole), string(onDisk))
		})
	}
}
