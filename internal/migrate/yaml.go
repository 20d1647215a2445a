package migrate

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
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

// pair is one key of a YAML mapping, its line, and its value.
type pair struct {
	key   string
	line  int
	value *yaml.Node
}

// mappingPairs lists a mapping's keys in order, with merge keys (<<)
// expanded: the mapping's own keys win over merged ones, and an earlier
// merged mapping over a later one, as YAML says.
func mappingPairs(n *yaml.Node) ([]pair, error) {
	n = resolve(n)
	if n == nil || n.Kind != yaml.MappingNode {
		line := 0
		if n != nil {
			line = n.Line
		}
		return nil, fmt.Errorf("line %d: not a mapping", line)
	}
	var own, merged []pair
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if isMerge(k) {
			sources := []*yaml.Node{v}
			if rv := resolve(v); rv != nil && rv.Kind == yaml.SequenceNode {
				sources = rv.Content
			}
			for _, s := range sources {
				ps, err := mappingPairs(s)
				if err != nil {
					return nil, err
				}
				merged = append(merged, ps...)
			}
			continue
		}
		own = append(own, pair{k.Value, k.Line, v})
	}
	seen := map[string]bool{}
	var pairs []pair
	for _, p := range append(own, merged...) {
		if !seen[p.key] {
			seen[p.key] = true
			pairs = append(pairs, p)
		}
	}
	return pairs, nil
}

// isMerge reports whether a mapping key is the merge key <<.
func isMerge(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// yamlError keeps the first of yaml's errors, on one line.
func yamlError(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		return errors.New(te.Errors[0])
	}
	return errors.New(strings.TrimPrefix(err.Error(), "yaml: "))
}

func strNode(s string) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: s}
}

func mapNode(key string, value *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Content: []*yaml.Node{strNode(key), value}}
}
