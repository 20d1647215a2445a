package migrate

import (
	"bytes"
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

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
		err = yamlError(err)
		if strings.Contains(err.Error(), "unknown anchor") {
			return nil, "", fmt.Errorf("the edited configuration does not parse (an anchor inside consul_sd_configs used elsewhere?): %w", err)
		}
		return nil, "", fmt.Errorf("the edited configuration does not parse: %w", err)
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
