package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/custom-sd/custom-sd/internal/testprom"
)

// decoder decodes Kubernetes objects strictly: an unknown or duplicate
// field is an error, as with `kubectl apply --validate=strict`.
func decoder(t *testing.T) runtime.Decoder {
	t.Helper()
	scheme := runtime.NewScheme()
	require.NoError(t, corev1.AddToScheme(scheme))
	require.NoError(t, appsv1.AddToScheme(scheme))
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}

// decodeAll decodes every YAML document in r; documents holding only
// comments are skipped.
func decodeAll(t *testing.T, dec runtime.Decoder, r io.Reader) ([]runtime.Object, error) {
	t.Helper()
	var objs []runtime.Object
	yr := utilyaml.NewYAMLReader(bufio.NewReader(r))
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		if onlyComments(doc) {
			continue
		}
		obj, _, err := dec.Decode(doc, nil, nil)
		if err != nil {
			return nil, err
		}
		objs = append(objs, obj)
	}
}

func onlyComments(doc []byte) bool {
	for _, line := range strings.Split(string(doc), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && line != "---" && !strings.HasPrefix(line, "#") {
			return false
		}
	}
	return true
}

// manifests is everything in deploy/kubernetes/*.yaml.
type manifests struct {
	deployments     []*appsv1.Deployment
	configMaps      map[string]*corev1.ConfigMap
	services        []*corev1.Service
	serviceAccounts map[string]*corev1.ServiceAccount
}

func readManifests(t *testing.T) manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	dec := decoder(t)
	m := manifests{configMaps: map[string]*corev1.ConfigMap{}, serviceAccounts: map[string]*corev1.ServiceAccount{}}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		objs, err := decodeAll(t, dec, bytes.NewReader(b))
		require.NoError(t, err, f)
		require.NotEmpty(t, objs, f)
		for _, obj := range objs {
			switch o := obj.(type) {
			case *appsv1.Deployment:
				m.deployments = append(m.deployments, o)
			case *corev1.ConfigMap:
				m.configMaps[o.Name] = o
			case *corev1.Service:
				m.services = append(m.services, o)
			case *corev1.ServiceAccount:
				m.serviceAccounts[o.Name] = o
			default:
				require.Failf(t, "unexpected kind", "%s: %T: teach this test to check it", f, obj)
			}
		}
	}
	require.Len(t, m.deployments, 1)
	return m
}

// TestKubernetesDecodingIsStrict makes sure the decoder the other tests
// rely on refuses what the API server would.
func TestKubernetesDecodingIsStrict(t *testing.T) {
	t.Parallel()
	dec := decoder(t)
	for _, tc := range []struct {
		name, doc, err string
	}{
		{"valid", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n", ""},
		{"comment-only document", "# nothing\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {name: a}\n", ""},
		{"unknown field", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replica: 1}\n", `unknown field "spec.replica"`},
		{"unknown nested field", "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80, targetport: 80}]}\n", `unknown field "spec.ports[0].targetport"`},
		{"duplicate field", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {a: \"1\"}\ndata: {b: \"2\"}\n", `key "data" already set in map`},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec: {replicas: one}\n", "cannot unmarshal"},
		{"unknown kind", "apiVersion: v1\nkind: Pod2\nmetadata: {name: a}\n", "no kind"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := decodeAll(t, dec, strings.NewReader(tc.doc))
			if tc.err == "" {
				require.NoError(t, err)
				require.Len(t, objs, 1)
				return
			}
			require.ErrorContains(t, err, tc.err)
		})
	}
}

// pod is the Deployment's Pod template, with lookups the checks share.
type pod struct {
	spec       corev1.PodSpec
	volumes    map[string]corev1.Volume
	containers map[string]corev1.Container
}

func thePod(t *testing.T, m manifests) pod {
	t.Helper()
	p := pod{spec: m.deployments[0].Spec.Template.Spec, volumes: map[string]corev1.Volume{}, containers: map[string]corev1.Container{}}
	for _, v := range p.spec.Volumes {
		p.volumes[v.Name] = v
	}
	for _, c := range append(append([]corev1.Container{}, p.spec.InitContainers...), p.spec.Containers...) {
		p.containers[c.Name] = c
	}
	require.Contains(t, p.containers, "prometheus")
	require.Contains(t, p.containers, "custom-sd")
	return p
}

// mountOf returns the container's mount of the volume.
func mountOf(t *testing.T, c corev1.Container, volume string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m
		}
	}
	require.Failf(t, "missing mount", "%s does not mount %s", c.Name, volume)
	return corev1.VolumeMount{}
}

// mountUnder returns the mount whose path holds p.
func mountUnder(t *testing.T, c corev1.Container, p string) corev1.VolumeMount {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if strings.HasPrefix(p, strings.TrimSuffix(m.MountPath, "/")+"/") {
			return m
		}
	}
	require.Failf(t, "not on a volume", "%s: %s is under no mount", c.Name, p)
	return corev1.VolumeMount{}
}

