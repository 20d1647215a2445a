package migrate

import (
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// rewritePrometheus rewrites the Prometheus configuration: relative paths
// first (the new file_sd paths are relative to the output directory
// already), then each consul_sd_configs becomes file_sd_configs on the
// jobs' files, or http_sd_configs on their endpoints.
func (c *converter) rewritePrometheus(pf *promFile) ([]byte, error) {
	skip := map[*yaml.Node]bool{}
	for _, s := range c.scrapes {
		skip[s.src.value] = true
	}
	c.report.Paths = append(c.report.Paths, pf.rewritePaths(c.rel, skip)...)
	for _, s := range c.scrapes {
		key, entries := c.sdEntries(s)
		comment := "custom-sd: see " + ConfigFile
		if err := pf.replaceConsulSD(s.src, key, comment, entries); err != nil {
			return nil, err
		}
	}
	prom, reformatted, err := pf.render()
	if err != nil {
		return nil, err
	}
	if reformatted != "" {
		c.report.Warnings = append(c.report.Warnings, fmt.Sprintf("%s was re-encoded from the YAML tree (blank lines dropped, indentation normalised): %s", PrometheusFile, reformatted))
	}
	return prom, nil
}

// sdEntries returns what takes the place of a scrape job's
// consul_sd_configs: file_sd_configs with one entry listing the jobs'
// files, or http_sd_configs with an entry per job.
func (c *converter) sdEntries(s *scrapeJobs) (key string, entries []*yaml.Node) {
	if c.opts.HTTPSD == "" {
		var files []*yaml.Node
		for _, j := range s.jobs {
			files = append(files, strNode(j.job.Output.File))
		}
		if len(files) > 0 {
			entries = append(entries, mapNode("files", &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: files}))
		}
		return "file_sd_configs", entries
	}
	for _, j := range s.jobs {
		e := mapNode("url", strNode(c.target(j)))
		if j.refreshInterval != "" {
			e.Content = append(e.Content, strNode("refresh_interval"), strNode(j.refreshInterval))
		}
		entries = append(entries, e)
	}
	return "http_sd_configs", entries
}

// replaceConsulSD puts key (file_sd_configs or http_sd_configs) with the
// entries in place of s's consul_sd_configs, or, when the job has key
// already, appends the entries to it and removes consul_sd_configs.
func (f *promFile) replaceConsulSD(s *consulScrape, key, comment string, entries []*yaml.Node) error {
	job := s.job
	ki := -1
	for i := 0; i+1 < len(job.Content); i += 2 {
		if job.Content[i] == s.key {
			ki = i
		}
	}
	var existing *yaml.Node
	for i := 0; i+1 < len(job.Content); i += 2 {
		if job.Content[i].Value == key {
			existing = job.Content[i]
		}
	}
	if job.Style&yaml.FlowStyle != 0 || len(entries) == 0 {
		// A comment inside {...} would end it; yaml puts an empty list
		// after a comment on a line of its own, which does not parse.
		comment = ""
		for _, e := range entries {
			setFlowStyle(e)
		}
	}
	if existing == nil {
		value := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq", Content: entries}
		if len(entries) == 0 {
			value.Style = yaml.FlowStyle
		}
		f.replaceBlock(job, s.key, key, comment, value)
		s.key.Value, s.key.Tag, s.key.Style = key, "!!str", 0
		if s.key.LineComment == "" {
			s.key.LineComment = comment
		}
		job.Content[ki+1] = value
		return nil
	}
	var value *yaml.Node
	for i := 0; i+1 < len(job.Content); i += 2 {
		if job.Content[i] == existing {
			value = job.Content[i+1]
		}
	}
	if value.Kind != yaml.SequenceNode {
		return fmt.Errorf("scrape job %q: %s: line %d: not a plain list, so the new entries cannot join it; merge the two by hand", s.name, key, value.Line)
	}
	value.Content = append(value.Content, entries...)
	f.replaceBlock(job, existing, key, comment, value)
	f.deleteBlock(job, s.key)
	job.Content = slices.Delete(job.Content, ki, ki+2)
	return nil
}

// setFlowStyle writes n and everything in it in flow style.
func setFlowStyle(n *yaml.Node) {
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode {
		n.Style |= yaml.FlowStyle
	}
	for _, c := range n.Content {
		setFlowStyle(c)
	}
}
