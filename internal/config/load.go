package config

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"

	"github.com/custom-sd/custom-sd/adapter"
	"github.com/custom-sd/custom-sd/sd/consul"
)

// DefaultConsul is the name of the agent of a file with a single consul
// section, and of the command line's.
const DefaultConsul = "default"

// Config is a configuration resolved and validated: what custom-sd runs.
type Config struct {
	// Consuls are the agents, by name.
	Consuls map[string]*Watch
	// Jobs are in the order of the file.
	Jobs []*JobSpec
	// Warnings are settings that are accepted but do nothing, to log.
	Warnings []*Error
}

// Watch is how to reach one agent.
type Watch struct {
	Name   string
	Config consul.WatchConfig
	// Files are the files the agent's settings name (token, password,
	// TLS), which custom-sd reads and re-reads.
	Files []Input
	// Fingerprint changes when the agent's settings change.
	Fingerprint string
}

// JobSpec is one job, resolved.
type JobSpec struct {
	Name   string
	Consul string // a key of Config.Consuls
	Job    consul.JobConfig
	// Path is the output file; with Options.Shards > 1, the shards are
	// named by adapter.ShardPath.
	Path    string
	Options adapter.Options
	// Shard, when not -1, writes only that shard of Shards to Path.
	Shard, Shards int
	// Fingerprint changes when anything of the job changes, its agent's
	// settings included.
	Fingerprint string
}

// Input is a file custom-sd reads: its path, and what it is ("the token
// file of consul default").
type Input struct {
	Path, What string
}

// Paths lists the files the job writes.
func (s *JobSpec) Paths() []string {
	if s.Options.Shards <= 1 {
		return []string{s.Path}
	}
	paths := make([]string, 0, s.Options.Shards)
	for i := range s.Options.Shards {
		paths = append(paths, adapter.ShardPath(s.Path, i))
	}
	return paths
}

var jobName = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9_.-]*$`)

// MaxJobNameLen is the longest job name, in bytes. A job's default output
// file is named after it, and the longest name derived from that (a shard
// suffix, ".json", and the writer's temporary-file prefix and suffix) must
// still fit the 255 bytes a file name may have.
const MaxJobNameLen = 200

// ValidJobName reports why name is not a job name, or nil.
func ValidJobName(name string) error {
	switch {
	case !jobName.MatchString(name):
		return fmt.Errorf("%q is not a job name (letters, digits, _, . and -)", name)
	case len(name) > MaxJobNameLen:
		return fmt.Errorf("%.20q... is %d bytes long; a job name has at most %d", name, len(name), MaxJobNameLen)
	}
	return nil
}

// Load reads, decodes and resolves the configuration file at path.
// Relative paths in it resolve against its directory.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	return f.Resolve(filepath.Dir(abs))
}
