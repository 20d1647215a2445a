// Package config is custom-sd's configuration: how to reach one or more
// Consul agents, and any number of jobs, each selecting targets with the
// fields of Prometheus's consul_sd_configs and writing them to a file of its
// own. The configuration file is decoded strictly into a File (decode.go);
// the command line builds the same File for its one job. Either way one
// resolver (resolve.go) validates it and maps it to the libraries'
// configurations (consul.WatchConfig, consul.JobConfig, adapter.Options).
// An error is an *Error, which one table of names (names.go) renders under
// the file's keys or the command line's flags.
package config

import "time"

// File is the configuration file as written.
type File struct {
	// Consul is how to reach the agent, when there is one.
	Consul *Consul `yaml:"consul,omitempty"`
	// Consuls names several agents; a job says which it reads.
	Consuls map[string]*Consul `yaml:"consuls,omitempty"`
	// Jobs are the selections, each with its own output.
	Jobs []*Job `yaml:"jobs"`
}

// Unset pointer fields take their defaults; a field set to its zero value
// is checked like any other value.

// Consul is how to reach one agent. Unset fields fall back to the consul
// CLI's environment variables (CONSUL_HTTP_ADDR, CONSUL_HTTP_TOKEN, ...), as
// the command-line flags do.
type Consul struct {
	Server         string     `yaml:"server,omitempty"`
	Scheme         string     `yaml:"scheme,omitempty"`
	PathPrefix     string     `yaml:"path_prefix,omitempty"`
	Token          string     `yaml:"token,omitempty"`
	TokenFile      string     `yaml:"token_file,omitempty"`
	Username       string     `yaml:"username,omitempty"`
	Password       string     `yaml:"password,omitempty"`
	PasswordFile   string     `yaml:"password_file,omitempty"`
	TLSConfig      *TLSConfig `yaml:"tls_config,omitempty"`
	MaxConnections *int       `yaml:"max_connections,omitempty"`
	WaitTime       *Duration  `yaml:"wait_time,omitempty"`
	// VerifyInterval is accepted and ignored (Config.Warnings says so):
	// every change of the catalog is verified within seconds.
	VerifyInterval *Duration `yaml:"verify_interval,omitempty"`
}

// TLSConfig is how to talk TLS to an agent, as in Prometheus's tls_config.
type TLSConfig struct {
	CAFile             string `yaml:"ca_file,omitempty"`
	CertFile           string `yaml:"cert_file,omitempty"`
	KeyFile            string `yaml:"key_file,omitempty"`
	ServerName         string `yaml:"server_name,omitempty"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify,omitempty"`
}

// Job selects targets and says where they go. The fields up to Partition
// have the names and meanings of Prometheus's consul_sd_configs.
type Job struct {
	// Name names the job in /targets/<name>, in metrics and logs.
	Name string `yaml:"name"`
	// Consul names the agent in Consuls; empty with a single one.
	Consul string `yaml:"consul,omitempty"`

	Services     []string          `yaml:"services,omitempty"`
	Tags         []string          `yaml:"tags,omitempty"`
	NodeMeta     map[string]string `yaml:"node_meta,omitempty"`
	Filter       string            `yaml:"filter,omitempty"`
	HealthFilter string            `yaml:"health_filter,omitempty"`
	Datacenter   string            `yaml:"datacenter,omitempty"`
	AllowStale   *bool             `yaml:"allow_stale,omitempty"`
	TagSeparator *string           `yaml:"tag_separator,omitempty"`
	Namespace    string            `yaml:"namespace,omitempty"`
	Partition    string            `yaml:"partition,omitempty"`

	// Health is the least health an instance needs: any, warning, passing.
	Health string `yaml:"health,omitempty"`
	// ExcludeServices are regular expressions of whole service names.
	ExcludeServices []string `yaml:"exclude_services,omitempty"`
	// Datacenters and AllDatacenters watch several datacenters in one job.
	Datacenters    []string `yaml:"datacenters,omitempty"`
	AllDatacenters bool     `yaml:"all_datacenters,omitempty"`

	Output Output `yaml:"output,omitempty"`
}

// Output is where and how a job's targets are written.
type Output struct {
	// File is the file_sd file; relative to the configuration file's
	// directory; default <name>.json there.
	File string `yaml:"file,omitempty"`
	// Mode is the file's permission bits, in octal; default 0644.
	Mode string `yaml:"mode,omitempty"`
	// Interval is the longest a change waits during a burst of writes
	// (adapter.Options.Interval).
	Interval *Duration `yaml:"interval,omitempty"`
	// MaxRemoval and RemovalHold set the mass-removal guard.
	MaxRemoval  *float64  `yaml:"max_removal,omitempty"`
	RemovalHold *Duration `yaml:"removal_hold,omitempty"`
	// Shards splits the targets into files by address; Shard, when set,
	// writes only that shard, to File as named.
	Shards *int `yaml:"shards,omitempty"`
	Shard  *int `yaml:"shard,omitempty"`
}

// Duration is a time.Duration written as "5m" or "500ms".
type Duration time.Duration

// UnmarshalText parses a duration such as 500ms or 5m.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return errNotDuration(string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration as time.Duration does.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
