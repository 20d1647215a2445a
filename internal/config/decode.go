package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// maxNodes bounds the nodes a configuration may expand to, aliases
// included, so that an alias bomb (a few lines that expand exponentially)
// is refused at once instead of being expanded.
const maxNodes = 100_000

// Parse decodes a configuration file strictly, in one place: one YAML
// document; every key known at every depth, and given once; every value of
// the kind its key takes. An error is an *Error naming the key by its path
// in the file and its line.
func Parse(data []byte) (*File, error) {
	root, err := oneDocument(data)
	if err != nil {
		return nil, err
	}
	if root == nil {
		return &File{}, nil // an empty file; Resolve says what is missing
	}
	return decode(root)
}

// decode checks a document's root and decodes it.
func decode(root *yaml.Node) (*File, error) {
	f := &File{}
	c := &checker{budget: maxNodes}
	if err := c.check(root, reflect.TypeFor[File](), ""); err != nil {
		return nil, err
	}
	if err := root.Decode(f); err != nil {
		// The check above found every mismatch yaml knows of; this is a
		// last resort, kept on one line.
		return nil, &Error{Msg: strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " ")}
	}
	return f, nil
}

// oneDocument returns the content of the only YAML document in data, or nil
// for an empty one.
func oneDocument(data []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, nil
	} else if err != nil {
		return nil, syntaxError(err)
	}
	var next yaml.Node
	switch err := dec.Decode(&next); {
	case err == nil:
		return nil, &Error{Line: next.Line, Msg: "a second YAML document; the configuration is one document (remove the ---)"}
	case !errors.Is(err, io.EOF):
		return nil, syntaxError(err)
	}
	if len(doc.Content) == 0 {
		return nil, nil
	}
	root := doc.Content[0]
	if root.Tag == "!!null" {
		return nil, nil
	}
	if root.Kind != yaml.MappingNode {
		return nil, &Error{Line: root.Line, Msg: "the configuration is a mapping of consul (or consuls) and jobs"}
	}
	return root, nil
}

// syntaxError keeps a YAML syntax error on one line.
func syntaxError(err error) error {
	msg := strings.Join(strings.Fields(strings.TrimPrefix(err.Error(), "yaml: ")), " ")
	return &Error{Msg: "not valid YAML: " + msg}
}

// checker walks a document beside the type it decodes into.
type checker struct {
	budget int // nodes left to visit, aliases expanded
}

var textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()

// check reports the first key of node that t does not have, given twice,
// or whose value is of the wrong kind; path names node as the file would.
func (c *checker) check(node *yaml.Node, t reflect.Type, path string) error {
	for node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	if c.budget--; c.budget < 0 {
		return &Error{Line: node.Line, Msg: fmt.Sprintf("the document expands to more than %d values (through YAML aliases)", maxNodes)}
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if node.Kind == yaml.ScalarNode && node.ShortTag() == "!!null" {
		return nil // unset
	}
	if reflect.PointerTo(t).Implements(textUnmarshaler) {
		if node.Kind != yaml.ScalarNode {
			return c.kindErr(node, path, "a single value")
		}
		if err := reflect.New(t).Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(node.Value)); err != nil {
			return pathErr(path, node.Line, err.Error())
		}
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return c.mapping(node, path, func(key, value *yaml.Node) (reflect.Type, error) {
			ft, ok := yamlFields(t)[key.Value]
			if !ok {
				return nil, pathErr(join(path, key.Value), key.Line, "unknown key; the keys here are "+strings.Join(sortedKeys(yamlFields(t)), ", "))
			}
			if isString(ft) && value.Kind == yaml.ScalarNode && value.Value == "" && value.ShortTag() != "!!null" {
				return nil, pathErr(join(path, key.Value), key.Line, "must not be empty (leave it out for its default)")
			}
			return ft, nil
		})
	case reflect.Map:
		return c.mapping(node, path, func(key, value *yaml.Node) (reflect.Type, error) {
			return t.Elem(), emptyEntry(value, t.Elem(), join(path, key.Value))
		})
	case reflect.Slice:
		if node.Kind != yaml.SequenceNode {
			return c.kindErr(node, path, "a list")
		}
		for i, item := range node.Content {
			p := itemPath(path, i, item)
			if err := emptyEntry(item, t.Elem(), p); err != nil {
				return err
			}
			if err := c.check(item, t.Elem(), p); err != nil {
				return err
			}
		}
		return nil
	}
	return c.scalar(node, t, path)
}

