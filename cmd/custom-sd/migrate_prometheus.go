package main

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// promFile is a Prometheus configuration as a YAML node tree, with the text
// it was read from. Edits change the tree, which is the truth, and record
// the same change as a text edit, so that the file can be written with
// everything else byte for byte as it was (see render).
type promFile struct {
	src   []byte
	doc   *yaml.Node // the document
	root  *yaml.Node // its top mapping
	edits []textEdit
	// unspliceable says why an edit has no text edit; render then encodes
	// the tree instead.
	unspliceable string
}

// textEdit replaces src[start:end] with text.
type textEdit struct {
	start, end int
	text       string
}

// consulScrape is a scrape job with consul_sd_configs.
type consulScrape struct {
	name    string     // job_name
	job     *yaml.Node // the scrape config
	key     *yaml.Node // the consul_sd_configs key
	value   *yaml.Node // its value
	entries []*yaml.Node
}

// pathChange is a relative path of the Prometheus configuration rewritten
// to keep naming the same file from another directory.
type pathChange struct {
	where, from, to string
}

func parsePrometheus(src []byte) (*promFile, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, fmt.Errorf("not YAML: %w", yamlError(err))
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

// lookup returns the value of key in mapping n, or nil.
func lookup(n *yaml.Node, key string) *yaml.Node {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
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

// promPathKeys are the keys whose values (a path or a list of paths)
// Prometheus resolves against its configuration file's directory
// (config.JoinDir in Prometheus and prometheus/common).
var promPathKeys = map[string]bool{
	"rule_files": true, "scrape_config_files": true, "query_log_file": true, "scrape_failure_log_file": true,
	"files":   true, // file_sd_configs, http_headers
	"ca_file": true, "cert_file": true, "key_file": true, "password_file": true, "username_file": true,
	"credentials_file": true, "client_secret_file": true, "bearer_token_file": true,
	"kubeconfig_file": true, "auth_token_file": true, "secret_key_file": true, "key_passphrase_file": true,
}

// promPathSkip are keys whose subtrees hold paths that Prometheus does not
// resolve against its directory (google_iam's credentials_file is read as
// given).
var promPathSkip = map[string]bool{"google_iam": true}

// rewritePaths rewrites every relative path of the configuration with rel,
// leaving out the subtrees in skip.
func (f *promFile) rewritePaths(rel func(string) string, skip map[*yaml.Node]bool) []pathChange {
	var changes []pathChange
	var walk func(n *yaml.Node, where string)
	rewrite := func(n *yaml.Node, where string) {
		if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" || n.Value == "" {
			return
		}
		to := rel(n.Value)
		if to == n.Value {
			return
		}
		changes = append(changes, pathChange{where, n.Value, to})
		f.replaceScalar(n, to)
	}
	walk = func(n *yaml.Node, where string) {
		if n == nil || skip[n] {
			return
		}
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, where)
			}
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i].Value, n.Content[i+1]
				at := k
				if where != "" {
					at = where + "." + k
				}
				switch {
				case promPathSkip[k] || skip[v]:
				case promPathKeys[k] && v.Kind == yaml.SequenceNode:
					for j, item := range v.Content {
						rewrite(item, fmt.Sprintf("%s[%d]", at, j))
					}
				case promPathKeys[k]:
					rewrite(v, at)
				default:
					walk(v, at)
				}
			}
		case yaml.SequenceNode:
			for i, item := range n.Content {
				at := fmt.Sprintf("%s[%d]", where, i)
				var name string
				if jn := lookup(item, "job_name"); jn != nil && jn.Kind == yaml.ScalarNode {
					name = jn.Value
				}
				if name != "" {
					at = fmt.Sprintf("%s[%s]", where, name)
				}
				walk(item, at)
			}
		}
		// Aliases are rewritten where their anchor is.
	}
	walk(f.doc, "")
	return changes
}

// replaceScalar sets a scalar's value and records the text edit.
func (f *promFile) replaceScalar(n *yaml.Node, value string) {
	defer func() { n.Value = value }()
	start, ok := f.offset(n.Line, n.Column)
	if !ok {
		f.unspliceable = fmt.Sprintf("line %d: position out of range", n.Line)
		return
	}
	end, ok := scalarEnd(f.src, start, n)
	if !ok {
		f.unspliceable = fmt.Sprintf("line %d: a scalar written in a way this tool does not rewrite in place", n.Line)
		return
	}
	text, err := renderScalar(value, n.Style)
	if err != nil || strings.Contains(text, "\n") {
		f.unspliceable = fmt.Sprintf("line %d: %q needs more than one line", n.Line, value)
		return
	}
	f.edits = append(f.edits, textEdit{start, end, text})
}

// scalarEnd finds the end of a one-line scalar written at src[start:].
func scalarEnd(src []byte, start int, n *yaml.Node) (int, bool) {
	rest := src[start:]
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	switch n.Style {
	case 0:
		if bytes.HasPrefix(rest, []byte(n.Value)) {
			return start + len(n.Value), true
		}
	case yaml.SingleQuotedStyle:
		for i := 1; i < len(rest); i++ {
			if rest[i] == '\'' {
				if i+1 < len(rest) && rest[i+1] == '\'' {
					i++
					continue
				}
				return start + i + 1, rest[0] == '\''
			}
		}
	case yaml.DoubleQuotedStyle:
		for i := 1; i < len(rest); i++ {
			switch rest[i] {
			case '\\':
				i++
			case '"':
				return start + i + 1, rest[0] == '"'
			}
		}
	}
	return 0, false
}

// renderScalar writes a string in the given style, or quoted if it needs
// to be.
func renderScalar(value string, style yaml.Style) (string, error) {
	b, err := yaml.Marshal(&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: value, Style: style & (yaml.SingleQuotedStyle | yaml.DoubleQuotedStyle)})
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(string(b), "\n"), nil
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

