package migrate

import (
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// SecretsDir is the directory, in the output directory, of the files that
// hold credentials custom-sd.yml names: written with mode 0600 (the
// directory 0700), never into custom-sd.yml itself.
const SecretsDir = "secrets"

// secretMark stands for a secret wherever migrate shows one.
const secretMark = "<secret>"

// SecretFile is a file holding a credential or a PEM block that the
// Prometheus configuration held inline; custom-sd.yml names it.
type SecretFile struct {
	// Path is relative to the output directory: secrets/<agent>.token.
	Path string
	Data []byte
}

// agentSecrets are the credentials and PEM blocks of an agent that the
// Prometheus configuration holds inline: each goes into a file of its own.
type agentSecrets struct {
	token, password string
	ca, cert, key   string // PEM
}

// place moves the agent's inline secrets into files named after base,
// points its settings at them, and returns the files.
func (s agentSecrets) place(base string, a *config.Consul) []SecretFile {
	var files []SecretFile
	put := func(value, suffix string, dst *string) {
		if value == "" {
			return
		}
		f := SecretFile{Path: SecretsDir + "/" + base + suffix, Data: []byte(value)}
		files = append(files, f)
		*dst = f.Path
	}
	put(s.token, ".token", &a.TokenFile)
	put(s.password, ".password", &a.PasswordFile)
	if s.ca+s.cert+s.key != "" && a.TLSConfig == nil {
		a.TLSConfig = &config.TLSConfig{}
	}
	if t := a.TLSConfig; t != nil {
		put(s.ca, "-ca.pem", &t.CAFile)
		put(s.cert, "-cert.pem", &t.CertFile)
		put(s.key, "-key.pem", &t.KeyFile)
	}
	return files
}

// redactor replaces the secrets of an entry in a message with secretMark.
type redactor []string

// minRedacted is the shortest secret redact looks for: a shorter one
// would mark letters of every word. The user information of a URL is
// marked whatever its length.
const minRedacted = 4

// urlUserinfo is the user information of a URL in a message.
var urlUserinfo = regexp.MustCompile(`://[^/@\s"']*@`)

// redact returns msg with every secret replaced.
func (r redactor) redact(msg string) string {
	msg = urlUserinfo.ReplaceAllString(msg, "://"+secretMark+"@")
	for _, s := range r {
		if len(s) >= minRedacted {
			msg = strings.ReplaceAll(msg, s, secretMark)
		}
	}
	return msg
}

// secretKeys are the keys of consul_sd_configs (and the HTTP client
// settings in it) whose values are secrets.
var secretKeys = map[string]bool{
	"token": true, "password": true, "bearer_token": true, "credentials": true, "client_secret": true,
	"key": true, "client_certificate_key": true, "secrets": true, "proxy_connect_header": true,
}

// entrySecrets lists the secrets written in a consul_sd_configs entry: the
// values of secretKeys, and the user information of a URL (or of server,
// which may be a URL without a scheme), so that an error about the entry
// can leave them out.
func entrySecrets(entry *yaml.Node) redactor {
	var r redactor
	var walk func(n *yaml.Node, key string, secret bool)
	walk = func(n *yaml.Node, key string, secret bool) {
		n = resolve(n)
		switch {
		case n == nil:
		case n.Kind == yaml.ScalarNode && secret:
			r = append(r, n.Value)
		case n.Kind == yaml.ScalarNode:
			authority, found := n.Value, false
			if _, rest, ok := strings.Cut(n.Value, "://"); ok {
				authority, found = rest, true
			}
			authority, _, _ = strings.Cut(authority, "/")
			if at := strings.LastIndex(authority, "@"); at >= 0 && (found || key == "server") {
				r = append(r, authority[:at])
			}
		case n.Kind == yaml.MappingNode:
			pairs, err := mappingPairs(n)
			if err != nil {
				return
			}
			for _, p := range pairs {
				walk(p.value, p.key, secret || secretKeys[p.key])
			}
		default:
			for _, c := range n.Content {
				walk(c, key, secret)
			}
		}
	}
	walk(entry, "", false)
	return r
}
