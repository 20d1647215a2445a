package main

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/hashicorp/consul/api"
	"github.com/prometheus/common/version"
	toolkit "github.com/prometheus/exporter-toolkit/web"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// flags holds the parsed command line.
type flags struct {
	configFile      string
	enableLifecycle bool
	setByUser       map[string]*bool // the --consul.* and --output.* flags given
	consul          consulFlags
	outputFile      string
	outputMode      string
	outputInterval  time.Duration
	maxRemoval      float64
	shards          int
	shard           int
	removalHold     time.Duration
	logLevel        string
	logFormat       string
	listenAddresses []string
	webConfigFile   string
}

// consulFlags are the --consul.* flags.
type consulFlags struct {
	server          string
	scheme          string
	pathPrefix      string
	tokenFile       string
	username        string
	passwordFile    string
	datacenters     []string
	allDatacenters  bool
	namespace       string
	partition       string
	services        []string
	excludeServices []string
	tags            []string
	nodeMeta        []string
	filter          string
	healthFilter    string
	health          string
	tagSeparator    string
	waitTime        time.Duration
	verifyInterval  time.Duration
	maxConnections  int
	allowStale      bool
	tlsCAFile       string
	tlsCertFile     string
	tlsKeyFile      string
	tlsServerName   string
	tlsInsecure     bool
}

func newApp(f *flags) *kingpin.Application {
	app := kingpin.New(name, "Keeps a Prometheus file_sd file in step with Consul's catalog.")
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')

	f.consul.register(app)
	app.Flag("output.file", "The file_sd file to write.").Default("custom_sd.json").StringVar(&f.outputFile)
	app.Flag("output.mode", "Permission bits of the output file, in octal.").Default("0644").StringVar(&f.outputMode)
	durationFlag(app, "output.interval", "Longest wait of a change during a burst of changes to a small file: a change after a quiet period is written at once; in a burst, writes are spaced from 250ms up to this (up to ten times a write's cost for a large file).",
		adapter.DefaultInterval, &f.outputInterval)
	ratioFlag(app, "output.max-removal", "Largest share of the targets one update may remove at once; a larger removal is held back for --output.removal-hold (an empty catalog from a token without rights, or a Consul rebuilt empty). 1 turns the guard off.",
		adapter.DefaultMaxRemoval, &f.maxRemoval)
	durationFlag(app, "output.removal-hold", "How long a large removal must last before it is applied.",
		adapter.DefaultRemovalHold, &f.removalHold)
	intFlag(app, "output.shards", "Split the targets by address into this many files, custom_sd.0.json, custom_sd.1.json..., matching Prometheus's hashmod relabelling on __address__.",
		1, &f.shards)
	intFlag(app, "output.shard", "With --output.shards, write only this shard (0 to shards-1), to --output.file as named; -1 writes every shard.",
		-1, &f.shard)
	app.Flag("config.file", "Configuration file holding any number of jobs (see README.md). Without it, the --consul.* and --output.* flags describe one job; with it, they must not be given.").
		StringVar(&f.configFile)
	app.Flag("web.listen-address", "Address for /metrics, /-/healthy, /-/ready, /-/reload and the HTTP SD endpoints /targets/<job>. Repeatable.").
		Default(DefaultListenAddress).StringsVar(&f.listenAddresses)
	app.Flag("web.enable-lifecycle", "Enable reloading the configuration file through HTTP (POST /-/reload), as Prometheus's flag of the same name.").
		BoolVar(&f.enableLifecycle)
	app.Flag("web.config.file", "Prometheus web configuration file that enables TLS or basic auth on the HTTP side (exporter-toolkit format).").
		Default("").StringVar(&f.webConfigFile)
	enumFlag(app, "log.level", "Only log messages at or above this level: debug, info, warn or error.", "info", &f.logLevel, "debug", "info", "warn", "error")
	enumFlag(app, "log.format", "Log format: logfmt or json.", "logfmt", &f.logFormat, "logfmt", "json")
	f.setByUser = map[string]*bool{}
	for _, fm := range app.Model().Flags {
		if strings.HasPrefix(fm.Name, "consul.") || strings.HasPrefix(fm.Name, "output.") {
			set := new(bool)
			f.setByUser[fm.Name] = set
			app.GetFlag(fm.Name).IsSetByUser(set)
		}
	}
	return app
}

