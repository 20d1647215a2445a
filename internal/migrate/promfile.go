package migrate

import (
	"errors"
	"fmt"
	"slices"

	"go.yaml.in/yaml/v3"
)

// promFile is a Prometheus configuration as a YAML node tree, with the text
// it was read from. Edits change the tree, which is the truth, and record
// the same change as a text edit, so that the file can be written with
// everything else byte for byte as it was (see render).
type promFile struct {
	src    []byte
	starts []int      // the offsets of src's lines, from lineStarts
	doc    *yaml.Node // the document
	root   *yaml.Node // its top mapping
	edits  []textEdit
	// unspliceable says why an edit has no text edit; render then encodes
	// the tree instead.
	unspliceable string
}

// consulScrape is a scrape job with consul_sd_configs.
type consulScrape struct {
	name    string     // job_name
	job     *yaml.Node // the scrape config
	key     *yaml.Node // the consul_sd_configs key
	value   *yaml.Node // its value
	entries []*yaml.Node
}

// parsePrometheus parses a Prometheus configuration into its node tree,
// refusing one whose aliases expand it beyond reason, or with a key given
// twice in a mapping.
func parsePrometheus(src []byte) (*promFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %w", yamlError(err))
	}
	if err := checkExpansion(&doc); err != nil {
		return nil, err
	}
	if err := checkDuplicates(&doc); err != nil {
		return nil, err
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil, errors.New("empty file")
	}
	root := resolve(doc.Content[0])
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("line %d: not a Prometheus configuration (a mapping of global, scrape_configs, ...)", root.Line)
	}
	return &promFile{src: src, doc: &doc, root: root}, nil
}

// consulScrapes lists the scrape jobs with consul_sd_configs, in order.
func (f *promFile) consulScrapes() ([]*consulScrape, error) {
	seq := resolve(lookup(f.root, "scrape_configs"))
	if seq == nil || seq.Kind != yaml.SequenceNode {
		return nil, nil
	}
	var out []*consulScrape
	for i, item := range seq.Content {
		job := resolve(item)
		if job.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("scrape_configs[%d]: line %d: not a mapping", i, job.Line)
		}
		s := &consulScrape{job: job}
		for k := 0; k+1 < len(job.Content); k += 2 {
			switch job.Content[k].Value {
			case "job_name":
				if err := job.Content[k+1].Decode(&s.name); err != nil {
					return nil, fmt.Errorf("scrape_configs[%d].job_name: %w", i, yamlError(err))
				}
			case "consul_sd_configs":
				s.key, s.value = job.Content[k], job.Content[k+1]
			}
		}
		if s.key == nil {
			pairs, err := mappingPairs(job)
			if err == nil && len(pairsNamed(pairs, "consul_sd_configs")) > 0 {
				return nil, fmt.Errorf("scrape_configs[%d]: consul_sd_configs comes from a merge key (<<); write it out in the job", i)
			}
			continue
		}
		if s.name == "" {
			return nil, fmt.Errorf("scrape_configs[%d]: line %d: no job_name", i, job.Line)
		}
		entries := resolve(s.value)
		switch {
		case entries.Kind == yaml.SequenceNode:
			s.entries = entries.Content
		case entries.Kind == yaml.ScalarNode && entries.ShortTag() == "!!null":
		default:
			return nil, fmt.Errorf("scrape job %q: consul_sd_configs: line %d: not a list", s.name, entries.Line)
		}
		out = append(out, s)
	}
	return out, nil
}

// alertmanagerConsulSD counts the alertmanagers found through
// consul_sd_configs, which migrate leaves as they are.
func (f *promFile) alertmanagerConsulSD() int {
	n := 0
	if ams := resolve(lookup(lookup(f.root, "alerting"), "alertmanagers")); ams != nil && ams.Kind == yaml.SequenceNode {
		for _, am := range ams.Content {
			if lookup(am, "consul_sd_configs") != nil {
				n++
			}
		}
	}
	return n
}

// pairsNamed returns the pairs with one of the keys.
func pairsNamed(pairs []pair, keys ...string) []pair {
	var out []pair
	for _, p := range pairs {
		if slices.Contains(keys, p.key) {
			out = append(out, p)
		}
	}
	return out
}
