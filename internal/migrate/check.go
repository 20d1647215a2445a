package migrate

import (
	"fmt"

	"github.com/custom-sd/custom-sd/internal/config"
)

// check resolves each job with its agent as custom-sd would (internal/
// config's File.Resolve), so that a value Prometheus takes and custom-sd
// refuses (an empty tag_separator, a unix socket, a filter Consul's
// grammar rejects...) is an error naming the entry, not a custom-sd.yml
// that does not load. The files the agent names do not exist yet, or
// only where custom-sd runs: a credential read from a file stands in
// inline, and TLS files are left out.
func (c *converter) check() error {
	for _, s := range c.scrapes {
		for _, j := range s.jobs {
			job := *j.job
			job.Consul = ""
			f := config.File{Consul: standIn(j.agent.consul), Jobs: []*config.Job{&job}}
			if _, err := f.Resolve(c.opts.Out); err != nil {
				return fmt.Errorf("scrape job %q: consul_sd_configs[%d]: custom-sd would refuse it: %w", s.src.name, j.entry, err)
			}
		}
	}
	return nil
}

// standIn is a copy of a with its files left out: a token or password
// file becomes an inline value, TLS files go.
func standIn(a *config.Consul) *config.Consul {
	c := *a
	if c.TokenFile != "" {
		c.TokenFile, c.Token = "", "stand-in"
	}
	if c.PasswordFile != "" {
		c.PasswordFile, c.Password = "", "stand-in"
	}
	if a.TLSConfig != nil {
		t := *a.TLSConfig
		t.CAFile, t.CertFile, t.KeyFile = "", "", ""
		c.TLSConfig = &t
	}
	return &c
}
