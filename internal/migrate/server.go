package migrate

import (
	"errors"
	"net/url"
	"strings"
)

// splitServer takes the user name and password out of a consul_sd server
// address, written as a URL (http://user:pass@host:8500) or without a
// scheme (user:pass@host:8500): Prometheus's Consul client sends them as
// basic auth. The error names no part of the address.
func splitServer(server string) (rest, user, password string, hasUser bool, err error) {
	scheme, hostPart, found := strings.Cut(server, "://")
	if !found {
		scheme, hostPart = "", server
	}
	authority, path, _ := strings.Cut(hostPart, "/")
	at := strings.LastIndex(authority, "@")
	if at < 0 {
		return server, "", "", false, nil
	}
	userinfo := authority[:at]
	rest = authority[at+1:]
	if found {
		rest = scheme + "://" + rest
	}
	if path != "" || strings.HasSuffix(hostPart, "/") {
		rest += "/" + path
	}
	user, password, _ = strings.Cut(userinfo, ":")
	if user, err = url.PathUnescape(user); err == nil {
		password, err = url.PathUnescape(password)
	}
	if err != nil {
		return "", "", "", false, errors.New("server: the user name and password in it are not URL-escaped properly")
	}
	return rest, user, password, true, nil
}
