package consul

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-kit/log"
	"github.com/hashicorp/consul/api"

	"github.com/custom-sd/custom-sd/adapter"
)

// Defaults for the configurations.
const (
	DefaultTagSeparator        = ","
	DefaultWaitTime            = 5 * time.Minute
	DefaultMaxConnections      = 64
	DefaultMinRequestInterval  = 10 * time.Millisecond
	DefaultDatacentersInterval = time.Minute
	DefaultTokenCheckInterval  = 5 * time.Second
	// MaxWaitTime is the longest blocking query Consul allows.
	MaxWaitTime = 10 * time.Minute
	// MinConnections is the smallest budget that leaves room for the service
	// list, the two other doorbells, one reader and the headroom.
	MinConnections = 5
)

// WatchConfig configures a Watch: which agent, how to reach it, and how
// much of it to use.
type WatchConfig struct {
	// API addresses the agent: Address (host:port, or a URL with scheme
	// http or https and an optional path prefix), Scheme, PathPrefix,
	// Token or TokenFile, HttpAuth and TLSConfig are used. Datacenter,
	// Namespace and Partition are the defaults of jobs that name none;
	// HttpClient and Transport are replaced by the Watch's own.
	API api.Config
	// WaitTime is how long Consul may hold a blocking query; 0 means 5m.
	WaitTime time.Duration
	// MaxConnections caps the connections to the agent, for every job of
	// the Watch together; 0 means 64. Keep it well below the agent's
	// limits.http_max_conns_per_client (200). While the agent refuses
	// connections (429), the Watch uses fewer (see Watch.Budget).
	MaxConnections int
	// MinRequestInterval is the least time between two requests of one
	// blocking query; 0 means 10ms.
	MinRequestInterval time.Duration
	// DatacentersInterval is how often the list of datacenters is read for
	// jobs that watch all of them; 0 means 1m.
	DatacentersInterval time.Duration
	// TokenFile, if set, holds the ACL token. It is re-read every
	// TokenCheckInterval and a new token takes effect at once: every watch
	// starts over with it. It overrides API.Token and API.TokenFile.
	TokenFile string
	// TokenCheckInterval is how often TokenFile is re-read; 0 means 5s.
	TokenCheckInterval time.Duration
	// PasswordFile, if set, holds the HTTP basic auth password of
	// API.HttpAuth.Username, and overrides API.HttpAuth.Password. It is read
	// again whenever it changes, so a rotated password takes effect at the
	// next request. The TLS files of API.TLSConfig (CAFile, CertFile,
	// KeyFile) are read again whenever they change too, for the next
	// connection.
	PasswordFile string
	// Logger receives the watch's logs; nil logs nothing.
	Logger log.Logger
}

// JobConfig says what one job of a Watch selects and how its labels look.
type JobConfig struct {
	// Selection chooses the services and instances that become targets.
	Selection Selection
	// TagSeparator joins tags in __meta_consul_tags; "" means ",".
	TagSeparator string
	// AllowStale lets any server answer the job's reads, not only the
	// leader (consul_sd: allow_stale).
	AllowStale bool
	// Datacenters lists the datacenters to watch. Empty means the Watch's
	// API.Datacenter, or the agent's own when that is empty too. With more
	// than one, or with AllDatacenters, each group's Source is
	// "<datacenter>/<service>"; otherwise it is the service name.
	Datacenters []string
	// AllDatacenters watches every datacenter the agent knows, following
	// /v1/catalog/datacenters.
	AllDatacenters bool
	// Namespace and Partition are Consul Enterprise's; empty means the
	// Watch's API.Namespace and API.Partition.
	Namespace, Partition string
}

// Config configures a Discoverer: one job with a watch of its own.
type Config struct {
	WatchConfig
	JobConfig
}

// Validate reports the first invalid field as an *adapter.FieldError naming
// it, e.g. "MaxConnections" or "Selection.Filter".
func (c *Config) Validate() error {
	if err := c.WatchConfig.Validate(); err != nil {
		return err
	}
	return c.JobConfig.Validate()
}

func fieldErr(field string, format string, args ...any) error {
	return &adapter.FieldError{Field: field, Err: fmt.Errorf(format, args...)}
}