// portNumber resolves a probe's or Service's port against the container's
// named ports.
func portNumber(t *testing.T, c corev1.Container, p intstr.IntOrString) string {
	t.Helper()
	if p.Type == intstr.Int {
		return strconv.Itoa(p.IntValue())
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return strconv.Itoa(int(cp.ContainerPort))
		}
	}
	require.Failf(t, "unknown port", "%s has no port named %q", c.Name, p.StrVal)
	return ""
}

func TestKubernetesManifestsAgree(t *testing.T) {
	t.Parallel()
	m := readManifests(t)
	d := m.deployments[0]
	p := thePod(t, m)
	prom, sd := p.containers["prometheus"], p.containers["custom-sd"]

	t.Run("selectors", func(t *testing.T) {
		require.NotEmpty(t, d.Spec.Selector.MatchLabels)
		for k, v := range d.Spec.Selector.MatchLabels {
			require.Equal(t, v, d.Spec.Template.Labels[k], "the Deployment selects its own Pods")
		}
		require.NotEmpty(t, m.services)
		for _, s := range m.services {
			require.NotEmpty(t, s.Spec.Selector)
			for k, v := range s.Spec.Selector {
				require.Equal(t, v, d.Spec.Template.Labels[k], "Service %s selects the Pods", s.Name)
			}
			for _, sp := range s.Spec.Ports {
				require.Equal(t, "9090", portNumber(t, prom, sp.TargetPort), "Service %s reaches Prometheus", s.Name)
			}
		}
		require.Contains(t, m.serviceAccounts, p.spec.ServiceAccountName)
	})

	t.Run("volumes", func(t *testing.T) {
		mounted := map[string]bool{}
		for _, c := range p.containers {
			for _, vm := range c.VolumeMounts {
				require.Contains(t, p.volumes, vm.Name, "%s mounts a volume of the Pod", c.Name)
				mounted[vm.Name] = true
			}
		}
		for name := range p.volumes {
			require.True(t, mounted[name], "volume %s is mounted", name)
		}
	})

	var promConf promConfig
	t.Run("prometheus config", func(t *testing.T) {
		cfgPath := flag(t, prom.Args, "--config.file")
		vm := mountOf(t, prom, mountUnder(t, prom, cfgPath).Name)
		v := p.volumes[vm.Name]
		require.NotNil(t, v.ConfigMap, "the config comes from a ConfigMap")
		cm := m.configMaps[v.ConfigMap.Name]
		require.NotNil(t, cm, "ConfigMap %s is in the manifests", v.ConfigMap.Name)
		require.Empty(t, vm.SubPath, "a directory mount follows ConfigMap updates")
		require.Equal(t, vm.MountPath, path.Dir(cfgPath))
		text, ok := cm.Data[path.Base(cfgPath)]
		require.True(t, ok, "ConfigMap %s has %s", cm.Name, path.Base(cfgPath))
		require.NoError(t, yaml.Unmarshal([]byte(text), &promConf))
	})

	t.Run("shared file", func(t *testing.T) {
		out := flag(t, sd.Args, "--output.file")
		require.True(t, path.IsAbs(out))
		w := mountUnder(t, sd, out)
		require.Equal(t, w.MountPath, path.Dir(out))
		require.False(t, w.ReadOnly, "custom-sd writes its directory")
		require.NotNil(t, p.volumes[w.Name].EmptyDir, "the file is on an emptyDir")
		r := mountOf(t, prom, w.Name)
		require.True(t, r.ReadOnly, "Prometheus only reads the file")
		var files []string
		for _, sc := range promConf.ScrapeConfigs {
			for _, fsd := range sc.FileSDConfigs {
				files = append(files, fsd.Files...)
			}
		}
		require.Equal(t, []string{path.Join(r.MountPath, path.Base(out))}, files)
	})

	t.Run("self-scrape", func(t *testing.T) {
		targets := map[string]string{}
		for _, sc := range promConf.ScrapeConfigs {
			for _, st := range sc.StaticConfigs {
				for _, target := range st.Targets {
					targets[target] = sc.JobName
				}
			}
		}
		for _, c := range []corev1.Container{prom, sd} {
			target := "localhost:" + port(t, flag(t, c.Args, "--web.listen-address"))
			require.Contains(t, targets, target, "Prometheus scrapes %s's /metrics", c.Name)
		}
	})

	t.Run("probes", func(t *testing.T) {
		for _, tc := range []struct {
			container       corev1.Container
			liveness, ready string
		}{
			{prom, "/-/healthy", "/-/ready"},
			// custom-sd's readiness gates the Pod: see deployment.yaml.
			{sd, "/-/healthy", "/-/ready"},
		} {
			t.Run(tc.container.Name, func(t *testing.T) {
				c := tc.container
				listen := port(t, flag(t, c.Args, "--web.listen-address"))
				var ports []string
				for _, cp := range c.Ports {
					ports = append(ports, strconv.Itoa(int(cp.ContainerPort)))
				}
				require.Equal(t, []string{listen}, ports, "the container declares the port it listens on")
				for _, pr := range []struct {
					probe *corev1.Probe
					path  string
				}{{c.LivenessProbe, tc.liveness}, {c.ReadinessProbe, tc.ready}} {
					require.NotNil(t, pr.probe)
					require.NotNil(t, pr.probe.HTTPGet)
					require.Equal(t, pr.path, pr.probe.HTTPGet.Path)
					require.Equal(t, listen, portNumber(t, c, pr.probe.HTTPGet.Port))
				}
			})
		}
	})

	t.Run("token", func(t *testing.T) {
		tokenFile := flag(t, sd.Args, "--consul.token-file")
		vm := mountUnder(t, sd, tokenFile)
		require.Empty(t, vm.SubPath, "no subPath: a rotated Secret reaches the file")
		require.True(t, vm.ReadOnly)
		s := p.volumes[vm.Name].Secret
		require.NotNil(t, s, "the token comes from a Secret")
		rel := strings.TrimPrefix(tokenFile, vm.MountPath+"/")
		if len(s.Items) > 0 {
			var paths []string
			for _, it := range s.Items {
				paths = append(paths, it.Path)
			}
			require.Contains(t, paths, rel)
		}
		for _, c := range p.containers {
			if c.Name != sd.Name {
				for _, other := range c.VolumeMounts {
					require.NotEqual(t, vm.Name, other.Name, "only custom-sd sees the token")
				}
			}
		}
	})

	t.Run("images", func(t *testing.T) {
		var c compose
		readYAML(t, "docker-compose.yml", &c)
		require.Equal(t, c.Services["prometheus"].Image, prom.Image)
		require.Equal(t, c.Services["custom-sd"].Image, sd.Image, "the image docker-compose.yml builds")
	})

	t.Run("resources", func(t *testing.T) {
		for _, c := range p.containers {
			req, lim := c.Resources.Requests.Memory(), c.Resources.Limits.Memory()
			require.False(t, req.IsZero(), "%s requests memory", c.Name)
			require.False(t, lim.IsZero(), "%s has a memory limit", c.Name)
			require.Positive(t, lim.Cmp(*req), "%s: limit above request", c.Name)
			require.False(t, c.Resources.Requests.Cpu().IsZero(), "%s requests CPU", c.Name)
		}
	})
}

