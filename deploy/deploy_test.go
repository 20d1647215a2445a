// Package deploy holds the example deployments: Dockerfile (at the root),
// docker-compose.yml, consul.json and prometheus.yml; a systemd unit in
// systemd/; Kubernetes manifests in kubernetes/. Neither Docker nor a
// cluster can run in CI, so these tests parse the files and check that
// their paths, ports and names agree, build the binary the way the
// Dockerfile does, and have promtool, consul and systemd-analyze validate
// what they can.
package deploy

import (
	"debug/elf"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/testconsul"
	"github.com/custom-sd/custom-sd/internal/testprom"
)

// dockerfile is the final stage of the Dockerfile plus what the build stage
// runs.
type dockerfile struct {
	fromImages []string
	runs       []string
	user       string
	expose     []string
	workdir    string
	volumes    []string
	entrypoint []string
	cmd        []string
}

// parseDockerfile reads the instructions the tests care about. Later
// stages override earlier ones, so the fields describe the final image.
func parseDockerfile(t *testing.T, p string) dockerfile {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	var d dockerfile
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		instr, args, _ := strings.Cut(line, " ")
		args = strings.TrimSpace(args)
		jsonArgs := func() []string {
			var v []string
			require.NoError(t, json.Unmarshal([]byte(args), &v), "%s takes the exec (JSON) form: %s", instr, line)
			return v
		}
		switch strings.ToUpper(instr) {
		case "FROM":
			d.fromImages = append(d.fromImages, strings.Fields(args)[0])
			d.user, d.expose, d.workdir, d.volumes, d.entrypoint, d.cmd = "", nil, "", nil, nil, nil
		case "RUN":
			d.runs = append(d.runs, args)
		case "USER":
			d.user = args
		case "EXPOSE":
			d.expose = append(d.expose, strings.Fields(args)...)
		case "WORKDIR":
			d.workdir = args
		case "VOLUME":
			d.volumes = append(d.volumes, jsonArgs()...)
		case "ENTRYPOINT":
			d.entrypoint = jsonArgs()
		case "CMD":
			d.cmd = jsonArgs()
		}
	}
	return d
}

type composeService struct {
	Image       string `yaml:"image"`
	Build       struct{ Context, Dockerfile string }
	Command     []string `yaml:"command"`
	Volumes     []string `yaml:"volumes"`
	Ports       []string `yaml:"ports"`
	NetworkMode string   `yaml:"network_mode"`
}

type compose struct {
	Services map[string]composeService `yaml:"services"`
	Volumes  map[string]any            `yaml:"volumes"`
}

type consulConfig struct {
	Services []struct {
		ID, Name, Address string
		Port              int
		Checks            []struct{ HTTP, TCP string }
	}
}

type promConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		FileSDConfigs []struct {
			Files []string `yaml:"files"`
		} `yaml:"file_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

func readYAML(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	require.NoError(t, err)
	require.NoError(t, yaml.Unmarshal(b, v), p)
}

// flag returns the value of --name=value in args.
func flag(t *testing.T, args []string, name string) string {
	t.Helper()
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v
		}
	}
	require.Failf(t, "missing flag", "%s in %q", name, args)
	return ""
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	require.NoError(t, err, hostport)
	return p
}

// mount returns the container path where source is mounted by s.
func mount(t *testing.T, s composeService, source string) string {
	t.Helper()
	for _, v := range s.Volumes {
		parts := strings.Split(v, ":")
		if parts[0] == source {
			return parts[1]
		}
	}
	require.Failf(t, "missing volume", "%s is not mounted in %v", source, s.Volumes)
	return ""
}

func published(s composeService) map[string]bool {
	out := map[string]bool{}
	for _, p := range s.Ports {
		hostPort, containerPort, _ := strings.Cut(p, ":")
		if hostPort == containerPort {
			out[containerPort] = true
		}
	}
	return out
}

func TestDeployFilesAgree(t *testing.T) {
	t.Parallel()
	df := parseDockerfile(t, "../Dockerfile")
	var c compose
	readYAML(t, "docker-compose.yml", &c)
	var prom promConfig
	readYAML(t, "prometheus.yml", &prom)
	var cc consulConfig
	b, err := os.ReadFile("consul.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cc))
	registered := map[string]string{} // service name -> port
	for _, s := range cc.Services {
		registered[s.Name] = strconv.Itoa(s.Port)
	}

	consul, sd, prometheus := c.Services["consul"], c.Services["custom-sd"], c.Services["prometheus"]
	require.NotEmpty(t, consul.Image)
	require.NotEmpty(t, prometheus.Image)

	// The Dockerfile: a non-root static image whose entrypoint is custom-sd.
	require.Len(t, df.fromImages, 2, "multi-stage")
	require.Contains(t, df.fromImages[0], "golang:1.26", "the Go of go.mod")
	require.True(t, strings.HasPrefix(df.runs[len(df.runs)-1], "make build"), "the build stage runs `make build`")
	require.NotEmpty(t, df.user)
	require.NotContains(t, []string{"0", "root", "0:0"}, df.user)
	require.Equal(t, []string{"/bin/custom-sd"}, df.entrypoint)
	require.Len(t, df.expose, 1)
	outDir := df.volumes[0]
	require.Equal(t, []string{"--output.file=" + outDir + "/custom_sd.json"}, df.cmd)
	require.Equal(t, outDir, df.workdir, "a bare --output.file lands in the volume too")

	// custom-sd in compose: built from that Dockerfile, listening on the
	// exposed port, writing into the shared volume, reading Consul.
	require.Equal(t, "..", sd.Build.Context)
	require.FileExists(t, filepath.Join(sd.Build.Context, sd.Build.Dockerfile))
	sdPort := port(t, flag(t, sd.Command, "--web.listen-address"))
	require.Equal(t, df.expose[0], sdPort)
	outFile := flag(t, sd.Command, "--output.file")
	require.Equal(t, outDir, path.Dir(outFile))
	volume := ""
	for _, v := range sd.Volumes {
		if src, dst, _ := strings.Cut(v, ":"); dst == outDir {
			volume = src
		}
	}
	require.NotEmpty(t, volume, "the output directory is a volume")
	require.Contains(t, c.Volumes, volume, "a named volume both containers share")
	consulPort := port(t, flag(t, sd.Command, "--consul.server"))
	require.Equal(t, "8500", consulPort)

	// Consul: loads consul.json, publishes its API and the ports of the
	// containers that share its network.
	cfgPath := flag(t, consul.Command, "-config-file")
	require.Equal(t, cfgPath, mount(t, consul, "./consul.json"))
	ports := published(consul)
	for _, p := range []string{consulPort, sdPort, port(t, flag(t, prometheus.Command, "--web.listen-address"))} {
		require.True(t, ports[p], "port %s is published", p)
	}
	require.Equal(t, "service:consul", sd.NetworkMode)
	require.Equal(t, "service:consul", prometheus.NetworkMode)

	// consul.json registers custom-sd and Prometheus where they listen.
	require.Equal(t, sdPort, registered["custom-sd"])
	require.Equal(t, port(t, flag(t, prometheus.Command, "--web.listen-address")), registered["prometheus"])

	// Prometheus reads the file custom-sd writes: file_sd paths are relative
	// to the config file's directory.
	promCfg := flag(t, prometheus.Command, "--config.file")
	require.Equal(t, promCfg, mount(t, prometheus, "./prometheus.yml"))
	sdMount := mount(t, prometheus, volume)
	var files []string
	for _, sc := range prom.ScrapeConfigs {
		for _, fsd := range sc.FileSDConfigs {
			for _, f := range fsd.Files {
				if !path.IsAbs(f) {
					f = path.Join(path.Dir(promCfg), f)
				}
				files = append(files, f)
			}
		}
	}
	require.Equal(t, []string{path.Join(sdMount, path.Base(outFile))}, files)

	// Pinned versions agree with what the tests run.
	require.Equal(t, "hashicorp/consul:"+strings.TrimPrefix(testconsul.Version, "v"), consul.Image)
	require.Equal(t, "prom/prometheus:v3.16.0", prometheus.Image)
	require.Equal(t, "v0.316.0", testprom.Version, "Prometheus 3.16.0 is module v0.316.0")
}

func TestConsulConfigRegistersOnlyLoopback(t *testing.T) {
	t.Parallel()
	var cc consulConfig
	b, err := os.ReadFile("consul.json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &cc))
	require.NotEmpty(t, cc.Services)
	for _, s := range cc.Services {
		ip := net.ParseIP(s.Address)
		require.True(t, ip != nil && ip.IsLoopback(), "%s: %q is a loopback address", s.ID, s.Address)
		for _, c := range s.Checks {
			for _, target := range []string{c.HTTP, c.TCP} {
				if target == "" {
					continue
				}
				host := strings.TrimPrefix(target, "http://")
				host, _, _ = strings.Cut(host, "/")
				h, _, err := net.SplitHostPort(host)
				require.NoError(t, err)
				require.True(t, net.ParseIP(h).IsLoopback(), "%s: check %s stays on loopback", s.ID, target)
			}
		}
	}
}

func TestPromtoolAcceptsPrometheusConfig(t *testing.T) {
	t.Parallel()
	out, err := testprom.Promtool(t, "check", "config", "prometheus.yml")
	require.NoError(t, err, out)
	require.Contains(t, out, "SUCCESS")
}

func TestConsulAcceptsConsulConfig(t *testing.T) {
	t.Parallel()
	bin, err := testconsul.Binary()
	require.NoError(t, err)
	// consul.json is a fragment for a dev agent; validate needs a data dir.
	base := filepath.Join(t.TempDir(), "base.json")
	require.NoError(t, os.WriteFile(base, []byte(`{"data_dir": "`+t.TempDir()+`"}`), 0o600))
	out, err := exec.Command(bin, "validate", base, "consul.json").CombinedOutput()
	require.NoError(t, err, "%s", out)
}

// TestImageBuildIsStaticAndVersioned runs the Dockerfile's build command,
// `make build`, and checks that the binary is static and reports the
// version it was given.
func TestImageBuildIsStaticAndVersioned(t *testing.T) {
	t.Parallel()
	bin := filepath.Join(t.TempDir(), "custom-sd")
	cmd := exec.Command("make", "-C", "..", "build", "VERSION=9.8.7-test", "REVISION=abc123", "BRANCH=docker", "BIN="+bin)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "%s", out)

	f, err := elf.Open(bin)
	require.NoError(t, err)
	defer f.Close()
	for _, p := range f.Progs {
		require.NotEqual(t, elf.PT_INTERP, p.Type, "no dynamic loader: runs on distroless/static")
	}
	version, err := exec.Command(bin, "--version").CombinedOutput()
	require.NoError(t, err, "%s", version)
	require.Contains(t, string(version), "version 9.8.7-test")
	require.Contains(t, string(version), "revision: abc123")
}

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
