package migrate

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// checkDuplicates refuses a mapping that has a key twice, as Prometheus
// does (yaml.v2's strict decoding). A merge key (<<) may repeat, and a key
// of the mapping itself may override a merged one. Each node is visited
// once: an alias is checked where its anchor is.
func checkDuplicates(n *yaml.Node) error {
	if n.Kind == yaml.MappingNode {
		lines := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind != yaml.ScalarNode || isMerge(k) {
				continue
			}
			if first, ok := lines[k.Value]; ok {
				return fmt.Errorf("line %d: key %q is given twice (first on line %d); Prometheus refuses it too", k.Line, k.Value, first)
			}
			lines[k.Value] = k.Line
		}
	}
	for _, c := range n.Content {
		if err := checkDuplicates(c); err != nil {
			return err
		}
	}
	return nil
}
