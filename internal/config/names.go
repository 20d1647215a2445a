package config

import "strings"

// name is one setting under the names it goes by: its key in the
// configuration file (within its section), its command-line flag, and the
// field of the library configuration it becomes.
type name struct {
	key   string // "output.mode", "tls_config.ca_file"
	flag  string // "--output.mode"; "" when only the file has it
	field string // "FileMode", "API.TLSConfig.CAFile"; "" when no library field is it
}

// names is the one table of names: errors are rendered from it under the
// file's keys or the command line's flags, and the flags map to the file's
// keys through it (cmd/custom-sd).
var names = []name{
	// The agent's section: consul, or consuls.<name>.
	{"server", "--consul.server", "API.Address"},
	{"scheme", "--consul.scheme", "API.Scheme"},
	{"path_prefix", "--consul.path-prefix", "API.PathPrefix"},
	{"token", "", ""},
	{"token_file", "--consul.token-file", "TokenFile"},
	{"username", "--consul.username", "API.HttpAuth.Username"},
	{"password", "", ""},
	{"password_file", "--consul.password-file", "PasswordFile"},
	{"tls_config", "--consul.tls.*", "API.TLSConfig"},
	{"tls_config.ca_file", "--consul.tls.ca-file", "API.TLSConfig.CAFile"},
	{"tls_config.cert_file", "--consul.tls.cert-file", "API.TLSConfig.CertFile"},
	{"tls_config.key_file", "--consul.tls.key-file", "API.TLSConfig.KeyFile"},
	{"tls_config.server_name", "--consul.tls.server-name", "API.TLSConfig.Address"},
	{"tls_config.insecure_skip_verify", "--consul.tls.insecure-skip-verify", "API.TLSConfig.InsecureSkipVerify"},
	{"max_connections", "--consul.max-connections", "MaxConnections"},
	{"wait_time", "--consul.wait-time", "WaitTime"},
	{"verify_interval", "--consul.verify-interval", ""},

	// A job: jobs[<name>].
	{"name", "", ""},
	{"consul", "", ""},
	{"services", "--consul.service", "Selection.Services"},
	{"tags", "--consul.tag", "Selection.Tags"},
	{"node_meta", "--consul.node-meta", "Selection.NodeMeta"},
	{"filter", "--consul.filter", "Selection.Filter"},
	{"health_filter", "--consul.health-filter", "Selection.HealthFilter"},
	{"datacenter", "", ""},
	{"datacenters", "--consul.datacenter", "Datacenters"},
	{"all_datacenters", "--consul.all-datacenters", "AllDatacenters"},
	{"allow_stale", "--consul.allow-stale", "AllowStale"},
	{"tag_separator", "--consul.tag-separator", "TagSeparator"},
	{"namespace", "--consul.namespace", "Namespace"},
	{"partition", "--consul.partition", "Partition"},
	{"health", "--consul.health", "Selection.Health"},
	{"exclude_services", "--consul.exclude-service", "Selection.Exclude"},
	{"output.file", "--output.file", ""},
	{"output.mode", "--output.mode", "FileMode"},
	{"output.interval", "--output.interval", "Interval"},
	{"output.max_removal", "--output.max-removal", "MaxRemoval"},
	{"output.removal_hold", "--output.removal-hold", "RemovalHold"},
	{"output.shards", "--output.shards", "Shards"},
	{"output.shard", "--output.shard", ""},
}

// keyOfField names the file's key for a field of the libraries'
// configurations, or returns the field.
func keyOfField(field string) string {
	for _, n := range names {
		if n.field == field {
			return n.key
		}
	}
	return field
}

// FlagOf names the command-line flag of a key, or returns the key when only
// the file has it.
func FlagOf(key string) string {
	for _, n := range names {
		if n.key == key && n.flag != "" {
			return n.flag
		}
	}
	return key
}

// KeyOfFlag names the file's key of a command-line flag given without its
// dashes ("output.mode"), or "" for a flag that is not a key.
func KeyOfFlag(flag string) string {
	for _, n := range names {
		if strings.TrimPrefix(n.flag, "--") == flag {
			return n.key
		}
	}
	return ""
}
