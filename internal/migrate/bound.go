package migrate

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// maxExpandedNodes bounds the nodes of a document with its aliases
// expanded, merge keys included. Everything after parsing (reading an
// entry through its merge keys, decoding it, decoding the whole rewritten
// document to compare it) costs time and memory in proportion to that
// count, so an alias bomb, which is small as text and huge expanded, is
// refused before any of it. A real configuration, even one with thousands
// of scrape jobs sharing anchors, stays far below.
const maxExpandedNodes = 1_000_000

// checkExpansion refuses a document that, with its aliases expanded, has
// more than maxExpandedNodes nodes, or an anchor that holds an alias to
// itself. It visits each node once.
func checkExpansion(doc *yaml.Node) error {
	const visiting = -1
	sizes := map[*yaml.Node]int{}
	var size func(n *yaml.Node) (int, error)
	size = func(n *yaml.Node) (int, error) {
		if s, ok := sizes[n]; ok {
			if s == visiting {
				return 0, fmt.Errorf("line %d: anchor &%s holds an alias to itself", n.Line, n.Anchor)
			}
			return s, nil
		}
		sizes[n] = visiting
		total := 1
		if n.Kind == yaml.AliasNode && n.Alias != nil {
			s, err := size(n.Alias)
			if err != nil {
				return 0, err
			}
			if s > maxExpandedNodes {
				return 0, fmt.Errorf("line %d: alias *%s expands to more than %d nodes", n.Line, n.Value, maxExpandedNodes)
			}
			total = s
		}
		for _, c := range n.Content {
			s, err := size(c)
			if err != nil {
				return 0, err
			}
			total = min(total+s, maxExpandedNodes+1)
		}
		sizes[n] = total
		return total, nil
	}
	total, err := size(doc)
	if err != nil {
		return fmt.Errorf("aliases: %w", err)
	}
	if total > maxExpandedNodes {
		return fmt.Errorf("aliases: expanded, the document has more than %d nodes", maxExpandedNodes)
	}
	return nil
}
