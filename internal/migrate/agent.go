package migrate

import (
	"fmt"
	"strings"

	promconfig "github.com/prometheus/common/config"

	"github.com/custom-sd/custom-sd/internal/config"
)

// Reasons shared by several fields.
const (
	noSecretManager = "not supported: custom-sd reads no secret manager; give the secret in a file"
	noCredentials   = "this job reads Consul without these credentials; give custom-sd an ACL token (token_file) or basic auth if Consul needs one"
)

// agentOf is how the entry reaches Consul, in custom-sd's terms. path
// relocates file paths.
func (c *consulSD) agentOf(sd *sdConfig, keys map[string]bool, path func(string) string) *config.Consul {
	a := &config.Consul{Server: sd.Server, PathPrefix: sd.PathPrefix}
	if keys["scheme"] || !strings.Contains(sd.Server, "://") {
		a.Scheme = sd.Scheme
	}
	c.token(sd, keys, a, path)
	c.basicAuth(sd.HTTPClientConfig.BasicAuth, keys, a, path)
	a.TLSConfig = c.tlsConfig(&sd.HTTPClientConfig.TLSConfig, path)
	return a
}

// token carries the ACL token over: token, or a Bearer authorization
// (bearer_token and bearer_token_file are one, after validation), which
// Consul takes as the token too.
func (c *consulSD) token(sd *sdConfig, keys map[string]bool, a *config.Consul, path func(string) string) {
	auth := sd.HTTPClientConfig.Authorization
	if auth == nil {
		if sd.Token != "" {
			a.Token = string(sd.Token)
		}
		return
	}
	field := "authorization"
	switch {
	case keys["bearer_token"]:
		field = "bearer_token"
	case keys["bearer_token_file"]:
		field = "bearer_token_file"
	}
	if sd.Token != "" {
		a.Token = string(sd.Token)
		c.note(field, "not carried over: Consul takes the token field (X-Consul-Token) before an Authorization header, so Consul never used it")
		return
	}
	if !strings.EqualFold(auth.Type, "Bearer") {
		c.note(field, fmt.Sprintf("not supported: type %q (only Bearer, a Consul ACL token, is carried over); %s", auth.Type, noCredentials))
		return
	}
	switch {
	case auth.Credentials != "":
		a.Token = string(auth.Credentials)
	case auth.CredentialsFile != "":
		a.TokenFile = path(auth.CredentialsFile)
	case auth.CredentialsRef != "":
		c.note(field+".credentials_ref", noSecretManager+"; "+noCredentials)
	}
}

// basicAuth carries basic auth over (username and password are basic_auth,
// after validation). custom-sd.yml takes the user name itself and a
// password with it; otherwise basic auth is not carried over.
func (c *consulSD) basicAuth(ba *promconfig.BasicAuth, keys map[string]bool, a *config.Consul, path func(string) string) {
	if ba == nil {
		return
	}
	field := "basic_auth"
	if !keys["basic_auth"] {
		field = "username"
	}
	switch {
	case ba.UsernameFile != "":
		c.note(field+".username_file", fmt.Sprintf("not supported: custom-sd.yml takes the user name itself; set username to what %s holds; %s", ba.UsernameFile, noCredentials))
		return
	case ba.UsernameRef != "":
		c.note(field+".username_ref", noSecretManager+"; "+noCredentials)
		return
	case ba.PasswordRef != "":
		c.note(field+".password_ref", noSecretManager+"; "+noCredentials)
		return
	case ba.Username == "" && (ba.Password != "" || ba.PasswordFile != ""):
		c.note(field, "not supported: a password without a user name; "+noCredentials)
		return
	}
	a.Username, a.Password = ba.Username, string(ba.Password)
	if ba.PasswordFile != "" {
		a.PasswordFile = path(ba.PasswordFile)
	}
}

// tlsConfig carries tls_config over; nil if it sets nothing.
func (c *consulSD) tlsConfig(t *promconfig.TLSConfig, path func(string) string) *config.TLSConfig {
	out := &config.TLSConfig{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	for _, f := range []struct {
		name      string
		pem       string
		file, ref string
		dst       *string
	}{
		{"ca", t.CA, t.CAFile, t.CARef, &out.CAFile},
		{"cert", t.Cert, t.CertFile, t.CertRef, &out.CertFile},
		{"key", string(t.Key), t.KeyFile, t.KeyRef, &out.KeyFile},
	} {
		switch {
		case f.file != "":
			*f.dst = path(f.file)
		case f.pem != "":
			c.note("tls_config."+f.name, fmt.Sprintf("not supported: custom-sd.yml takes certificates from files; write the PEM to a file and set tls_config.%s_file", f.name))
		case f.ref != "":
			c.note("tls_config."+f.name+"_ref", noSecretManager)
		}
	}
	if t.MinVersion != 0 {
		c.note("tls_config.min_version", "not supported: custom-sd uses Go's TLS defaults (TLS 1.2 or later)")
	}
	if t.MaxVersion != 0 {
		c.note("tls_config.max_version", "not supported: custom-sd uses Go's TLS defaults (TLS 1.2 or later)")
	}
	if *out == (config.TLSConfig{}) {
		return nil
	}
	return out
}