func (f *consulFlags) register(app *kingpin.Application) {
	app.Flag("consul.server", "Consul agent address: host:port, or a URL such as https://host:8501.").
		Default("localhost:8500").Envar("CONSUL_HTTP_ADDR").StringVar(&f.server)
	app.Flag("consul.scheme", "Scheme for a --consul.server without one: http or https (default: https if CONSUL_HTTP_SSL is true, else http).").StringVar(&f.scheme)
	app.Flag("consul.path-prefix", "Path before /v1/ when Consul is behind a reverse proxy, e.g. /consul.").StringVar(&f.pathPrefix)
	app.Flag("consul.token-file", "File holding the Consul ACL token, re-read when it changes (otherwise CONSUL_HTTP_TOKEN, if set).").
		Envar("CONSUL_HTTP_TOKEN_FILE").StringVar(&f.tokenFile)
	app.Flag("consul.username", "HTTP basic auth user for Consul (otherwise from CONSUL_HTTP_AUTH=user:password).").StringVar(&f.username)
	app.Flag("consul.password-file", "File holding the HTTP basic auth password for --consul.username.").StringVar(&f.passwordFile)
	app.Flag("consul.datacenter", "Datacenter to watch; repeatable (default: the agent's own).").StringsVar(&f.datacenters)
	app.Flag("consul.all-datacenters", "Watch every datacenter the agent knows, following new ones.").BoolVar(&f.allDatacenters)
	app.Flag("consul.namespace", "Consul Enterprise namespace to watch.").StringVar(&f.namespace)
	app.Flag("consul.partition", "Consul Enterprise admin partition to watch.").StringVar(&f.partition)
	app.Flag("consul.service", "Service to watch; repeatable (default: every service).").StringsVar(&f.services)
	app.Flag("consul.exclude-service", "Regular expression (whole name) of services to leave out, e.g. consul; repeatable.").StringsVar(&f.excludeServices)
	app.Flag("consul.tag", "Tag an instance must carry; repeatable, all must be present.").StringsVar(&f.tags)
	app.Flag("consul.node-meta", "key=value an instance's node must carry in its meta; repeatable.").StringsVar(&f.nodeMeta)
	app.Flag("consul.filter", "Consul filter expression on the catalog's service list, as consul_sd's filter.").StringVar(&f.filter)
	app.Flag("consul.health-filter", "Consul filter expression on each service's instances (health API), as consul_sd's health_filter.").StringVar(&f.healthFilter)
	enumFlag(app, "consul.health", "Least health an instance needs: any, warning (passing or warning) or passing.", "any", &f.health, "any", "warning", "passing")
	app.Flag("consul.tag-separator", "Separator that joins tags in __meta_consul_tags, also put at both ends.").
		Default(consul.DefaultTagSeparator).StringVar(&f.tagSeparator)
	durationFlag(app, "consul.wait-time", "How long Consul may hold a blocking query (at most 10m).",
		consul.DefaultWaitTime, &f.waitTime)
	durationFlag(app, "consul.verify-interval", "Plain HTTP, busy catalogs: how long a change the catalog summary cannot show (a port or meta rewrite among other changes) may wait for the sweep that finds it.",
		consul.DefaultVerifyInterval, &f.verifyInterval)
	intFlag(app, "consul.max-connections", "Most connections held to the Consul agent; keep it well below the agent's limits.http_max_conns_per_client (200).",
		consul.DefaultMaxConnections, &f.maxConnections)
	app.Flag("consul.allow-stale", "Let any Consul server answer reads, not only the leader.").
		Default("true").BoolVar(&f.allowStale)
	app.Flag("consul.tls.ca-file", "CA certificate to verify Consul's HTTPS certificate (otherwise CONSUL_CACERT).").StringVar(&f.tlsCAFile)
	app.Flag("consul.tls.cert-file", "Client certificate for Consul (otherwise CONSUL_CLIENT_CERT).").StringVar(&f.tlsCertFile)
	app.Flag("consul.tls.key-file", "Client key for Consul (otherwise CONSUL_CLIENT_KEY).").StringVar(&f.tlsKeyFile)
	app.Flag("consul.tls.server-name", "Name to verify Consul's certificate against (otherwise CONSUL_TLS_SERVER_NAME).").StringVar(&f.tlsServerName)
	app.Flag("consul.tls.insecure-skip-verify", "Do not verify Consul's certificate (otherwise CONSUL_HTTP_SSL_VERIFY=false).").BoolVar(&f.tlsInsecure)
}

