package migrate

import (
	"fmt"
	"net/url"
)

// proxyFromEnv says where custom-sd takes its proxy from.
const proxyFromEnv = "custom-sd always takes HTTP_PROXY, HTTPS_PROXY and NO_PROXY from its environment"

// clientNotes notes the HTTP client settings of an entry that custom-sd.yml
// has no place for, and what to do instead.
func (c *consulSD) clientNotes(sd *sdConfig, keys map[string]bool) {
	hc := &sd.HTTPClientConfig
	if keys["follow_redirects"] {
		if hc.FollowRedirects {
			c.note("follow_redirects", "not needed: custom-sd follows redirects too")
		} else {
			c.note("follow_redirects", "not supported: custom-sd follows redirects (Consul's API sends none)")
		}
	}
	if keys["enable_http2"] {
		if hc.EnableHTTP2 {
			c.note("enable_http2", "not needed: custom-sd speaks HTTP/2 over HTTPS too")
		} else {
			c.note("enable_http2", "not supported: custom-sd always speaks HTTP/2 over HTTPS")
		}
	}
	if u := hc.ProxyURL.URL; u != nil && u.String() != "" {
		c.note("proxy_url", fmt.Sprintf("not supported in custom-sd.yml: %s; run it with HTTP_PROXY/HTTPS_PROXY=%s", proxyFromEnv, redactURL(u)))
	}
	if hc.NoProxy != "" {
		c.note("no_proxy", fmt.Sprintf("not supported in custom-sd.yml: %s; run it with NO_PROXY=%s", proxyFromEnv, hc.NoProxy))
	}
	if keys["proxy_from_environment"] {
		if hc.ProxyFromEnvironment {
			c.note("proxy_from_environment", "not needed: "+proxyFromEnv)
		} else {
			c.note("proxy_from_environment", "not supported: "+proxyFromEnv+"; unset them there if Consul must be reached directly")
		}
	}
	if len(hc.ProxyConnectHeader) > 0 {
		c.note("proxy_connect_header", "not supported: custom-sd sends no extra headers to a proxy")
	}
	if hc.OAuth2 != nil {
		c.note("oauth2", "not supported: custom-sd authenticates to Consul with an ACL token, basic auth or a TLS client certificate; "+noCredentials)
	}
	if hc.HTTPHeaders != nil {
		c.note("http_headers", "not supported: custom-sd sends no extra HTTP headers to Consul; an ACL token goes in token_file")
	}
}

// redactURL writes u with its password, if any, as <secret>.
func redactURL(u *url.URL) string {
	if _, ok := u.User.Password(); !ok {
		return u.String()
	}
	if u.Opaque != "" {
		return secretMark
	}
	r := *u
	r.User = url.User(u.User.Username())
	s := r.String()
	at := len(r.Scheme) + len("://") + len(r.User.String())
	return s[:at] + ":" + secretMark + s[at:]
}
