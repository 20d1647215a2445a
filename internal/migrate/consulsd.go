package migrate

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// Prometheus's consul_sd defaults that differ from custom-sd's: custom-sd
// falls back to the consul CLI's environment variables, Prometheus does not.
const (
	promConsulServer = "localhost:8500"
	promConsulScheme = "http"
)

// fieldNote is a field of a consul_sd_configs entry that custom-sd.yml does
// not hold as it is, and why.
type fieldNote struct {
	field  string // as the Prometheus configuration spells it: tls_config.ca
	reason string
}

// consulSD is one consul_sd_configs entry in custom-sd's terms.
type consulSD struct {
	agent *config.Consul
	// job holds the selection; the caller names it and sets its output.
	job *config.Job
	// refreshInterval is the entry's refresh_interval, if it has one.
	refreshInterval string
	notes           []fieldNote
}

// Reasons shared by several fields.
const (
	noSecretManager = "not supported: custom-sd reads no secret manager; give the secret in a file"
	noHeaders       = "not supported: custom-sd sends no extra HTTP headers to Consul"
	proxyFromEnv    = "custom-sd always takes HTTP_PROXY, HTTPS_PROXY and NO_PROXY from its environment"
)

// convertConsulSD turns one consul_sd_configs entry into custom-sd's agent
// settings and selection. path maps a file path of the Prometheus
// configuration to one that means the same file in custom-sd.yml. Every
// field it does not carry over as it is gets a note; an entry that
// Prometheus itself would refuse is an error.
func convertConsulSD(entry *yaml.Node, path func(string) string) (*consulSD, error) {
	pairs, err := mappingPairs(entry)
	if err != nil {
		return nil, err
	}
	c := &consulSD{agent: &config.Consul{}, job: &config.Job{}}
	var auth agentAuth
	for _, p := range pairs {
		known, err := c.agentField(p, path, &auth)
		if !known {
			known, err = c.selectionField(p)
		}
		if !known {
			err = c.otherField(p)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := c.settle(auth); err != nil {
		return nil, err
	}
	return c, nil
}

// agentAuth is what an entry says about authenticating to Consul, checked
// once every field is read.
type agentAuth struct {
	tokenSources   []string // the fields that gave a token
	basicAuth      bool
	user, password string
}

// agentField carries over p if it says how to reach Consul; known is false
// if it does not.
func (c *consulSD) agentField(p pair, path func(string) string, auth *agentAuth) (known bool, err error) {
	a := c.agent
	setToken := func(token, file string) {
		auth.tokenSources = append(auth.tokenSources, p.key)
		a.Token, a.TokenFile = token, file
	}
	switch p.key {
	case "server":
		err = p.decode(&a.Server)
		if err == nil && strings.TrimSpace(a.Server) == "" {
			err = fmt.Errorf("%s: must not be empty", p.key)
		}
	case "scheme":
		err = p.decode(&a.Scheme)
	case "path_prefix":
		err = p.decode(&a.PathPrefix)
	case "token", "bearer_token":
		var token string
		if err = p.decode(&token); err == nil && token != "" {
			setToken(token, "")
		}
	case "bearer_token_file":
		var file string
		if err = p.decode(&file); err == nil && file != "" {
			setToken("", path(file))
		}
	case "authorization":
		var token, file string
		token, file, err = c.authorization(p, path)
		if err == nil && (token != "" || file != "") {
			setToken(token, file)
		}
	case "username":
		err = p.decode(&auth.user)
	case "password":
		err = p.decode(&auth.password)
	case "basic_auth":
		auth.basicAuth = true
		err = c.basicAuth(p, path)
	case "tls_config":
		err = c.tlsConfig(p, path)
	default:
		return false, nil
	}
	return true, err
}

// selectionField carries over p if it selects targets; known is false if
// it does not.
func (c *consulSD) selectionField(p pair) (known bool, err error) {
	j := c.job
	var into any
	switch p.key {
	case "services":
		into = &j.Services
	case "tags":
		into = &j.Tags
	case "node_meta":
		into = &j.NodeMeta
	case "filter":
		into = &j.Filter
	case "health_filter":
		into = &j.HealthFilter
	case "datacenter":
		into = &j.Datacenter
	case "allow_stale":
		into = &j.AllowStale
	case "tag_separator":
		into = &j.TagSeparator
	case "namespace":
		into = &j.Namespace
	case "partition":
		into = &j.Partition
	default:
		return false, nil
	}
	return true, p.decode(into)
}

// otherField notes why p, which neither reaches Consul nor selects
// targets, is not carried over.
func (c *consulSD) otherField(p pair) error {
	var err error
	switch p.key {
	case "refresh_interval":
		err = p.decode(&c.refreshInterval)
		c.note(p.key, "not needed: custom-sd uses blocking queries, so a change reaches the file at once (output.interval paces bursts)")
	case "follow_redirects":
		var follow bool
		if err = p.decode(&follow); err == nil && follow {
			c.note(p.key, "not needed: custom-sd follows redirects too")
		} else if err == nil {
			c.note(p.key, "not supported: custom-sd follows redirects (Consul's API sends none)")
		}
	case "enable_http2":
		var h2 bool
		if err = p.decode(&h2); err == nil && h2 {
			c.note(p.key, "not needed: custom-sd speaks HTTP/2 over HTTPS too")
		} else if err == nil {
			c.note(p.key, "not supported: custom-sd always speaks HTTP/2 over HTTPS")
		}
	case "proxy_url", "no_proxy", "proxy_from_environment":
		err = c.proxyField(p)
	case "proxy_connect_header":
		c.note(p.key, "not supported: custom-sd sends no extra headers to a proxy")
	case "oauth2":
		c.note(p.key, "not supported: custom-sd authenticates to Consul with a token, basic auth or a TLS client certificate; this job reads Consul without OAuth2")
	case "http_headers":
		c.note(p.key, noHeaders)
	default:
		c.note(p.key, "unknown field: not one of consul_sd_configs' (Prometheus refuses it too); ignored")
	}
	return err
}

// proxyField notes how to give custom-sd the proxy settings of p.
func (c *consulSD) proxyField(p pair) error {
	switch p.key {
	case "proxy_url":
		var u string
		if err := p.decode(&u); err != nil {
			return err
		}
		if parsed, perr := url.Parse(u); perr == nil {
			u = parsed.Redacted()
		}
		c.note(p.key, fmt.Sprintf("not supported in custom-sd.yml: %s; run it with HTTP_PROXY/HTTPS_PROXY=%s", proxyFromEnv, u))
	case "no_proxy":
		var s string
		if err := p.decode(&s); err != nil {
			return err
		}
		c.note(p.key, fmt.Sprintf("not supported in custom-sd.yml: %s; run it with NO_PROXY=%s", proxyFromEnv, s))
	case "proxy_from_environment":
		var env bool
		if err := p.decode(&env); err != nil {
			return err
		}
		if env {
			c.note(p.key, "not needed: "+proxyFromEnv)
		} else {
			c.note(p.key, "not supported: "+proxyFromEnv+"; unset them there if Consul must be reached directly")
		}
	}
	return nil
}

// settle checks the authentication the entry gave and fills in
// consul_sd's defaults.
func (c *consulSD) settle(auth agentAuth) error {
	a := c.agent
	if auth.user != "" || auth.password != "" {
		if auth.basicAuth {
			return errors.New("give either username and password or basic_auth, not both (Prometheus refuses both too)")
		}
		a.Username, a.Password = auth.user, auth.password
	}
	if len(auth.tokenSources) > 1 {
		return fmt.Errorf("%s: give one of them (Prometheus refuses several too)", strings.Join(auth.tokenSources, ", "))
	}
	if a.Server == "" {
		a.Server = promConsulServer
	}
	if a.Scheme == "" && !strings.Contains(a.Server, "://") {
		a.Scheme = promConsulScheme
	}
	return nil
}

func (c *consulSD) note(field, reason string) {
	c.notes = append(c.notes, fieldNote{field, reason})
}

// basicAuth carries basic_auth over.
func (c *consulSD) basicAuth(p pair, path func(string) string) error {
	pairs, err := mappingPairs(p.value)
	if err != nil {
		return fmt.Errorf("%s: %w", p.key, err)
	}
	for _, q := range pairs {
		field := p.key + "." + q.key
		switch q.key {
		case "username":
			err = q.decode(&c.agent.Username)
		case "password":
			err = q.decode(&c.agent.Password)
		case "password_file":
			err = q.decodePath(&c.agent.PasswordFile, path)
		case "username_file":
			c.note(field, "not supported: custom-sd.yml takes the user name itself (username)")
		case "username_ref", "password_ref":
			c.note(field, noSecretManager)
		default:
			c.note(field, "unknown field: ignored")
		}
		if err != nil {
			return prefixErr(p.key, err)
		}
	}
	return nil
}

// authorization carries a Bearer authorization over as the Consul token:
// Consul takes its ACL token as a bearer token.
func (c *consulSD) authorization(p pair, path func(string) string) (token, file string, err error) {
	pairs, err := mappingPairs(p.value)
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", p.key, err)
	}
	typ := "Bearer" // Prometheus's default
	for _, q := range pairs {
		if q.key == "type" {
			if err := q.decode(&typ); err != nil {
				return "", "", prefixErr(p.key, err)
			}
		}
	}
	bearer := strings.EqualFold(typ, "Bearer")
	for _, q := range pairs {
		field := p.key + "." + q.key
		switch q.key {
		case "type":
			if !bearer {
				c.note(p.key, fmt.Sprintf("not supported: type %q (only Bearer, a Consul ACL token, is carried over); this job reads Consul without these credentials", typ))
			}
		case "credentials":
			err = q.decode(&token)
		case "credentials_file":
			err = q.decodePath(&file, path)
		case "credentials_ref":
			c.note(field, noSecretManager)
		default:
			c.note(field, "unknown field: ignored")
		}
		if err != nil {
			return "", "", prefixErr(p.key, err)
		}
	}
	if !bearer {
		return "", "", nil
	}
	return token, file, nil
}

// tlsConfig carries tls_config over.
func (c *consulSD) tlsConfig(p pair, path func(string) string) error {
	pairs, err := mappingPairs(p.value)
	if err != nil {
		return fmt.Errorf("%s: %w", p.key, err)
	}
	t := &config.TLSConfig{}
	for _, q := range pairs {
		field := p.key + "." + q.key
		switch q.key {
		case "ca_file":
			err = q.decodePath(&t.CAFile, path)
		case "cert_file":
			err = q.decodePath(&t.CertFile, path)
		case "key_file":
			err = q.decodePath(&t.KeyFile, path)
		case "server_name":
			err = q.decode(&t.ServerName)
		case "insecure_skip_verify":
			err = q.decode(&t.InsecureSkipVerify)
		case "ca", "cert", "key":
			c.note(field, fmt.Sprintf("not supported: custom-sd.yml takes certificates from files; write the PEM to a file and set tls_config.%s_file", q.key))
		case "ca_ref", "cert_ref", "key_ref":
			c.note(field, noSecretManager)
		case "min_version", "max_version":
			c.note(field, "not supported: custom-sd uses Go's TLS defaults (TLS 1.2 or later)")
		default:
			c.note(field, "unknown field: ignored")
		}
		if err != nil {
			return prefixErr(p.key, err)
		}
	}
	if *t != (config.TLSConfig{}) {
		c.agent.TLSConfig = t
	}
	return nil
}

func prefixErr(key string, err error) error {
	return fmt.Errorf("%s.%w", key, err)
}
