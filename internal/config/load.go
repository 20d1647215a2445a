package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// DefaultConsul is the name of the agent of a file with a single consul
// section, and of the command line's.
const DefaultConsul = "default"

// Config is a configuration resolved and validated: what custom-sd runs.
type Config struct {
	// Consuls are the agents, by name.
	Consuls map[string]*Watch
	// Jobs are in the order of the file.
	Jobs []*JobSpec
}

// Watch is how to reach one agent.
type Watch struct {
	Name   string
	Config consul.WatchConfig
	// Fingerprint changes when the agent's settings change.
	Fingerprint string
}

// JobSpec is one job, resolved.
type JobSpec struct {
	Name   string
	Consul string // a key of Config.Consuls
	Job    consul.JobConfig
	// Path is the output file; with Options.Shards > 1, the shards are
	// named by adapter.ShardPath.
	Path    string
	Options adapter.Options
	// Shard, when not -1, writes only that shard of Shards to Path.
	Shard, Shards int
	// Fingerprint changes when anything of the job changes, its agent's
	// settings included.
	Fingerprint string
}

var jobName = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$`)

// MaxJobNameLen is the longest job name, in bytes. A job's default output
// file is named after it, and the longest name derived from that (a shard
// suffix, ".json", and the writer's temporary-file prefix and suffix) must
// still fit the 255 bytes a file name may have.
const MaxJobNameLen = 200

// ValidJobName reports why name is not a job name, or nil.
func ValidJobName(name string) error {
	switch {
	case !jobName.MatchString(name):
		return fmt.Errorf("%q is not a job name (letters, digits, _, . and -)", name)
	case len(name) > MaxJobNameLen:
		return fmt.Errorf("%.20q... is %d bytes long; a job name has at most %d", name, len(name), MaxJobNameLen)
	}
	return nil
}

// Load reads and resolves the configuration file at path. Relative paths
// in it resolve against its directory. An error is one line naming the job
// and the field.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return f.Resolve(filepath.Dir(abs))
}

// Parse decodes a configuration file strictly: an unknown field is an
// error.
func Parse(data []byte) (*File, error) {
	var top struct {
		Consul  *Consul            `yaml:"consul"`
		Consuls map[string]*Consul `yaml:"consuls"`
		Jobs    []yaml.Node        `yaml:"jobs"`
	}
	if err := decodeStrict(data, &top); err != nil {
		return nil, err
	}
	f := &File{Consul: top.Consul, Consuls: top.Consuls}
	for i, node := range top.Jobs {
		j := &Job{}
		if err := node.Decode(j); err != nil {
			return nil, fmt.Errorf("%s: %w", jobRef(i, &node), yamlError(err))
		}
		if err := checkKnownFields(&node, reflectFields(Job{})); err != nil {
			return nil, fmt.Errorf("%s: %w", jobRef(i, &node), err)
		}
		f.Jobs = append(f.Jobs, j)
	}
	return f, nil
}

// decodeStrict decodes data into v, refusing unknown fields.
func decodeStrict(data []byte, v any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return yamlError(err)
	}
	return nil
}

// yamlError keeps the first of yaml's errors on one line.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return errors.New(te.Errors[0])
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

// jobRef names a job by its name if it has one, else by its position.
func jobRef(i int, node *yaml.Node) string {
	if node.Kind == yaml.MappingNode {
		for k := 0; k+1 < len(node.Content); k += 2 {
			if node.Content[k].Value == "name" && node.Content[k+1].Value != "" {
				return fmt.Sprintf("jobs[%s]", node.Content[k+1].Value)
			}
		}
	}
	return fmt.Sprintf("jobs[%d]", i)
}

// Resolve validates f and resolves it; relative paths resolve against dir.
func (f *File) Resolve(dir string) (*Config, error) {
	c := &Config{Consuls: map[string]*Watch{}}
	consuls := f.Consuls
	switch {
	case f.Consul != nil && len(f.Consuls) > 0:
		return nil, errors.New("consul: give either consul or consuls, not both")
	case len(f.Consuls) == 0:
		consuls = map[string]*Consul{DefaultConsul: f.Consul}
		if f.Consul == nil {
			consuls[DefaultConsul] = &Consul{}
		}
	}
	for name, cs := range consuls {
		where := "consuls." + name
		if len(f.Consuls) == 0 {
			where = "consul"
		}
		if cs == nil {
			cs = &Consul{}
		}
		w, err := cs.resolve(dir)
		if err != nil {
			return nil, prefixed(where, err)
		}
		fp, _ := yaml.Marshal(cs)
		c.Consuls[name] = &Watch{Name: name, Config: w, Fingerprint: string(fp)}
	}
	if len(f.Jobs) == 0 {
		return nil, errors.New("jobs: at least one job is needed")
	}
	names, outputs := map[string]bool{}, map[string]string{}
	for i, j := range f.Jobs {
		where := fmt.Sprintf("jobs[%d]", i)
		if j.Name != "" {
			where = fmt.Sprintf("jobs[%s]", j.Name)
		}
		spec, err := j.resolve(dir, c.Consuls, len(f.Consuls) > 0)
		if err != nil {
			return nil, prefixed(where, err)
		}
		if names[spec.Name] {
			return nil, fmt.Errorf("%s.name: %q names another job too", where, spec.Name)
		}
		names[spec.Name] = true
		for _, p := range spec.paths() {
			if other, ok := outputs[p]; ok {
				return nil, fmt.Errorf("%s.output.file: %s is written by job %s too", where, p, other)
			}
			outputs[p] = spec.Name
		}
		c.Jobs = append(c.Jobs, spec)
	}
	return c, nil
}

// paths lists the files the job writes.
func (s *JobSpec) paths() []string {
	if s.Options.Shards <= 1 {
		return []string{s.Path}
	}
	var paths []string
	for i := range s.Options.Shards {
		paths = append(paths, adapter.ShardPath(s.Path, i))
	}
	return paths
}

// resolve turns the agent's section into a consul.WatchConfig.
func (cs *Consul) resolve(dir string) (consul.WatchConfig, error) {
	conf := *api.DefaultConfig()
	if cs.Server != "" {
		conf.Address = cs.Server
	}
	if cs.Scheme != "" {
		conf.Scheme = cs.Scheme
	}
	conf.PathPrefix = cs.PathPrefix
	if cs.Token != "" {
		conf.Token = cs.Token
	}
	conf.TokenFile = ""
	if cs.Password != "" && cs.PasswordFile != "" {
		return consul.WatchConfig{}, errors.New("password_file: give either password or password_file, not both")
	}
	if cs.Username == "" && (cs.Password != "" || cs.PasswordFile != "") {
		return consul.WatchConfig{}, errors.New("username: a password needs a username")
	}
	if cs.Username != "" {
		password := cs.Password
		if cs.PasswordFile != "" {
			p, err := consul.ReadSecretFile(resolvePath(dir, cs.PasswordFile))
			if err != nil {
				return consul.WatchConfig{}, fmt.Errorf("password_file: %w", err)
			}
			password = p
		}
		conf.HttpAuth = &api.HttpBasicAuth{Username: cs.Username, Password: password}
	}
	if t := cs.TLSConfig; t != nil {
		for _, f := range []struct{ value, dst *string }{
			{&t.CAFile, &conf.TLSConfig.CAFile}, {&t.CertFile, &conf.TLSConfig.CertFile}, {&t.KeyFile, &conf.TLSConfig.KeyFile},
		} {
			if *f.value != "" {
				*f.dst = resolvePath(dir, *f.value)
			}
		}
		if t.ServerName != "" {
			conf.TLSConfig.Address = t.ServerName
		}
		conf.TLSConfig.InsecureSkipVerify = conf.TLSConfig.InsecureSkipVerify || t.InsecureSkipVerify
	}
	if cs.MaxConnections < 0 || cs.MaxConnections > 0 && cs.MaxConnections < consul.MinConnections {
		return consul.WatchConfig{}, fmt.Errorf("max_connections: %d is below the minimum of %d", cs.MaxConnections, consul.MinConnections)
	}
	w := consul.WatchConfig{API: conf, MaxConnections: cs.MaxConnections, WaitTime: time.Duration(cs.WaitTime), VerifyInterval: time.Duration(cs.VerifyInterval)}
	if cs.TokenFile != "" {
		w.TokenFile = resolvePath(dir, cs.TokenFile)
	}
	if err := w.Validate(); err != nil {
		return consul.WatchConfig{}, keyError(err)
	}
	return w, nil
}

// resolve turns a job into a JobSpec.
func (j *Job) resolve(dir string, consuls map[string]*Watch, named bool) (*JobSpec, error) {
	if err := ValidJobName(j.Name); err != nil {
		return nil, fmt.Errorf("name: %w", err)
	}
	spec := &JobSpec{Name: j.Name, Consul: j.Consul}
	switch {
	case named && j.Consul == "":
		return nil, errors.New("consul: name one of the consuls")
	case !named && j.Consul != "" && j.Consul != DefaultConsul:
		return nil, fmt.Errorf("consul: %q is not in consuls (there is a single consul section)", j.Consul)
	case !named:
		spec.Consul = DefaultConsul
	}
	w, ok := consuls[spec.Consul]
	if !ok {
		return nil, fmt.Errorf("consul: %q is not in consuls", j.Consul)
	}
	jc, err := j.jobConfig()
	if err != nil {
		return nil, err
	}
	spec.Job = jc
	if err := j.output(dir, spec); err != nil {
		return nil, err
	}
	fp, _ := yaml.Marshal(j)
	spec.Fingerprint = w.Fingerprint + "\n" + string(fp) + "\n" + spec.Path
	return spec, nil
}

// jobConfig resolves the selection.
func (j *Job) jobConfig() (consul.JobConfig, error) {
	jc := consul.JobConfig{
		Selection: consul.Selection{
			Services: j.Services, Tags: j.Tags, NodeMeta: j.NodeMeta, Filter: j.Filter, HealthFilter: j.HealthFilter,
		},
		TagSeparator:   consul.DefaultTagSeparator,
		AllowStale:     true, // as consul_sd
		Datacenters:    j.Datacenters,
		AllDatacenters: j.AllDatacenters,
		Namespace:      j.Namespace,
		Partition:      j.Partition,
	}
	if j.AllowStale != nil {
		jc.AllowStale = *j.AllowStale
	}
	if j.TagSeparator != nil {
		if *j.TagSeparator == "" {
			return jc, errors.New("tag_separator: must not be empty")
		}
		jc.TagSeparator = *j.TagSeparator
	}
	if j.Datacenter != "" {
		if len(j.Datacenters) > 0 || j.AllDatacenters {
			return jc, errors.New("datacenter: give datacenter, datacenters or all_datacenters, one of them")
		}
		jc.Datacenters = []string{j.Datacenter}
	}
	for _, expr := range j.ExcludeServices {
		re, err := consul.AnchoredRegexp(expr)
		if err != nil {
			return jc, fmt.Errorf("exclude_services: %q: %w", expr, err)
		}
		jc.Selection.Exclude = append(jc.Selection.Exclude, re)
	}
	if j.Health != "" {
		h, err := consul.ParseHealth(j.Health)
		if err != nil {
			return jc, fmt.Errorf("health: %w", err)
		}
		jc.Selection.Health = h
	}
	if err := jc.Validate(); err != nil {
		return jc, keyError(err)
	}
	return jc, nil
}

// output resolves where and how the job writes.
func (j *Job) output(dir string, spec *JobSpec) error {
	o := j.Output
	spec.Path = filepath.Join(dir, j.Name+".json")
	if o.File != "" {
		spec.Path = resolvePath(dir, o.File)
	}
	if fi, err := os.Stat(spec.Path); err == nil && fi.IsDir() {
		return fmt.Errorf("output.file: %s is a directory", spec.Path)
	}
	opts := adapter.Options{Interval: time.Duration(o.Interval), RemovalHold: time.Duration(o.RemovalHold)}
	if o.Mode != "" {
		mode, err := strconv.ParseUint(o.Mode, 8, 32)
		if err != nil || mode > 0o777 {
			return fmt.Errorf("output.mode: %q is not an octal permission such as 0644", o.Mode)
		}
		opts.FileMode = os.FileMode(mode)
	}
	if o.MaxRemoval != nil {
		if !(*o.MaxRemoval > 0 && *o.MaxRemoval <= 1) {
			return fmt.Errorf("output.max_removal: %g is not a share between 0 and 1, such as 0.5", *o.MaxRemoval)
		}
		opts.MaxRemoval = *o.MaxRemoval
	}
	if o.Interval < 0 {
		return fmt.Errorf("output.interval: %s is negative", time.Duration(o.Interval))
	}
	spec.Shards, spec.Shard = max(o.Shards, 1), -1
	if o.Shards < 0 {
		return fmt.Errorf("output.shards: %d is not at least 1", o.Shards)
	}
	if o.Shard != nil {
		if *o.Shard < 0 || *o.Shard >= spec.Shards || spec.Shards == 1 {
			return fmt.Errorf("output.shard: %d is not a shard from 0 to %d (set output.shards)", *o.Shard, spec.Shards-1)
		}
		spec.Shard = *o.Shard
	} else {
		opts.Shards = spec.Shards
	}
	if err := opts.Validate(); err != nil {
		return keyError(err)
	}
	spec.Options = opts
	return nil
}

// resolvePath resolves p against dir unless it is absolute.
func resolvePath(dir, p string) string {
	if filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// keyOf names the file's key for a field of the libraries' configurations.
var keyOf = map[string]string{
	"API.Address":            "server",
	"API.Scheme":             "scheme",
	"API.PathPrefix":         "path_prefix",
	"API.HttpAuth":           "username and password",
	"API.TLSConfig":          "tls_config",
	"API.TLSConfig.CAFile":   "tls_config.ca_file",
	"API.TLSConfig.CertFile": "tls_config.cert_file",
	"API.TLSConfig.KeyFile":  "tls_config.key_file",
	"WaitTime":               "wait_time",
	"VerifyInterval":         "verify_interval",
	"MaxConnections":         "max_connections",
	"TokenFile":              "token_file",
	"Datacenters":            "datacenters",
	"AllDatacenters":         "all_datacenters",
	"Selection.Services":     "services",
	"Selection.NodeMeta":     "node_meta",
	"Selection.Filter":       "filter",
	"Selection.HealthFilter": "health_filter",
	"Selection.Health":       "health",
	"FileMode":               "output.mode",
	"Interval":               "output.interval",
	"MaxRemoval":             "output.max_removal",
	"RemovalHold":            "output.removal_hold",
	"Shards":                 "output.shards",
}

// keyError renders a library's FieldError with the file's keys.
func keyError(err error) error {
	var fe *adapter.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	return errors.New(fe.Format(func(field string) string {
		if k, ok := keyOf[field]; ok {
			return k
		}
		return field
	}))
}

// prefixed puts where before an error's first key.
func prefixed(where string, err error) error {
	return fmt.Errorf("%s.%w", where, err)
}

func errNotDuration(s string) error {
	return fmt.Errorf("%q is not a duration such as 500ms or 5m", s)
}

// checkKnownFields reports a key of a mapping node that is not a field.
func checkKnownFields(node *yaml.Node, fields []string) error {
	if node.Kind != yaml.MappingNode {
		return nil
	}
	for k := 0; k+1 < len(node.Content); k += 2 {
		key := node.Content[k]
		if !slices.Contains(fields, key.Value) {
			return fmt.Errorf("%s: line %d: unknown field", key.Value, key.Line)
		}
		if key.Value == "output" {
			if err := checkKnownFields(node.Content[k+1], reflectFields(Output{})); err != nil {
				return fmt.Errorf("output.%w", err)
			}
		}
	}
	return nil
}
