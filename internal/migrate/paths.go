package migrate

import (
	"fmt"
	"path/filepath"

	"go.yaml.in/yaml/v3"
)

// PathChange is a relative path rewritten to keep naming the same file
// from the output directory.
type PathChange struct {
	// File is the file written: ConfigFile or PrometheusFile.
	File string
	// Where is the place in the file, such as
	// "scrape_configs[node].tls_config.ca_file".
	Where    string
	From, To string
}

// relocate maps a path relative to from into one relative to to that
// names the same file; absolute paths stay as they are.
func relocate(from, to string) func(string) string {
	return func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		abs := filepath.Join(from, p)
		r, err := filepath.Rel(to, abs)
		if err != nil {
			return abs
		}
		if r == filepath.Clean(p) {
			return p
		}
		return r
	}
}

// promPathKeys are the keys whose values (a path or a list of paths)
// Prometheus resolves against its configuration file's directory
// (config.JoinDir in Prometheus and prometheus/common).
var promPathKeys = map[string]bool{
	"rule_files": true, "scrape_config_files": true, "query_log_file": true, "scrape_failure_log_file": true,
	"files":   true, // file_sd_configs, http_headers
	"ca_file": true, "cert_file": true, "key_file": true, "password_file": true, "username_file": true,
	"credentials_file": true, "client_secret_file": true, "bearer_token_file": true,
	"kubeconfig_file": true, "auth_token_file": true, "secret_key_file": true, "key_passphrase_file": true,
}

// promPathSkip are keys whose subtrees hold paths that Prometheus does not
// resolve against its directory (google_iam's credentials_file is read as
// given).
var promPathSkip = map[string]bool{"google_iam": true}

// rewritePaths rewrites every relative path of the configuration with rel,
// leaving out the subtrees in skip.
func (f *promFile) rewritePaths(rel func(string) string, skip map[*yaml.Node]bool) []PathChange {
	var changes []PathChange
	var walk func(n *yaml.Node, where string)
	rewrite := func(n *yaml.Node, where string) {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || n.Value == "" {
			return
		}
		to := rel(n.Value)
		if to == n.Value {
			return
		}
		changes = append(changes, PathChange{PrometheusFile, where, n.Value, to})
		f.replaceScalar(n, to)
	}
	walk = func(n *yaml.Node, where string) {
		if n == nil || skip[n] {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, where)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				at := k
				if where != "" {
					at = where + "." + k
				}
				switch {
				case promPathSkip[k] || skip[v]:
				case promPathKeys[k] && v.Kind == yaml.SequenceNode:
					for j, item := range v.Content {
						rewrite(item, fmt.Sprintf("%s[%d]", at, j))
					}
				case promPathKeys[k]:
					rewrite(v, at)
				default:
					walk(v, at)
				}
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				at := fmt.Sprintf("%s[%d]", where, i)
				var name string
				if jn := lookup(item, "job_name"); jn != nil && jn.Kind == yaml.ScalarNode {
					name = jn.Value
				}
				if name != "" {
					at = fmt.Sprintf("%s[%s]", where, name)
				}
				walk(item, at)
			}
		}
		// Aliases are rewritten where their anchor is.
	}
	walk(f.doc, "")
	return changes
}
