package migrate

import (
	"errors"
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

// agentOf is how the entry reaches Consul, in custom-sd's terms, with its
// inline secrets in c.secrets. path relocates file paths.
func (c *consulSD) agentOf(sd *sdConfig, keys map[string]bool, path func(string) string) (*config.Consul, error) {
	server, user, password, hasUser, err := splitServer(sd.Server)
	if err != nil {
		return nil, err
	}
	a := &config.Consul{Server: server, PathPrefix: sd.PathPrefix}
	if keys["scheme"] || !strings.Contains(server, "://") {
		a.Scheme = sd.Scheme
	}
	hc := &sd.HTTPClientConfig
	if hasUser {
		if hc.BasicAuth != nil || hc.Authorization != nil || hc.OAuth2 != nil {
			return nil, errors.New("server: the user name in it and basic auth, authorization, a bearer token or oauth2 would all set the Authorization header; keep one")
		}
		a.Username, c.secrets.password = user, password
	}
	c.token(sd, keys, a, path)
	c.basicAuth(hc.BasicAuth, keys, a, path)
	a.TLSConfig = c.tlsConfig(&hc.TLSConfig, path)
	return a, nil
}

// token carries the ACL token over: token, or a Bearer authorization
// (bearer_token and bearer_token_file are one, after validation), which
// Consul takes as the token too.
func (c *consulSD) token(sd *sdConfig, keys map[string]bool, a *config.Consul, path func(string) string) {
	auth := sd.HTTPClientConfig.Authorization
	c.secrets.token = string(sd.Token)
	if auth == nil {
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
		c.note(field, "not carried over: Consul takes the token field (X-Consul-Token) before an Authorization header, so Consul never used it")
		return
	}
	if !strings.EqualFold(auth.Type, "Bearer") {
		c.note(field, fmt.Sprintf("not supported: type %q (only Bearer, a Consul ACL token, is carried over); %s", auth.Type, noCredentials))
		return
	}
	switch {
	case auth.Credentials != "":
		c.secrets.token = string(auth.Credentials)
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
	a.Username, c.secrets.password = ba.Username, string(ba.Password)
	if ba.PasswordFile != "" {
		a.PasswordFile = path(ba.PasswordFile)
	}
}

// tlsConfig carries tls_config over, PEM blocks given inline into
// c.secrets; nil if it sets no file.
func (c *consulSD) tlsConfig(t *promconfig.TLSConfig, path func(string) string) *config.TLSConfig {
	out := &config.TLSConfig{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify}
	for _, f := range []struct {
		name      string
		pem       string
		file, ref string
		dst       *string
		inline    *string
	}{
		{"ca", t.CA, t.CAFile, t.CARef, &out.CAFile, &c.secrets.ca},
		{"cert", t.Cert, t.CertFile, t.CertRef, &out.CertFile, &c.secrets.cert},
		{"key", string(t.Key), t.KeyFile, t.KeyRef, &out.KeyFile, &c.secrets.key},
	} {
		switch {
		case f.file != "":
			*f.dst = path(f.file)
		case f.pem != "":
			*f.inline = f.pem
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
