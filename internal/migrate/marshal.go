package migrate

import (
	"bytes"
	"fmt"

	"go.yaml.in/yaml/v3"

	"github.com/custom-sd/custom-sd/internal/config"
)

// marshalConfig writes custom-sd.yml, with a comment on each job naming
// where in the Prometheus configuration (from) it comes from.
func marshalConfig(f *config.File, from string, origins []string) ([]byte, error) {
	var n yaml.Node
	if err := n.Encode(f); err != nil {
		return nil, err
	}
	n.HeadComment = fmt.Sprintf("custom-sd configuration written by `custom-sd migrate` from %s.\nRelative paths are relative to this file's directory.", from)
	if jobs := lookup(&n, "jobs"); jobs != nil {
		for i, j := range jobs.Content {
			if i < len(origins) {
				j.HeadComment = "From " + origins[i] + "."
			}
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	if _, err := config.Parse(b.Bytes()); err != nil {
		return nil, fmt.Errorf("internal error: the written %s does not parse: %w", ConfigFile, err)
	}
	return b.Bytes(), nil
}

// origins names the consul_sd_configs entry of each job, in order.
func (c *converter) origins() []string {
	var names []string
	for _, s := range c.scrapes {
		for _, j := range s.jobs {
			names = append(names, fmt.Sprintf("scrape job %s, consul_sd_configs[%d]", s.src.name, j.entry))
		}
	}
	return names
}