// Validate reports the first invalid field as an *adapter.FieldError. It
// reads the token file, and checks that the TLS files exist and load.
func (c *WatchConfig) Validate() error {
	if err := validateAddress(c.API.Address); err != nil {
		return &adapter.FieldError{Field: "API.Address", Err: err}
	}
	if s := c.API.Scheme; s != "" && s != "http" && s != "https" {
		return fieldErr("API.Scheme", "%q is not http or https", s)
	}
	if p := c.API.PathPrefix; p != "" && !strings.HasPrefix(p, "/") {
		return fieldErr("API.PathPrefix", "%q does not start with /", p)
	}
	if c.WaitTime < 0 || c.WaitTime > MaxWaitTime {
		return fieldErr("WaitTime", "%s is not between 0 and %s", c.WaitTime, MaxWaitTime)
	}
	if c.MaxConnections != 0 && c.MaxConnections < MinConnections {
		return fieldErr("MaxConnections", "%d is below the minimum of %d", c.MaxConnections, MinConnections)
	}
	if c.MinRequestInterval < 0 {
		return fieldErr("MinRequestInterval", "%s is negative", c.MinRequestInterval)
	}
	if c.TokenFile != "" {
		if _, err := ReadSecretFile(c.TokenFile); err != nil {
			return &adapter.FieldError{Field: "TokenFile", Err: err}
		}
	}
	if c.PasswordFile != "" {
		if c.API.HttpAuth == nil || c.API.HttpAuth.Username == "" {
			return fieldErr("PasswordFile", "needs {API.HttpAuth.Username}")
		}
		if _, err := ReadSecretFile(c.PasswordFile); err != nil {
			return &adapter.FieldError{Field: "PasswordFile", Err: err}
		}
	}
	for _, f := range []struct{ field, path string }{
		{"API.TLSConfig.CAFile", c.API.TLSConfig.CAFile},
		{"API.TLSConfig.CertFile", c.API.TLSConfig.CertFile},
		{"API.TLSConfig.KeyFile", c.API.TLSConfig.KeyFile},
	} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return &adapter.FieldError{Field: f.field, Err: err}
		}
	}
	if (c.API.TLSConfig.CertFile == "") != (c.API.TLSConfig.KeyFile == "") {
		return fieldErr("API.TLSConfig.CertFile", "a client certificate needs {API.TLSConfig.KeyFile}, and the other way round")
	}
	if _, err := api.SetupTLSConfig(&c.API.TLSConfig); err != nil {
		return &adapter.FieldError{Field: "API.TLSConfig", Err: err}
	}
	return nil
}

// Validate reports the first invalid field as an *adapter.FieldError.
func (c *JobConfig) Validate() error {
	if c.AllDatacenters && len(c.Datacenters) > 0 {
		return fieldErr("AllDatacenters", "cannot be combined with {Datacenters}")
	}
	for _, dc := range c.Datacenters {
		if dc == "" || strings.ContainsAny(dc, "/?&# ") {
			return fieldErr("Datacenters", "%q is not a datacenter name", dc)
		}
	}
	if err := c.Selection.Validate(); err != nil {
		var fe *adapter.FieldError
		if errors.As(err, &fe) {
			return &adapter.FieldError{Field: "Selection." + fe.Field, Err: fe.Err}
		}
		return err
	}
	return nil
}

// validateAddress checks an agent address: host:port, or a URL with scheme
// http or https, never with credentials in it (they would end up in logs).
func validateAddress(addr string) error {
	if addr == "" {
		return errors.New("must not be empty")
	}
	if strings.HasPrefix(addr, "unix://") {
		return fmt.Errorf("unix socket addresses are not supported: %s", addr)
	}
	scheme, rest, ok := strings.Cut(addr, "://")
	if !ok {
		if strings.Contains(addr, "@") {
			return errors.New("must not carry credentials; use {API.HttpAuth.Username} and {PasswordFile}")
		}
		return nil
	}
	if scheme != "http" && scheme != "https" {
		return fmt.Errorf("scheme %q is not http or https", scheme)
	}
	if u, err := url.Parse(addr); err == nil && u.User != nil || strings.Contains(strings.SplitN(rest, "/", 2)[0], "@") {
		return errors.New("must not carry credentials; use {API.HttpAuth.Username} and {PasswordFile}")
	}
	return nil
}

// withDefaults returns c with the defaults filled in.
func (c WatchConfig) withDefaults() WatchConfig {
	if c.WaitTime == 0 {
		c.WaitTime = DefaultWaitTime
	}
	if c.MaxConnections == 0 {
		c.MaxConnections = DefaultMaxConnections
	}
	if c.MinRequestInterval == 0 {
		c.MinRequestInterval = DefaultMinRequestInterval
	}
	if c.Logger == nil {
		c.Logger = log.NewNopLogger()
	}
	if c.DatacentersInterval == 0 {
		c.DatacentersInterval = DefaultDatacentersInterval
	}
	if c.TokenCheckInterval == 0 {
		c.TokenCheckInterval = DefaultTokenCheckInterval
	}
	return c
}

// withDefaults returns c with the defaults filled in, the Watch's for its
// datacenter, namespace and partition.
func (c JobConfig) withDefaults(w *WatchConfig) JobConfig {
	if c.TagSeparator == "" {
		c.TagSeparator = DefaultTagSeparator
	}
	if len(c.Datacenters) == 0 && !c.AllDatacenters && w.API.Datacenter != "" {
		c.Datacenters = []string{w.API.Datacenter}
	}
	if c.Namespace == "" {
		c.Namespace = w.API.Namespace
	}
	if c.Partition == "" {
		c.Partition = w.API.Partition
	}
	return c
}
