package migrate

import (
	"errors"
	"reflect"
	"strings"
	"time"

	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"go.yaml.in/yaml/v3"
)

// sdConfig is a consul_sd_configs entry with the fields, defaults and
// checks of Prometheus 3's consul_sd (discovery/consul.SDConfig). Its HTTP
// client settings are prometheus/common's, which decodes and validates
// them as Prometheus does.
type sdConfig struct {
	Server       string            `yaml:"server,omitempty"`
	PathPrefix   string            `yaml:"path_prefix,omitempty"`
	Token        promconfig.Secret `yaml:"token,omitempty"`
	Datacenter   string            `yaml:"datacenter,omitempty"`
	Namespace    string            `yaml:"namespace,omitempty"`
	Partition    string            `yaml:"partition,omitempty"`
	TagSeparator string            `yaml:"tag_separator,omitempty"`
	Scheme       string            `yaml:"scheme,omitempty"`
	Username     string            `yaml:"username,omitempty"`
	Password     promconfig.Secret `yaml:"password,omitempty"`

	AllowStale      bool              `yaml:"allow_stale"`
	RefreshInterval model.Duration    `yaml:"refresh_interval,omitempty"`
	Services        []string          `yaml:"services,omitempty"`
	ServiceTags     []string          `yaml:"tags,omitempty"`
	NodeMeta        map[string]string `yaml:"node_meta,omitempty"`
	Filter          string            `yaml:"filter,omitempty"`
	HealthFilter    string            `yaml:"health_filter,omitempty"`

	HTTPClientConfig promconfig.HTTPClientConfig `yaml:",inline"`
}

// defaultSDConfig is consul_sd's defaults.
func defaultSDConfig() sdConfig {
	return sdConfig{
		Server:           "localhost:8500",
		Scheme:           "http",
		TagSeparator:     ",",
		AllowStale:       true,
		RefreshInterval:  model.Duration(30 * time.Second),
		HTTPClientConfig: promconfig.DefaultHTTPClientConfig,
	}
}

// decodeSDConfig decodes a consul_sd_configs entry as Prometheus does: a
// field it does not know, a value of the wrong type, or settings it
// refuses together are errors, with its message. keys are the entry's
// keys, merged ones included.
func decodeSDConfig(entry *yaml.Node) (sd *sdConfig, keys map[string]bool, err error) {
	pairs, err := mappingPairs(entry)
	if err != nil {
		return nil, nil, err
	}
	if err := checkFields(entry, reflect.TypeFor[sdConfig](), "consul_sd_configs"); err != nil {
		return nil, nil, err
	}
	c := defaultSDConfig()
	if err := entry.Decode(&c); err != nil {
		return nil, nil, yamlError(err)
	}
	zeroNulls(reflect.ValueOf(&c).Elem(), pairs)
	if err := c.validate(); err != nil {
		return nil, nil, err
	}
	keys = map[string]bool{}
	for _, p := range pairs {
		keys[p.key] = true
	}
	return &c, keys, nil
}

// validate makes the checks of consul_sd's UnmarshalYAML, in its order and
// with its messages, then prometheus/common's HTTPClientConfig.Validate,
// which also turns bearer_token(_file) into authorization. Username and
// password become basic_auth, as there.
func (c *sdConfig) validate() error {
	if strings.TrimSpace(c.Server) == "" {
		return errors.New("consul SD configuration requires a server address")
	}
	hc := &c.HTTPClientConfig
	if c.Username != "" || c.Password != "" {
		if hc.BasicAuth != nil {
			return errors.New("at most one of consul SD configuration username and password and basic auth can be configured")
		}
		hc.BasicAuth = &promconfig.BasicAuth{Username: c.Username, Password: c.Password}
	}
	if c.Token != "" && (hc.Authorization != nil || hc.OAuth2 != nil) {
		return errors.New("at most one of consul SD token, authorization, or oauth2 can be configured")
	}
	return hc.Validate()
}

// zeroNulls sets the fields given as null to their zero value, as
// Prometheus's yaml.v2 does (yaml.v3 leaves them as they were: server:
// with no value would keep the default where Prometheus refuses it).
func zeroNulls(v reflect.Value, pairs []pair) {
	for _, p := range pairs {
		if n := resolve(p.value); n.Kind != yaml.ScalarNode || n.ShortTag() != "!!null" {
			continue
		}
		if f, ok := fieldByKey(v, p.key); ok {
			f.SetZero()
		}
	}
}
