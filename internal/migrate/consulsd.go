package migrate

import (
	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// fieldNote is a field of a consul_sd_configs entry that custom-sd.yml does
// not hold as it is, and why.
type fieldNote struct {
	field  string // as the Prometheus configuration spells it: tls_config.ca
	reason string
}

// consulSD is one consul_sd_configs entry in custom-sd's terms.
type consulSD struct {
	// agent holds no secret: those are in secrets.
	agent   *config.Consul
	secrets agentSecrets
	// job holds the selection; the caller names it and sets its output.
	job *config.Job
	// refreshInterval is the entry's refresh_interval, if it has one.
	refreshInterval string
	notes           []fieldNote
}

// convertConsulSD turns one consul_sd_configs entry into custom-sd's agent
// settings and selection. path maps a file path of the Prometheus
// configuration to one that means the same file in custom-sd.yml. Every
// field it does not carry over as it is gets a note; an entry that
// Prometheus itself would refuse is an error.
func convertConsulSD(entry *yaml.Node, path func(string) string) (*consulSD, error) {
	sd, keys, err := decodeSDConfig(entry)
	if err != nil {
		return nil, err
	}
	c := &consulSD{job: selection(sd, keys)}
	if keys["refresh_interval"] {
		if sd.RefreshInterval > 0 {
			c.refreshInterval = sd.RefreshInterval.String()
		}
		c.note("refresh_interval", "not needed: custom-sd uses blocking queries, so a change reaches the file at once (output.interval paces bursts)")
	}
	if c.agent, err = c.agentOf(sd, keys, path); err != nil {
		return nil, err
	}
	c.clientNotes(sd, keys)
	return c, nil
}

// selection is the job an entry's selection fields make.
func selection(sd *sdConfig, keys map[string]bool) *config.Job {
	j := &config.Job{
		Services: sd.Services, Tags: sd.ServiceTags, NodeMeta: sd.NodeMeta, Filter: sd.Filter, HealthFilter: sd.HealthFilter,
		Datacenter: sd.Datacenter, Namespace: sd.Namespace, Partition: sd.Partition,
	}
	if keys["allow_stale"] {
		j.AllowStale = new(sd.AllowStale)
	}
	if keys["tag_separator"] {
		j.TagSeparator = new(sd.TagSeparator)
	}
	return j
}

func (c *consulSD) note(field, reason string) {
	c.notes = append(c.notes, fieldNote{field, reason})
}
