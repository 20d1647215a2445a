package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestFromFlagsIsTheFileResolver: the command line's job goes through the
// file's decoding and resolution, and its errors are rendered under the
// flags' names.
func TestFromFlagsIsTheFileResolver(t *testing.T) {
	t.Setenv("CONSUL_HTTP_ADDR", "")
	flags := []Flag{
		{"consul.server", []string{"127.0.0.1:8500"}},
		{"consul.max-connections", []string{"32"}},
		{"consul.wait-time", []string{"2m"}},
		{"consul.service", []string{"web", "db"}},
		{"consul.node-meta", []string{"rack=a", "zone=1"}},
		{"consul.allow-stale", []string{"false"}},
		{"consul.tls.insecure-skip-verify", []string{"true"}},
		{"consul.datacenter", []string{"dc2"}},
		{"output.file", []string{"sd/x.json"}},
		{"output.mode", []string{"0640"}},
		{"output.interval", []string{"1s"}},
		{"output.shards", []string{"3"}},
	}
	f, err := FromFlags("default", "custom_sd.json", flags)
	require.NoError(t, err)
	c, err := f.Resolve("/work")
	require.NoError(t, err)
	w := c.Consuls[DefaultConsul].Config
	require.Equal(t, "127.0.0.1:8500", w.API.Address)
	require.Equal(t, 32, w.MaxConnections)
	require.Equal(t, 2*time.Minute, w.WaitTime)
	require.True(t, w.API.TLSConfig.InsecureSkipVerify)
	j := c.Jobs[0]
	require.Equal(t, "default", j.Name)
	require.Equal(t, []string{"web", "db"}, j.Job.Selection.Services)
	require.Equal(t, map[string]string{"rack": "a", "zone": "1"}, j.Job.Selection.NodeMeta)
	require.False(t, j.Job.AllowStale)
	require.Equal(t, []string{"dc2"}, j.Job.Datacenters)
	require.Equal(t, "/work/sd/x.json", j.Path)
	require.Equal(t, 3, j.Options.Shards)
	require.Equal(t, time.Second, j.Options.Interval)

	f, err = FromFlags("default", "custom_sd.json", nil)
	require.NoError(t, err)
	c, err = f.Resolve("/work")
	require.NoError(t, err)
	require.Equal(t, "/work/custom_sd.json", c.Jobs[0].Path, "the command line's default output")
	require.True(t, c.Jobs[0].Job.AllowStale, "consul_sd's default")
}

func TestFromFlagsErrors(t *testing.T) {
	tests := []struct {
		name  string
		flags []Flag
		want  string
	}{
		{"a bad duration", []Flag{{"consul.wait-time", []string{"soon"}}}, `--consul.wait-time: "soon" is not a duration such as 500ms or 5m`},
		{"not a number", []Flag{{"consul.max-connections", []string{"many"}}}, `--consul.max-connections: "many" is not a whole number`},
		{"zero connections", []Flag{{"consul.max-connections", []string{"0"}}}, "--consul.max-connections: 0 is below the minimum of 5"},
		{"empty separator", []Flag{{"consul.tag-separator", []string{""}}}, "--consul.tag-separator: must not be empty"},
		{"empty output", []Flag{{"output.file", []string{""}}}, "--output.file: must not be empty"},
		{"node meta without =", []Flag{{"consul.node-meta", []string{"rack"}}}, `--consul.node-meta: "rack" is not key=value`},
		{"a sensible mode", []Flag{{"output.mode", []string{"0"}}}, `--output.mode: "0" is not a sensible permission`},
		{"password without user", []Flag{{"consul.password-file", []string{"/p"}}}, "--consul.password-file: needs --consul.username"},
		{"shard out of range", []Flag{{"output.shards", []string{"4"}}, {"output.shard", []string{"4"}}}, "--output.shard: 4 is not -1 or a shard from 0 to 3 (set --output.shards)"},
		{"both datacenter flags", []Flag{{"consul.all-datacenters", []string{"true"}}, {"consul.datacenter", []string{"dc1"}}}, "--consul.all-datacenters: cannot be combined with --consul.datacenter"},
		{"certificate without key", []Flag{{"consul.tls.cert-file", []string{"flags_test.go"}}}, "--consul.tls.cert-file: a client certificate needs --consul.tls.key-file"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := FromFlags("default", "custom_sd.json", tc.flags)
			if err == nil {
				_, err = f.Resolve(".")
			}
			require.Error(t, err)
			require.Contains(t, FlagError(err).Error(), tc.want)
		})
	}
}

func TestEveryFlagIsAKey(t *testing.T) {
	for _, n := range names {
		if n.flag == "" || n.flag == "--consul.tls.*" {
			continue
		}
		require.Equal(t, n.key, KeyOfFlag(n.flag[2:]), n.flag)
		require.NotNil(t, fieldType(fileTypeOf(n.key), n.key), "%s names a key of the file", n.key)
	}
}

// fileTypeOf is the section type a key belongs to.
func fileTypeOf(key string) reflect.Type {
	first, _, _ := strings.Cut(key, ".")
	if _, ok := yamlFields(reflect.TypeFor[Consul]())[first]; ok {
		return reflect.TypeFor[Consul]()
	}
	return reflect.TypeFor[Job]()
}
