package config

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// Resolve validates f and maps it to what custom-sd runs; relative paths
// resolve against dir. The command line's one job goes through here too.
// An error is an *Error.
func (f *File) Resolve(dir string) (*Config, error) {
	c := &Config{Consuls: map[string]*Watch{}}
	consuls := f.Consuls
	switch {
	case f.Consul != nil && len(f.Consuls) > 0:
		return nil, keyErr("consul", "give either consul or consuls, not both")
	case len(f.Consuls) == 0:
		consuls = map[string]*Consul{DefaultConsul: f.Consul}
	}
	for _, name := range slices.Sorted(maps.Keys(consuls)) {
		section := "consuls." + name
		if len(f.Consuls) == 0 {
			section = "consul"
		}
		cs := consuls[name]
		if cs == nil {
			cs = &Consul{}
		}
		w, files, err := cs.resolve(dir, "consul "+name)
		if err != nil {
			return nil, in(section, err)
		}
		fp, _ := yaml.Marshal(cs)
		c.Consuls[name] = &Watch{Name: name, Config: w, Files: files, Fingerprint: string(fp)}
		if cs.VerifyInterval != nil {
			c.Warnings = append(c.Warnings, &Error{Section: section, Key: "verify_interval",
				Msg: "is ignored: every change of the catalog is verified within seconds; remove it"})
		}
	}
	if len(f.Jobs) == 0 {
		return nil, keyErr("jobs", "at least one job is needed")
	}
	names, outputs := map[string]bool{}, map[string]string{}
	for i, j := range f.Jobs {
		section := fmt.Sprintf("jobs[%d]", i)
		if j.Name != "" {
			section = fmt.Sprintf("jobs[%s]", j.Name)
		}
		spec, err := j.resolve(dir, c.Consuls, len(f.Consuls) > 0)
		if err != nil {
			return nil, in(section, err)
		}
		if names[spec.Name] {
			return nil, in(section, keyErr("name", "%q names another job too", spec.Name))
		}
		names[spec.Name] = true
		for _, p := range spec.Paths() {
			if other, ok := outputs[p]; ok {
				return nil, in(section, keyErr("output.file", "%s is written by job %s too", p, other))
			}
			outputs[p] = spec.Name
		}
		c.Jobs = append(c.Jobs, spec)
	}
	return c, nil
}

// resolve maps the agent's section to a consul.WatchConfig, and lists the
// files it names, as those of agent. Unset fields take the consul CLI's
// environment variables (api.DefaultConfig), then the libraries' defaults.
func (cs *Consul) resolve(dir, agent string) (consul.WatchConfig, []Input, error) {
	conf := *api.DefaultConfig()
	w := consul.WatchConfig{}
	// The watch reads and re-reads the token file itself.
	tokenFile := conf.TokenFile
	conf.TokenFile = ""
	set := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	set(&conf.Address, cs.Server)
	set(&conf.Scheme, cs.Scheme)
	conf.PathPrefix = cs.PathPrefix
	switch {
	case cs.Token != "" && cs.TokenFile != "":
		return w, nil, keyErr("token_file", "give either {token} or {token_file}, not both")
	case cs.Token != "":
		conf.Token, tokenFile = cs.Token, ""
	case cs.TokenFile != "":
		tokenFile = resolvePath(dir, cs.TokenFile)
	}
	if tokenFile != "" {
		conf.Token = ""
		w.TokenFile = tokenFile
	}
	switch {
	case cs.Password != "" && cs.PasswordFile != "":
		return w, nil, keyErr("password_file", "give either {password} or {password_file}, not both")
	case cs.Username == "" && cs.PasswordFile != "":
		return w, nil, keyErr("password_file", "needs {username}")
	case cs.Username == "" && cs.Password != "":
		return w, nil, keyErr("username", "a password needs a username")
	case cs.Username != "":
		conf.HttpAuth = &api.HttpBasicAuth{Username: cs.Username, Password: cs.Password}
		if cs.PasswordFile != "" {
			w.PasswordFile = resolvePath(dir, cs.PasswordFile)
		}
	}
	if t := cs.TLSConfig; t != nil {
		set(&conf.TLSConfig.CAFile, resolvePath(dir, t.CAFile))
		set(&conf.TLSConfig.CertFile, resolvePath(dir, t.CertFile))
		set(&conf.TLSConfig.KeyFile, resolvePath(dir, t.KeyFile))
		set(&conf.TLSConfig.Address, t.ServerName)
		conf.TLSConfig.InsecureSkipVerify = conf.TLSConfig.InsecureSkipVerify || t.InsecureSkipVerify
	}
	if cs.MaxConnections != nil {
		if *cs.MaxConnections < consul.MinConnections {
			return w, nil, keyErr("max_connections", "%d is below the minimum of %d", *cs.MaxConnections, consul.MinConnections)
		}
		w.MaxConnections = *cs.MaxConnections
	}
	if cs.WaitTime != nil {
		if d := time.Duration(*cs.WaitTime); d <= 0 {
			return w, nil, keyErr("wait_time", "%s is not between 0 and %s", d, consul.MaxWaitTime)
		}
		w.WaitTime = time.Duration(*cs.WaitTime)
	}
	w.API = conf
	if err := w.Validate(); err != nil {
		return w, nil, fromField(err)
	}
	var files []Input
	for _, f := range []Input{
		{w.TokenFile, "token file"}, {w.PasswordFile, "password file"},
		{conf.TLSConfig.CAFile, "CA file"}, {conf.TLSConfig.CertFile, "certificate file"}, {conf.TLSConfig.KeyFile, "key file"},
	} {
		if f.Path != "" {
			files = append(files, Input{f.Path, "the " + f.What + " of " + agent})
		}
	}
	return w, files, nil
}