// flagOf names the flag behind a field of consul.Config or adapter.Options.
var flagOf = map[string]string{
	"API.Address":            "--consul.server",
	"API.Scheme":             "--consul.scheme",
	"API.PathPrefix":         "--consul.path-prefix",
	"API.HttpAuth":           "--consul.username and --consul.password-file",
	"API.TLSConfig":          "--consul.tls.*",
	"API.TLSConfig.CAFile":   "--consul.tls.ca-file",
	"API.TLSConfig.CertFile": "--consul.tls.cert-file",
	"API.TLSConfig.KeyFile":  "--consul.tls.key-file",
	"WaitTime":               "--consul.wait-time",
	"MaxConnections":         "--consul.max-connections",
	"VerifyInterval":         "--consul.verify-interval",
	"Datacenters":            "--consul.datacenter",
	"AllDatacenters":         "--consul.all-datacenters",
	"TokenFile":              "--consul.token-file",
	"Selection.Services":     "--consul.service",
	"Selection.NodeMeta":     "--consul.node-meta",
	"Selection.Filter":       "--consul.filter",
	"Selection.HealthFilter": "--consul.health-filter",
	"Selection.Health":       "--consul.health",
	"FileMode":               "--output.mode",
	"Interval":               "--output.interval",
	"MaxRemoval":             "--output.max-removal",
	"RemovalHold":            "--output.removal-hold",
	"Shards":                 "--output.shards",
}

// flagError renders an error of the libraries' validation with flag names.
func flagError(err error) error {
	var fe *adapter.FieldError
	if !errors.As(err, &fe) {
		return err
	}
	return errors.New(fe.Format(func(field string) string {
		if f, ok := flagOf[field]; ok {
			return f
		}
		return field
	}))
}

// settings is what the command line describes, validated.
type settings struct {
	configFile string         // the configuration file, if any
	jobs       *config.Config // the one job the flags describe, without a configuration file
	listen     []string
	webConfig  string
	lifecycle  bool
	logLevel   string
	logFormat  string
}

// settings checks what kingpin cannot and, without a configuration file,
// maps the flags to the one job they describe; the libraries' configs
// validate themselves. Errors name the flag.
func (f *flags) settings() (settings, error) {
	s := settings{
		configFile: f.configFile, listen: f.listenAddresses, webConfig: f.webConfigFile,
		lifecycle: f.enableLifecycle, logLevel: f.logLevel, logFormat: f.logFormat,
	}
	if len(f.listenAddresses) == 0 {
		return s, errors.New("--web.listen-address: at least one address is needed")
	}
	for _, addr := range f.listenAddresses {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return s, fmt.Errorf("--web.listen-address: %w", err)
		}
	}
	if f.webConfigFile != "" {
		if err := toolkit.Validate(f.webConfigFile); err != nil {
			return s, fmt.Errorf("--web.config.file: %s: %w", f.webConfigFile, err)
		}
	}
	if f.configFile != "" {
		for _, name := range slices.Sorted(maps.Keys(f.setByUser)) {
			if *f.setByUser[name] {
				return s, fmt.Errorf("--%s: cannot be combined with --config.file; set it in the configuration file", name)
			}
		}
		return s, nil
	}
	var err error
	s.jobs, err = f.jobs()
	return s, err
}

// jobs maps the --consul.* and --output.* flags to the one job they
// describe, named "default", reading the one agent, also "default".
func (f *flags) jobs() (*config.Config, error) {
	mode, err := strconv.ParseUint(f.outputMode, 8, 32)
	if err != nil || mode > 0o777 {
		return nil, fmt.Errorf("--output.mode: %q is not an octal permission such as 0644", f.outputMode)
	}
	switch {
	case f.outputFile == "":
		return nil, errors.New("--output.file: must not be empty")
	case f.outputInterval <= 0:
		return nil, fmt.Errorf("--output.interval: %s is not positive", f.outputInterval)
	case f.shards < 1:
		return nil, fmt.Errorf("--output.shards: %d is not at least 1", f.shards)
	case f.shard < -1 || f.shard >= f.shards || f.shard >= 0 && f.shards == 1:
		return nil, fmt.Errorf("--output.shard: %d is not -1 or a shard from 0 to %d (set --output.shards)", f.shard, f.shards-1)
	case f.removalHold <= 0:
		return nil, fmt.Errorf("--output.removal-hold: %s is not positive", f.removalHold)
	}
	if fi, err := os.Stat(f.outputFile); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("--output.file: %s is a directory", f.outputFile)
	}
	job := &config.JobSpec{
		Name: config.DefaultConsul, Consul: config.DefaultConsul, Path: f.outputFile, Shard: f.shard, Shards: f.shards,
		Options: adapter.Options{
			FileMode:    os.FileMode(mode),
			Interval:    f.outputInterval,
			MaxRemoval:  f.maxRemoval,
			RemovalHold: f.removalHold,
		},
	}
	if f.shard < 0 {
		job.Options.Shards = f.shards
	}
	if err := job.Options.Validate(); err != nil {
		return nil, flagError(err)
	}
	c, err := f.consul.config()
	if err != nil {
		return nil, err
	}
	if err := c.Validate(); err != nil {
		return nil, flagError(err)
	}
	job.Job = c.JobConfig
	return &config.Config{
		Consuls: map[string]*config.Watch{config.DefaultConsul: {Name: config.DefaultConsul, Config: c.WatchConfig}},
		Jobs:    []*config.JobSpec{job},
	}, nil
}

