package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Flag is a command-line flag given by the user: its name without the
// dashes ("output.mode") and its values, several for a repeatable flag.
type Flag struct {
	Name   string
	Values []string
}

// FromFlags returns the File of the command line's one job, named job, with
// its output at output unless a flag says otherwise: the File a
// configuration file holding the flags' values under their keys (names.go)
// decodes to, checked the same way. Every flag must be one of a key.
func FromFlags(job, output string, flags []Flag) (*File, error) {
	jobNode := mappingNode("name", scalarNode(job), "output", mappingNode("file", scalarNode(output)))
	consulNode := mappingNode()
	for _, f := range flags {
		key := KeyOfFlag(f.Name)
		if key == "" {
			return nil, fmt.Errorf("--%s: not a setting of a job", f.Name)
		}
		first, _, _ := strings.Cut(key, ".")
		section, t := jobNode, reflect.TypeFor[Job]()
		if _, ok := yamlFields(reflect.TypeFor[Consul]())[first]; ok {
			section, t = consulNode, reflect.TypeFor[Consul]()
		}
		value, err := valueNode(fieldType(t, key), f.Values)
		if err != nil {
			return nil, &Error{Key: key, Msg: err.Error()}
		}
		put(section, strings.Split(key, "."), value)
	}
	root := mappingNode("consul", consulNode, "jobs", &yaml.Node{Kind: yaml.SequenceNode, Content: []*yaml.Node{jobNode}})
	return decode(root)
}

// fieldType is the type of the field at a key path of a struct type.
func fieldType(t reflect.Type, key string) reflect.Type {
	for _, k := range strings.Split(key, ".") {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		t = yamlFields(t)[k]
	}
	return t
}

// valueNode is the node a flag's values make for a field of type t: a
// list, a mapping of key=value pairs, or the last value given.
func valueNode(t reflect.Type, values []string) (*yaml.Node, error) {
	switch t.Kind() {
	case reflect.Slice:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for _, v := range values {
			n.Content = append(n.Content, typedScalar(t.Elem(), v))
		}
		return n, nil
	case reflect.Map:
		n := mappingNode()
		for _, kv := range values {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return nil, fmt.Errorf("%q is not key=value", kv)
			}
			n.Content = append(n.Content, scalarNode(k), typedScalar(t.Elem(), v))
		}
		return n, nil
	}
	return typedScalar(t, values[len(values)-1]), nil
}

// typedScalar is a flag's value for a field of type t: for a string, the
// string as given ("" and "null" included); otherwise as YAML reads it.
func typedScalar(t reflect.Type, v string) *yaml.Node {
	n := scalarNode(v)
	if isString(t) {
		n.Tag = "!!str"
	}
	return n
}

// put sets the value at a key path of a mapping, making the mappings on the
// way.
func put(m *yaml.Node, path []string, value *yaml.Node) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == path[0] {
			if len(path) == 1 {
				m.Content[i+1] = value
			} else {
				put(m.Content[i+1], path[1:], value)
			}
			return
		}
	}
	if len(path) == 1 {
		m.Content = append(m.Content, scalarNode(path[0]), value)
		return
	}
	inner := mappingNode()
	m.Content = append(m.Content, scalarNode(path[0]), inner)
	put(inner, path[1:], value)
}

// scalarNode is a plain scalar, its tag resolved as YAML would resolve it
// in a file (64 an integer, true a boolean).
func scalarNode(v string) *yaml.Node { return &yaml.Node{Kind: yaml.ScalarNode, Value: v} }

func mappingNode(kv ...any) *yaml.Node {
	n := &yaml.Node{Kind: yaml.MappingNode}
	for i := 0; i+1 < len(kv); i += 2 {
		n.Content = append(n.Content, scalarNode(kv[i].(string)), kv[i+1].(*yaml.Node))
	}
	return n
}