// emptyEntry refuses an entry of a list or a mapping that is left empty
// (null) where a block of keys is expected: a blank "-" under jobs is a
// mistake, not a job with every default.
func emptyEntry(node *yaml.Node, t reflect.Type, path string) error {
	for node.Kind == yaml.AliasNode {
		node = node.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Kind() == reflect.Struct && node.Kind == yaml.ScalarNode && node.ShortTag() == "!!null" {
		return pathErr(path, node.Line, "is empty; give its keys or remove it")
	}
	return nil
}

// mapping checks a mapping node: each key once, each value by the type
// fieldOf gives for its key. Merge keys (<<) bring the keys of the merged
// mappings, which the mapping's own keys override.
func (c *checker) mapping(node *yaml.Node, path string, fieldOf func(key, value *yaml.Node) (reflect.Type, error)) error {
	if node.Kind != yaml.MappingNode {
		return c.kindErr(node, path, "a mapping of keys")
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(node.Content); i += 2 {
		key, value := node.Content[i], node.Content[i+1]
		if key.Tag == "!!merge" {
			if err := c.merge(value, path, fieldOf); err != nil {
				return err
			}
			continue
		}
		if key.Kind != yaml.ScalarNode {
			return pathErr(path, key.Line, "a key is a single value, not a list or a mapping")
		}
		if first, ok := seen[key.Value]; ok {
			return pathErr(join(path, key.Value), key.Line, fmt.Sprintf("given twice (first at line %d)", first))
		}
		seen[key.Value] = key.Line
		ft, err := fieldOf(key, value)
		if err != nil {
			return err
		}
		if err := c.check(value, ft, join(path, key.Value)); err != nil {
			return err
		}
	}
	return nil
}

// merge checks the mappings a merge key brings: one, or a list of them.
func (c *checker) merge(value *yaml.Node, path string, fieldOf func(key, value *yaml.Node) (reflect.Type, error)) error {
	for value.Kind == yaml.AliasNode {
		value = value.Alias
	}
	if value.Kind != yaml.SequenceNode {
		return c.mapping(value, path, fieldOf)
	}
	for _, m := range value.Content {
		if c.budget--; c.budget < 0 {
			return &Error{Line: m.Line, Msg: fmt.Sprintf("the document expands to more than %d values (through YAML aliases)", maxNodes)}
		}
		for m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		if err := c.mapping(m, path, fieldOf); err != nil {
			return err
		}
	}
	return nil
}

// scalar checks a single value against a basic type.
func (c *checker) scalar(node *yaml.Node, t reflect.Type, path string) error {
	if node.Kind != yaml.ScalarNode {
		return c.kindErr(node, path, "a single value")
	}
	v, tag := node.Value, node.ShortTag()
	var bad string
	switch t.Kind() {
	case reflect.Bool:
		if tag != "!!bool" {
			bad = "true or false"
		}
	case reflect.Int, reflect.Int64, reflect.Int32:
		if _, err := strconv.ParseInt(v, 0, 64); err != nil || tag != "!!int" {
			bad = "a whole number"
		}
	case reflect.Float64:
		if _, err := strconv.ParseFloat(v, 64); err != nil || tag != "!!int" && tag != "!!float" {
			bad = "a number"
		}
	}
	if bad != "" {
		return pathErr(path, node.Line, fmt.Sprintf("%q is not %s", v, bad))
	}
	return nil
}

// kindErr says what a key takes when its value is of another kind.
func (c *checker) kindErr(node *yaml.Node, path, want string) error {
	got := map[yaml.Kind]string{yaml.ScalarNode: "a single value", yaml.SequenceNode: "a list", yaml.MappingNode: "a mapping"}[node.Kind]
	return pathErr(path, node.Line, fmt.Sprintf("takes %s, not %s", want, got))
}

// pathErr is an error at path, a key path of the file
// ("jobs[web].output.mode"), split into its section and its key there.
func pathErr(path string, line int, msg string) *Error {
	e := &Error{Key: path, Line: line, Msg: msg}
	switch {
	case strings.HasPrefix(path, "jobs["):
		if end := strings.Index(path, "]."); end > 0 {
			e.Section, e.Key = path[:end+1], path[end+2:]
		}
	case strings.HasPrefix(path, "consul."):
		e.Section, e.Key = "consul", strings.TrimPrefix(path, "consul.")
	case strings.HasPrefix(path, "consuls."):
		if parts := strings.SplitN(path, ".", 3); len(parts) == 3 {
			e.Section, e.Key = parts[0]+"."+parts[1], parts[2]
		}
	}
	return e
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// itemPath names item i of the list at path: a job by its name when it
// has one.
func itemPath(path string, i int, item *yaml.Node) string {
	if path == "jobs" && item.Kind == yaml.MappingNode {
		for k := 0; k+1 < len(item.Content); k += 2 {
			if item.Content[k].Value == "name" && item.Content[k+1].Kind == yaml.ScalarNode && item.Content[k+1].Value != "" {
				return fmt.Sprintf("jobs[%s]", item.Content[k+1].Value)
			}
		}
	}
	return fmt.Sprintf("%s[%d]", path, i)
}

func isString(t reflect.Type) bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.Kind() == reflect.String
}

var fieldsOf sync.Map // reflect.Type → map[string]reflect.Type

// yamlFields maps the YAML keys of a struct to their fields' types.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	if f, ok := fieldsOf.Load(t); ok {
		return f.(map[string]reflect.Type)
	}
	fields := map[string]reflect.Type{}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			fields[name] = t.Field(i).Type
		}
	}
	fieldsOf.Store(t, fields)
	return fields
}

func sortedKeys(m map[string]reflect.Type) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