// config maps the --consul.* flags to the discoverer's configuration. Errors
// name the flag; consul.Config.Validate checks the rest.
func (f *consulFlags) config() (consul.Config, error) {
	if f.waitTime <= 0 {
		return consul.Config{}, fmt.Errorf("--consul.wait-time: %s is not between 0 and 10m", f.waitTime)
	}
	if f.tagSeparator == "" {
		return consul.Config{}, errors.New("--consul.tag-separator: must not be empty")
	}
	if f.maxConnections < consul.MinConnections { // 0 would mean the default to the library
		return consul.Config{}, fmt.Errorf("--consul.max-connections: %d is below the minimum of %d", f.maxConnections, consul.MinConnections)
	}
	sel, err := f.selection()
	if err != nil {
		return consul.Config{}, err
	}
	conf, err := f.api()
	if err != nil {
		return consul.Config{}, err
	}
	return consul.Config{
		WatchConfig: consul.WatchConfig{
			API:            conf,
			WaitTime:       f.waitTime,
			VerifyInterval: f.verifyInterval,
			MaxConnections: f.maxConnections,
			TokenFile:      f.tokenFile,
		},
		JobConfig: consul.JobConfig{
			Selection:      sel,
			TagSeparator:   f.tagSeparator,
			AllowStale:     f.allowStale,
			Datacenters:    f.datacenters,
			AllDatacenters: f.allDatacenters,
		},
	}, nil
}

// selection maps the flags that choose targets.
func (f *consulFlags) selection() (consul.Selection, error) {
	sel := consul.Selection{Services: f.services, Tags: f.tags, Filter: f.filter, HealthFilter: f.healthFilter}
	for _, expr := range f.excludeServices {
		re, err := consul.AnchoredRegexp(expr)
		if err != nil {
			return sel, fmt.Errorf("--consul.exclude-service: %q: %w", expr, err)
		}
		sel.Exclude = append(sel.Exclude, re)
	}
	for _, kv := range f.nodeMeta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return sel, fmt.Errorf("--consul.node-meta: %q is not key=value", kv)
		}
		if sel.NodeMeta == nil {
			sel.NodeMeta = map[string]string{}
		}
		sel.NodeMeta[k] = v
	}
	var err error
	if sel.Health, err = consul.ParseHealth(f.health); err != nil {
		return sel, fmt.Errorf("--consul.health: %w", err)
	}
	return sel, nil
}

// api maps the flags that say how to reach the agent. The defaults read
// CONSUL_HTTP_TOKEN(_FILE), CONSUL_HTTP_AUTH, CONSUL_HTTP_SSL and the TLS
// variables the consul CLI reads; flags override them.
func (f *consulFlags) api() (api.Config, error) {
	conf := *api.DefaultConfig()
	conf.Address = f.server
	if f.scheme != "" {
		conf.Scheme = f.scheme
	}
	conf.PathPrefix = f.pathPrefix
	conf.Namespace, conf.Partition = f.namespace, f.partition
	conf.TokenFile = "" // the discoverer reads and re-reads --consul.token-file
	if f.passwordFile != "" && f.username == "" {
		return conf, errors.New("--consul.password-file: needs --consul.username")
	}
	if f.username != "" {
		password := ""
		if f.passwordFile != "" {
			var err error
			if password, err = consul.ReadSecretFile(f.passwordFile); err != nil {
				return conf, fmt.Errorf("--consul.password-file: %w", err)
			}
		}
		conf.HttpAuth = &api.HttpBasicAuth{Username: f.username, Password: password}
	}
	for _, tf := range []struct{ value, dst *string }{
		{&f.tlsCAFile, &conf.TLSConfig.CAFile},
		{&f.tlsCertFile, &conf.TLSConfig.CertFile},
		{&f.tlsKeyFile, &conf.TLSConfig.KeyFile},
		{&f.tlsServerName, &conf.TLSConfig.Address},
	} {
		if *tf.value != "" {
			*tf.dst = *tf.value
		}
	}
	if f.tlsInsecure {
		conf.TLSConfig.InsecureSkipVerify = true
	}
	return conf, nil
}
