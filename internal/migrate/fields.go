package migrate

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// checkFields refuses a key of the mapping n, or of a mapping in it, that
// the Go type t has no field for, as Prometheus's strict decoding does.
// where names n in the error. A struct without YAML field tags (such as
// prometheus/common's URL) decodes itself from a scalar and is not looked
// into.
func checkFields(n *yaml.Node, t reflect.Type, where string) error {
	n = resolve(n)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		fields, inline, ok := yamlFields(t)
		if !ok || n.Kind != yaml.MappingNode {
			return nil // decoding says what is wrong with a non-mapping
		}
		pairs, err := mappingPairs(n)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			ft, known := fields[p.key]
			switch {
			case known:
			case inline != nil:
				ft = inline
			default:
				return fmt.Errorf("line %d: field %s not found in %s", p.line, p.key, where)
			}
			if err := checkFields(p.value, ft, where+"."+p.key); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		pairs, err := mappingPairs(n)
		if err != nil {
			return err
		}
		for _, p := range pairs {
			if err := checkFields(p.value, t.Elem(), where+"."+p.key); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for i, item := range n.Content {
			if err := checkFields(item, t.Elem(), fmt.Sprintf("%s[%d]", where, i)); err != nil {
				return err
			}
		}
	}
	return nil
}

// yamlFields lists the keys of a struct type's fields, inline structs'
// included, and the value type of an inline map, which takes any other
// key. ok is false for a struct without YAML field tags.
func yamlFields(t reflect.Type) (fields map[string]reflect.Type, inline reflect.Type, ok bool) {
	fields = map[string]reflect.Type{}
	for i := range t.NumField() {
		f := t.Field(i)
		tag, has := f.Tag.Lookup("yaml")
		if !has || !f.IsExported() {
			continue
		}
		ok = true
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Map:
			inline = f.Type.Elem()
		case strings.Contains(opts, "inline"):
			sub, subInline, _ := yamlFields(f.Type)
			for k, v := range sub {
				fields[k] = v
			}
			if subInline != nil {
				inline = subInline
			}
		case name == "":
			fields[strings.ToLower(f.Name)] = f.Type
		default:
			fields[name] = f.Type
		}
	}
	return fields, inline, ok
}

// fieldByKey returns the field of struct v, inline structs' included,
// that the YAML key names.
func fieldByKey(v reflect.Value, key string) (reflect.Value, bool) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, has := f.Tag.Lookup("yaml")
		if !has || !f.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case strings.Contains(opts, "inline") && f.Type.Kind() == reflect.Struct:
			if fv, ok := fieldByKey(v.Field(i), key); ok {
				return fv, true
			}
		case name == key:
			return v.Field(i), true
		}
	}
	return reflect.Value{}, false
}
