package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/version"
	toolkit "github.com/prometheus/exporter-toolkit/web"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/internal/config"
	"github.com/custom-sd/custom-sd/sd/consul"
	"github.com/custom-sd/custom-sd/web"
)

// defaultOutput is the command line's output file.
const defaultOutput = "custom_sd.json"

// flags holds the parsed command line. The --consul.* and --output.* flags
// are kept as given: they are the settings of the one job they describe,
// and go through the configuration's own decoding and resolution
// (config.FromFlags), under the keys the table of names gives them.
type flags struct {
	configFile      string
	enableLifecycle bool
	job             []*jobFlag // the --consul.* and --output.* flags
	logLevel        string
	logFormat       string
	listenAddresses []string
	maxConnections  string
	webConfigFile   string
}

// jobFlag is a --consul.* or --output.* flag, its values as given.
type jobFlag struct {
	name   string
	values []string
	set    bool // given by the user
	isBool bool
}

func (f *jobFlag) Set(v string) error {
	if f.isBool || !f.repeatable() {
		f.values = f.values[:0]
	}
	f.values = append(f.values, v)
	return nil
}

func (f *jobFlag) String() string { return strings.Join(f.values, ",") }

// IsBoolFlag tells kingpin that the flag takes no value.
func (f *jobFlag) IsBoolFlag() bool { return f.isBool }

// IsCumulative tells kingpin that the flag is repeatable.
func (f *jobFlag) IsCumulative() bool { return f.repeatable() }

func (f *jobFlag) repeatable() bool { return repeatable[f.name] }

// repeatable are the job flags that may be given more than once.
var repeatable = map[string]bool{
	"consul.service": true, "consul.exclude-service": true, "consul.tag": true,
	"consul.node-meta": true, "consul.datacenter": true,
}

func newApp(f *flags) *kingpin.Application {
	app := kingpin.New(name, "Keeps a Prometheus file_sd file in step with Consul's catalog.")
	app.Version(version.Print(name))
	app.HelpFlag.Short('h')

	f.registerJob(app)
	app.Flag("config.file", "Configuration file holding any number of jobs (see README.md). Without it, the --consul.* and --output.* flags describe one job; with it, they must not be given.").
		StringVar(&f.configFile)
	app.Flag("web.listen-address", "Address for /metrics, /-/healthy, /-/ready, /-/reload and the HTTP SD endpoints /targets/<job>. Repeatable.").
		Default(DefaultListenAddress).StringsVar(&f.listenAddresses)
	app.Flag("web.enable-lifecycle", "Enable reloading the configuration file through HTTP (POST /-/reload), as Prometheus's flag of the same name.").
		BoolVar(&f.enableLifecycle)
	app.Flag("web.max-connections", "Most HTTP connections held at a time, across every --web.listen-address; further ones wait until one closes.").
		Default(strconv.Itoa(web.DefaultMaxConnections)).StringVar(&f.maxConnections)
	app.Flag("web.config.file", "Prometheus web configuration file that enables TLS or basic auth on the HTTP side (exporter-toolkit format).").
		Default("").StringVar(&f.webConfigFile)
	enumFlag(app, "log.level", "Only log messages at or above this level: debug, info, warn or error.", "info", &f.logLevel, "debug", "info", "warn", "error")
	enumFlag(app, "log.format", "Log format: logfmt or json.", "logfmt", &f.logFormat, "logfmt", "json")
	return app
}