// TestKubernetesSecurityContext checks every container for the settings of
// the restricted Pod Security Standard and a read-only root.
func TestKubernetesSecurityContext(t *testing.T) {
	t.Parallel()
	p := thePod(t, readManifests(t))
	require.False(t, p.spec.AutomountServiceAccountToken == nil || *p.spec.AutomountServiceAccountToken, "no API token in the Pod")
	require.False(t, p.spec.HostNetwork || p.spec.HostPID || p.spec.HostIPC)
	for _, tc := range []struct {
		name string
		ok   func(*corev1.SecurityContext) bool
	}{
		{"runAsNonRoot", func(s *corev1.SecurityContext) bool { return s.RunAsNonRoot != nil && *s.RunAsNonRoot }},
		{"runAsUser not root", func(s *corev1.SecurityContext) bool { return s.RunAsUser != nil && *s.RunAsUser != 0 }},
		{"readOnlyRootFilesystem", func(s *corev1.SecurityContext) bool {
			return s.ReadOnlyRootFilesystem != nil && *s.ReadOnlyRootFilesystem
		}},
		{"allowPrivilegeEscalation false", func(s *corev1.SecurityContext) bool {
			return s.AllowPrivilegeEscalation != nil && !*s.AllowPrivilegeEscalation
		}},
		{"not privileged", func(s *corev1.SecurityContext) bool { return s.Privileged == nil || !*s.Privileged }},
		{"drop ALL capabilities, add none", func(s *corev1.SecurityContext) bool {
			return s.Capabilities != nil && len(s.Capabilities.Add) == 0 &&
				len(s.Capabilities.Drop) == 1 && s.Capabilities.Drop[0] == "ALL"
		}},
		{"seccomp RuntimeDefault", func(s *corev1.SecurityContext) bool {
			return s.SeccompProfile != nil && s.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, c := range p.containers {
				require.NotNil(t, c.SecurityContext, c.Name)
				require.True(t, tc.ok(c.SecurityContext), "%s: %s", c.Name, tc.name)
			}
		})
	}
}

// TestPromtoolAcceptsKubernetesConfig runs `promtool check config` on the
// Prometheus configuration in the ConfigMap.
func TestPromtoolAcceptsKubernetesConfig(t *testing.T) {
	t.Parallel()
	m := readManifests(t)
	p := thePod(t, m)
	cfgPath := flag(t, p.containers["prometheus"].Args, "--config.file")
	v := p.volumes[mountUnder(t, p.containers["prometheus"], cfgPath).Name]
	require.NotNil(t, v.ConfigMap)
	cm := m.configMaps[v.ConfigMap.Name]
	require.NotNil(t, cm)
	f := filepath.Join(t.TempDir(), path.Base(cfgPath))
	require.NoError(t, os.WriteFile(f, []byte(cm.Data[path.Base(cfgPath)]), 0o644))
	out, err := testprom.Promtool(t, "check", "config", f)
	require.NoError(t, err, out)
	require.Contains(t, out, "SUCCESS")
}
