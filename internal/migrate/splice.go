package migrate

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// textEdit replaces src[start:end] with text.
type textEdit struct {
	start, end int
	text       string
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
	indent := keyNode.Column - 1
	last := keyNode.Line
	for i := keyNode.Line + 1; i <= len(f.lineStarts()); i++ {
		line := f.line(i)
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
	end += len(f.line(last))
	return start, end, true
}

// lineStarts returns the offset in src of each line's first byte, lines
// ending at \n; computed once.
func (f *promFile) lineStarts() []int {
	if f.starts == nil {
		f.starts = []int{0}
		for i, b := range f.src {
			if b == '\n' {
				f.starts = append(f.starts, i+1)
			}
		}
	}
	return f.starts
}

// line returns line n (from 1) of src without its line break.
func (f *promFile) line(n int) string {
	starts := f.lineStarts()
	end := len(f.src)
	if n < len(starts) {
		end = starts[n]
	}
	return strings.TrimRight(string(f.src[starts[n-1]:end]), "\r\n")
}

// offset converts a line and a column (both from 1, the column in
// characters, as yaml counts them) into a byte offset into src.
func (f *promFile) offset(line, col int) (int, bool) {
	starts := f.lineStarts()
	if line < 1 || line > len(starts) {
		return 0, false
	}
	off := starts[line-1]
	for c := 1; c < col; c++ {
		if off >= len(f.src) || f.src[off] == '\n' {
			return 0, false
		}
		_, size := utf8.DecodeRune(f.src[off:])
		off += size
	}
	return off, true
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