// registerJob declares the --consul.* and --output.* flags: the settings of
// the one job the command line describes.
func (f *flags) registerJob(app *kingpin.Application) {
	add := func(name, help, def string) *kingpin.FlagClause {
		jf := &jobFlag{name: name}
		f.job = append(f.job, jf)
		fc := app.Flag(name, help)
		if def != "" {
			fc.Default(def)
		}
		fc.IsSetByUser(&jf.set).SetValue(jf)
		return fc
	}
	boolean := func(name, help, def string) {
		f.job = append(f.job, &jobFlag{name: name, isBool: true})
		jf := f.job[len(f.job)-1]
		fc := app.Flag(name, help)
		if def != "" {
			fc.Default(def)
		}
		fc.IsSetByUser(&jf.set).SetValue(jf)
	}
	add("consul.server", "Consul agent address: host:port, or a URL such as https://host:8501.", "localhost:8500").Envar("CONSUL_HTTP_ADDR")
	add("consul.scheme", "Scheme for a --consul.server without one: http or https (default: https if CONSUL_HTTP_SSL is true, else http).", "")
	add("consul.path-prefix", "Path before /v1/ when Consul is behind a reverse proxy, e.g. /consul.", "")
	add("consul.token-file", "File holding the Consul ACL token, re-read when it changes (otherwise CONSUL_HTTP_TOKEN, if set).", "").Envar("CONSUL_HTTP_TOKEN_FILE")
	add("consul.username", "HTTP basic auth user for Consul (otherwise from CONSUL_HTTP_AUTH=user:password).", "")
	add("consul.password-file", "File holding the HTTP basic auth password for --consul.username, re-read when it changes.", "")
	add("consul.datacenter", "Datacenter to watch; repeatable (default: the agent's own).", "")
	boolean("consul.all-datacenters", "Watch every datacenter the agent knows, following new ones.", "")
	add("consul.namespace", "Consul Enterprise namespace to watch.", "")
	add("consul.partition", "Consul Enterprise admin partition to watch.", "")
	add("consul.service", "Service to watch; repeatable (default: every service).", "")
	add("consul.exclude-service", "Regular expression (whole name) of services to leave out, e.g. consul; repeatable.", "")
	add("consul.tag", "Tag an instance must carry; repeatable, all must be present.", "")
	add("consul.node-meta", "key=value an instance's node must carry in its meta; repeatable.", "")
	add("consul.filter", "Consul filter expression on the catalog's service list, as consul_sd's filter.", "")
	add("consul.health-filter", "Consul filter expression on each service's instances (health API), as consul_sd's health_filter.", "")
	add("consul.health", "Least health an instance needs: any, warning (passing or warning) or passing.", "any")
	add("consul.tag-separator", "Separator that joins tags in __meta_consul_tags, also put at both ends.", consul.DefaultTagSeparator)
	add("consul.wait-time", "How long Consul may hold a blocking query (at most 10m).", consul.DefaultWaitTime.String())
	add("consul.verify-interval", "Ignored (every change of the catalog is verified within seconds); accepted so that older command lines still start.", "").Hidden()
	add("consul.max-connections", "Most connections held to the Consul agent; keep it well below the agent's limits.http_max_conns_per_client (200).", strconv.Itoa(consul.DefaultMaxConnections))
	boolean("consul.allow-stale", "Let any Consul server answer reads, not only the leader.", "true")
	add("consul.tls.ca-file", "CA certificate to verify Consul's HTTPS certificate, re-read when it changes (otherwise CONSUL_CACERT).", "")
	add("consul.tls.cert-file", "Client certificate for Consul, re-read when it changes (otherwise CONSUL_CLIENT_CERT).", "")
	add("consul.tls.key-file", "Client key for Consul, re-read when it changes (otherwise CONSUL_CLIENT_KEY).", "")
	add("consul.tls.server-name", "Name to verify Consul's certificate against (otherwise CONSUL_TLS_SERVER_NAME).", "")
	boolean("consul.tls.insecure-skip-verify", "Do not verify Consul's certificate (otherwise CONSUL_HTTP_SSL_VERIFY=false).", "")
	add("output.file", "The file_sd file to write.", defaultOutput)
	add("output.mode", "Permission bits of the output file, in octal.", "0644")
	add("output.interval", "Longest wait of a change during a burst of changes to a small file: a change after a quiet period is written at once; in a burst, writes are spaced from 250ms up to this (up to ten times a write's cost for a large file).", adapter.DefaultInterval.String())
	add("output.max-removal", "Largest share of the targets one update may remove at once; a larger removal is held back for --output.removal-hold (an empty catalog from a token without rights, or a Consul rebuilt empty). 1 turns the guard off.", strconv.FormatFloat(adapter.DefaultMaxRemoval, 'g', -1, 64))
	add("output.removal-hold", "How long a large removal must last before it is applied.", adapter.DefaultRemovalHold.String())
	add("output.shards", "Split the targets by address into this many files, custom_sd.0.json, custom_sd.1.json..., matching Prometheus's hashmod relabelling on __address__.", "1")
	add("output.shard", "With --output.shards, write only this shard (0 to shards-1), to --output.file as named; -1 writes every shard.", "-1")
}

// settings is what the command line describes, validated.
type settings struct {
	configFile string       // the configuration file, if any
	flagsFile  *config.File // without a configuration file, the one job the flags describe
	dir        string       // the working directory, which its paths are relative to
	listen     []string
	maxConns   int // the most HTTP connections at a time
	webConfig  string
	lifecycle  bool
	logLevel   string
	logFormat  string
}

// settings checks what kingpin cannot and, without a configuration file,
// resolves the one job the flags describe as the configuration file's
// jobs are resolved. Errors name the flag.
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
	maxConns, err := strconv.Atoi(f.maxConnections)
	if err != nil || maxConns < 1 {
		return s, fmt.Errorf("--web.max-connections: %q is not a whole number of at least 1", f.maxConnections)
	}
	s.maxConns = maxConns
	if f.webConfigFile != "" {
		if err := toolkit.Validate(f.webConfigFile); err != nil {
			return s, fmt.Errorf("--web.config.file: %s: %w", f.webConfigFile, err)
		}
	}
	var given []config.Flag
	for _, jf := range f.job {
		if jf.set {
			given = append(given, config.Flag{Name: jf.name, Values: jf.values})
		}
	}
	if f.configFile != "" {
		if len(given) > 0 {
			return s, fmt.Errorf("--%s: cannot be combined with --config.file; set it in the configuration file", given[0].Name)
		}
		return s, nil
	}
	file, err := config.FromFlags(config.DefaultConsul, defaultOutput, given)
	if err != nil {
		return s, config.FlagError(err)
	}
	if s.dir, err = os.Getwd(); err != nil {
		return s, fmt.Errorf("the working directory: %w", err)
	}
	s.flagsFile = file
	return s, nil
}
