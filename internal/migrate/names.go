package migrate

import (
	"fmt"
	"net"
	"regexp"
	"strings"
)

// jobNameChars are the characters custom-sd allows in a job name after
// the first (config.ValidJobName).
var jobNameChars = regexp.MustCompile(`[^a-zA-Z0-9_.-]`)

// sanitizeName makes s a valid job name: other characters become _.
func sanitizeName(s string) string {
	s = jobNameChars.ReplaceAllString(s, "_")
	if s == "" || s[0] == '.' || s[0] == '-' {
		s = "_" + strings.TrimLeft(s, ".-")
	}
	return s
}

// unique returns name, or name_2, name_3... whichever is not taken yet,
// and takes it.
func unique(name string, taken map[string]bool) string {
	n := name
	for i := 2; taken[n]; i++ {
		n = fmt.Sprintf("%s_%d", name, i)
	}
	taken[n] = true
	return n
}

// serverHost is the host of a consul_sd server address.
func serverHost(server string) string {
	host := server
	if _, rest, ok := strings.Cut(server, "://"); ok {
		host = rest
	}
	host, _, _ = strings.Cut(host, "/")
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	return strings.Trim(host, "[]")
}