// replaceBlock records the edit that writes key: value in place of the
// block of a key of a block mapping.
func (f *promFile) replaceBlock(parent, keyNode *yaml.Node, key, comment string, value *yaml.Node) {
	start, end, ok := f.blockRegion(parent, keyNode)
	if !ok {
		return
	}
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{
		{Kind: yaml.ScalarNode, Tag: "!!str", Value: key, LineComment: comment}, value,
	}}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(m); err != nil {
		f.unspliceable = err.Error()
		return
	}
	if err := enc.Close(); err != nil {
		f.unspliceable = err.Error()
		return
	}
	text := strings.TrimSuffix(b.String(), "\n")
	text = strings.ReplaceAll(text, "\n", "\n"+strings.Repeat(" ", keyNode.Column-1))
	f.edits = append(f.edits, textEdit{start, end, text})
}

// deleteBlock records the edit that removes a key's block, lines and all.
func (f *promFile) deleteBlock(parent, keyNode *yaml.Node) {
	start, end, ok := f.blockRegion(parent, keyNode)
	if !ok {
		return
	}
	lineStart := start - (keyNode.Column - 1)
	if lineStart < 0 || strings.TrimLeft(string(f.src[lineStart:start]), " ") != "" {
		f.unspliceable = fmt.Sprintf("line %d: %s shares its line with another key", keyNode.Line, keyNode.Value)
		return
	}
	if end < len(f.src) && f.src[end] == '\r' {
		end++
	}
	if end < len(f.src) && f.src[end] == '\n' {
		end++
	}
	f.edits = append(f.edits, textEdit{lineStart, end, ""})
}

// blockRegion finds the text of a key of a block mapping and its value:
// from the key to the end of the last line indented deeper than the key
// (or a list at the key's own indentation), leaving out trailing blank
// lines and comments no deeper than the key, which belong to what follows.
func (f *promFile) blockRegion(parent, keyNode *yaml.Node) (start, end int, ok bool) {
	if parent.Style&yaml.FlowStyle != 0 {
		f.unspliceable = fmt.Sprintf("line %d: a job written in flow style ({...})", parent.Line)
		return 0, 0, false
	}
	start, ok = f.offset(keyNode.Line, keyNode.Column)
	if !ok {
		f.unspliceable = fmt.Sprintf("line %d: position out of range", keyNode.Line)
		return 0, 0, false
	}
	lines := strings.SplitAfter(string(f.src), "\n")
	indent := keyNode.Column - 1
	last := keyNode.Line
	for i := keyNode.Line + 1; i <= len(lines); i++ {
		line := strings.TrimRight(lines[i-1], "\r\n")
		trimmed := strings.TrimLeft(line, " ")
		in := len(line) - len(trimmed)
		switch {
		case trimmed == "":
			continue
		case trimmed[0] == '#':
			if in > indent { // a comment inside the block
				last = i
			}
			continue
		}
		if in > indent || in == indent && (trimmed == "-" || strings.HasPrefix(trimmed, "- ")) {
			last = i
			continue
		}
		break
	}
	end, _ = f.offset(last, 1)
	end += len(strings.TrimRight(lines[last-1], "\r\n"))
	return start, end, true
}

// offset converts a line and a column (both from 1, the column in
// characters, as yaml counts them) into a byte offset into src.
func (f *promFile) offset(line, col int) (int, bool) {
	off := 0
	for l := 1; l < line; l++ {
		i := bytes.IndexByte(f.src[off:], '\n')
		if i < 0 {
			return 0, false
		}
		off += i + 1
	}
	for c := 1; c < col; c++ {
		if off >= len(f.src) || f.src[off] == '\n' {
			return 0, false
		}
		_, size := utf8.DecodeRune(f.src[off:])
		off += size
	}
	return off, true
}

// render writes the edited configuration: the original text with the text
// edits applied, when that decodes to exactly what the edited tree does;
// otherwise the tree encoded afresh (which drops blank lines and
// normalises indentation). reformatted says why it had to encode.
func (f *promFile) render() (out []byte, reformatted string, err error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(f.doc); err != nil {
		return nil, "", err
	}
	if err := enc.Close(); err != nil {
		return nil, "", err
	}
	encoded := b.Bytes()
	var want any
	if err := yaml.Unmarshal(encoded, &want); err != nil {
		return nil, "", fmt.Errorf("the edited configuration does not parse (an anchor inside consul_sd_configs used elsewhere?): %w", yamlError(err))
	}
	if f.unspliceable != "" {
		return encoded, f.unspliceable, nil
	}
	spliced, err := splice(f.src, f.edits)
	if err != nil {
		return encoded, err.Error(), nil
	}
	var got any
	if err := yaml.Unmarshal(spliced, &got); err != nil || !reflect.DeepEqual(got, want) {
		return encoded, "editing the text in place did not give the same configuration", nil
	}
	return spliced, "", nil
}

// splice applies edits to src. An edit inside an earlier one is left out:
// the earlier one rewrote that text from the edited tree already.
func splice(src []byte, edits []textEdit) ([]byte, error) {
	edits = slices.Clone(edits)
	slices.SortStableFunc(edits, func(a, b textEdit) int { return a.start - b.start })
	var out []byte
	pos := 0
	for _, e := range edits {
		if e.start < pos && e.end <= pos {
			continue
		}
		if e.start < pos || e.end < e.start {
			return nil, errors.New("overlapping edits")
		}
		out = append(out, src[pos:e.start]...)
		out = append(out, e.text...)
		pos = e.end
	}
	return append(out, src[pos:]...), nil
}