// resolve maps a job to a JobSpec.
func (j *Job) resolve(dir string, consuls map[string]*Watch, named bool) (*JobSpec, error) {
	if err := ValidJobName(j.Name); err != nil {
		return nil, keyErr("name", "%s", err)
	}
	spec := &JobSpec{Name: j.Name, Consul: j.Consul}
	switch {
	case named && j.Consul == "":
		return nil, keyErr("consul", "name one of the consuls")
	case !named && j.Consul != "" && j.Consul != DefaultConsul:
		return nil, keyErr("consul", "%q is not in consuls (there is a single consul section)", j.Consul)
	case !named:
		spec.Consul = DefaultConsul
	}
	w, ok := consuls[spec.Consul]
	if !ok {
		return nil, keyErr("consul", "%q is not in consuls", j.Consul)
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

// jobConfig maps the selection.
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
			return jc, keyErr("tag_separator", "must not be empty")
		}
		jc.TagSeparator = *j.TagSeparator
	}
	if j.Datacenter != "" {
		if len(j.Datacenters) > 0 || j.AllDatacenters {
			return jc, keyErr("datacenter", "give {datacenter}, {datacenters} or {all_datacenters}, one of them")
		}
		jc.Datacenters = []string{j.Datacenter}
	}
	for _, expr := range j.ExcludeServices {
		re, err := consul.AnchoredRegexp(expr)
		if err != nil {
			return jc, keyErr("exclude_services", "%q: %s", expr, err)
		}
		jc.Selection.Exclude = append(jc.Selection.Exclude, re)
	}
	if j.Health != "" {
		h, err := consul.ParseHealth(j.Health)
		if err != nil {
			return jc, keyErr("health", "%s", err)
		}
		jc.Selection.Health = h
	}
	if err := jc.Validate(); err != nil {
		return jc, fromField(err)
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
		return keyErr("output.file", "%s is a directory", spec.Path)
	}
	var opts adapter.Options
	if o.Mode != "" {
		mode, err := ParseMode(o.Mode)
		if err != nil {
			return keyErr("output.mode", "%s", err)
		}
		opts.FileMode = mode
	}
	if o.Interval != nil {
		if opts.Interval = time.Duration(*o.Interval); opts.Interval <= 0 {
			return keyErr("output.interval", "%s is not positive", opts.Interval)
		}
	}
	if o.RemovalHold != nil {
		if opts.RemovalHold = time.Duration(*o.RemovalHold); opts.RemovalHold <= 0 {
			return keyErr("output.removal_hold", "%s is not positive", opts.RemovalHold)
		}
	}
	if o.MaxRemoval != nil {
		if !(*o.MaxRemoval > 0 && *o.MaxRemoval <= 1) {
			return keyErr("output.max_removal", "%g is not a share between 0 and 1, such as 0.5", *o.MaxRemoval)
		}
		opts.MaxRemoval = *o.MaxRemoval
	}
	spec.Shards, spec.Shard = 1, -1
	if o.Shards != nil {
		if *o.Shards < 1 {
			return keyErr("output.shards", "%d is not at least 1", *o.Shards)
		}
		spec.Shards = *o.Shards
	}
	if o.Shard != nil && *o.Shard != -1 {
		if *o.Shard < 0 || *o.Shard >= spec.Shards || spec.Shards == 1 {
			return keyErr("output.shard", "%d is not -1 or a shard from 0 to %d (set {output.shards})", *o.Shard, spec.Shards-1)
		}
		spec.Shard = *o.Shard
	} else {
		opts.Shards = spec.Shards
	}
	if err := opts.Validate(); err != nil {
		return fromField(err)
	}
	spec.Options = opts
	return nil
}

// ParseMode parses an output file's permission bits, written in octal. A
// sensible mode lets the file's owner read it and no one but its owner and
// group write it, and has no bits beyond the permission bits.
func ParseMode(s string) (os.FileMode, error) {
	mode, err := strconv.ParseUint(s, 8, 32)
	switch {
	case err != nil || mode > 0o777:
		return 0, fmt.Errorf("%q is not an octal permission such as 0644", s)
	case mode&0o400 == 0:
		return 0, fmt.Errorf("%q is not a sensible permission: the file's owner cannot read it (try 0644)", s)
	case mode&0o002 != 0:
		return 0, fmt.Errorf("%q is not a sensible permission: anyone could write targets into it (try 0644)", s)
	}
	return os.FileMode(mode), nil
}

// resolvePath resolves p against dir unless it is absolute or empty.
func resolvePath(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

func errNotDuration(s string) error { return fmt.Errorf("%q is not a duration such as 500ms or 5m", s) }
