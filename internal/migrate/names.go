package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"regexp"
	"strings"

	"github.com/custom-sd/custom-sd/internal/config"
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

// nameSet hands out names that are unique and fit config.MaxJobNameLen.
type nameSet struct {
	taken map[string]bool
	next  map[string]int // the next number to try after a base name
}

func newNameSet() *nameSet {
	return &nameSet{taken: map[string]bool{}, next: map[string]int{}}
}

// take returns base, or base_2, base_3... whichever is not taken yet, each
// shortened by fitName, and takes it; long is that name before it was
// shortened, or "". Asking for the same base again starts where the last
// ask stopped, so that n asks take O(n) tries.
func (s *nameSet) take(base string) (name, long string) {
	for i := max(s.next[base], 1); ; i++ {
		n := base
		if i > 1 {
			n = fmt.Sprintf("%s_%d", base, i)
		}
		name = fitName(n)
		if !s.taken[name] {
			s.taken[name] = true
			s.next[base] = i + 1
			if name != n {
				long = n
			}
			return name, long
		}
	}
}

// hashLen is how many hex digits of its SHA-256 a shortened name ends
// with.
const hashLen = 8

// fitName returns name if it has at most config.MaxJobNameLen bytes, else
// its first bytes, "-" and hashLen hex digits of the SHA-256 of the whole
// name: readable, and different for different names. name is ASCII
// (sanitizeName's).
func fitName(name string) string {
	if len(name) <= config.MaxJobNameLen {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	suffix := "-" + hex.EncodeToString(sum[:])[:hashLen]
	return name[:config.MaxJobNameLen-len(suffix)] + suffix
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
