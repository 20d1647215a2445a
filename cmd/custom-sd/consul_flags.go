package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/hashicorp/consul/api"
	"github.com/hashicorp/go-bexpr"

	"github.com/custom-sd/custom-sd/sd/consul"
)

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
	maxConnections  int
	allowStale      bool
	tlsCAFile       string
	tlsCertFile     string
	tlsKeyFile      string
	tlsServerName   string
	tlsInsecure     bool
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

// config checks the flags and builds the discoverer's config. Errors name
// the flag.
func (f *consulFlags) config() (consul.Config, error) {
	if f.waitTime <= 0 || f.waitTime > 10*time.Minute {
		return consul.Config{}, fmt.Errorf("--consul.wait-time: %s is not between 0 and 10m", f.waitTime)
	}
	if f.maxConnections < consul.MinConnections {
		return consul.Config{}, fmt.Errorf("--consul.max-connections: %d is below the minimum of %d", f.maxConnections, consul.MinConnections)
	}
	if f.tagSeparator == "" {
		return consul.Config{}, errors.New("--consul.tag-separator: must not be empty")
	}
	if f.server == "" {
		return consul.Config{}, errors.New("--consul.server: must not be empty")
	}
	if scheme, rest, ok := strings.Cut(f.server, "://"); ok {
		if scheme != "http" && scheme != "https" {
			return consul.Config{}, fmt.Errorf("--consul.server: scheme %q is not http or https", scheme)
		}
		if u, err := url.Parse(f.server); err == nil && u.User != nil || strings.Contains(strings.SplitN(rest, "/", 2)[0], "@") {
			return consul.Config{}, errors.New("--consul.server: must not carry credentials; use --consul.username and --consul.password-file")
		}
	}
	if f.scheme != "" && f.scheme != "http" && f.scheme != "https" {
		return consul.Config{}, fmt.Errorf("--consul.scheme: %q is not http or https", f.scheme)
	}
	if f.pathPrefix != "" && !strings.HasPrefix(f.pathPrefix, "/") {
		return consul.Config{}, fmt.Errorf("--consul.path-prefix: %q does not start with /", f.pathPrefix)
	}
	if f.allDatacenters && len(f.datacenters) > 0 {
		return consul.Config{}, errors.New("--consul.all-datacenters: cannot be combined with --consul.datacenter")
	}
	for _, dc := range f.datacenters {
		if dc == "" || strings.ContainsAny(dc, "/?&# ") {
			return consul.Config{}, fmt.Errorf("--consul.datacenter: %q is not a datacenter name", dc)
		}
	}
	for _, svc := range f.services {
		if svc == "" || strings.ContainsAny(svc, "/?&#") {
			return consul.Config{}, fmt.Errorf("--consul.service: %q is not a service name", svc)
		}
	}
	sel := consul.Selection{Services: f.services, Tags: f.tags, Filter: f.filter, HealthFilter: f.healthFilter}
	for _, expr := range f.excludeServices {
		re, err := consul.AnchoredRegexp(expr)
		if err != nil {
			return consul.Config{}, fmt.Errorf("--consul.exclude-service: %q: %w", expr, err)
		}
		sel.Exclude = append(sel.Exclude, re)
	}
	for _, kv := range f.nodeMeta {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return consul.Config{}, fmt.Errorf("--consul.node-meta: %q is not key=value", kv)
		}
		if sel.NodeMeta == nil {
			sel.NodeMeta = map[string]string{}
		}
		sel.NodeMeta[k] = v
	}
	for flag, expr := range map[string]string{"--consul.filter": f.filter, "--consul.health-filter": f.healthFilter} {
		if expr == "" {
			continue
		}
		if _, err := bexpr.CreateEvaluator(expr); err != nil {
			return consul.Config{}, fmt.Errorf("%s: %q is not a Consul filter expression: %w", flag, expr, err)
		}
	}
	var err error
	if sel.Health, err = consul.ParseHealth(f.health); err != nil {
		return consul.Config{}, fmt.Errorf("--consul.health: %w", err)
	}

	// The defaults read CONSUL_HTTP_TOKEN(_FILE), CONSUL_HTTP_AUTH,
	// CONSUL_HTTP_SSL and the TLS variables the consul CLI reads; flags
	// override them.
	conf := *api.DefaultConfig()
	conf.Address = f.server
	if f.scheme != "" {
		conf.Scheme = f.scheme
	}
	conf.PathPrefix = f.pathPrefix
	conf.Namespace, conf.Partition = f.namespace, f.partition
	if f.tokenFile != "" {
		if _, err := consul.ReadSecretFile(f.tokenFile); err != nil {
			return consul.Config{}, fmt.Errorf("--consul.token-file: %w", err)
		}
	}
	conf.TokenFile = "" // the discoverer reads and re-reads --consul.token-file
	if f.passwordFile != "" && f.username == "" {
		return consul.Config{}, errors.New("--consul.password-file: needs --consul.username")
	}
	if f.username != "" {
		password := ""
		if f.passwordFile != "" {
			p, err := consul.ReadSecretFile(f.passwordFile)
			if err != nil {
				return consul.Config{}, fmt.Errorf("--consul.password-file: %w", err)
			}
			password = p
		}
		conf.HttpAuth = &api.HttpBasicAuth{Username: f.username, Password: password}
	}
	for _, tf := range []struct {
		flag, value string
		dst         *string
	}{
		{"--consul.tls.ca-file", f.tlsCAFile, &conf.TLSConfig.CAFile},
		{"--consul.tls.cert-file", f.tlsCertFile, &conf.TLSConfig.CertFile},
		{"--consul.tls.key-file", f.tlsKeyFile, &conf.TLSConfig.KeyFile},
	} {
		if tf.value == "" {
			continue
		}
		if _, err := os.Stat(tf.value); err != nil {
			return consul.Config{}, fmt.Errorf("%s: %w", tf.flag, err)
		}
		*tf.dst = tf.value
	}
	if (conf.TLSConfig.CertFile == "") != (conf.TLSConfig.KeyFile == "") {
		return consul.Config{}, errors.New("--consul.tls.cert-file: a client certificate needs --consul.tls.key-file, and the other way round")
	}
	if f.tlsServerName != "" {
		conf.TLSConfig.Address = f.tlsServerName
	}
	if f.tlsInsecure {
		conf.TLSConfig.InsecureSkipVerify = true
	}
	if _, err := api.SetupTLSConfig(&conf.TLSConfig); err != nil {
		return consul.Config{}, fmt.Errorf("--consul.tls.*: %w", err)
	}
	return consul.Config{
		API:            conf,
		TagSeparator:   f.tagSeparator,
		WaitTime:       f.waitTime,
		MaxConnections: f.maxConnections,
		AllowStale:     f.allowStale,
		Selection:      sel,
		Datacenters:    f.datacenters,
		AllDatacenters: f.allDatacenters,
		TokenFile:      f.tokenFile,
	}, nil
}
