package ofp

import (
	"encoding/json"
	"strconv"
)

// object marshals v, a struct whose fields carry json tags, as
// {"name": {fields of v, then the extra key/value pairs}}. The extras carry
// the type and length fields, which are implied by the Go type or computed
// on encode rather than stored. v must be a methodless alias type of the
// caller so that this does not recurse into the caller's MarshalJSON.
func object(name string, v any, extra ...any) ([]byte, error) {
	fields := map[string]json.RawMessage{}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &fields); err != nil {
			return nil, err
		}
	}
	for i := 0; i+1 < len(extra); i += 2 {
		b, err := json.Marshal(extra[i+1])
		if err != nil {
			return nil, err
		}
		fields[extra[i].(string)] = b
	}
	return json.Marshal(map[string]any{name: fields})
}

// byteList marshals as a list of numbers, the form peers use for some
// experimenter payloads, instead of encoding/json's base64 string.
type byteList []byte

func (b byteList) MarshalJSON() ([]byte, error) {
	out := []byte{'['}
	for i, c := range b {
		if i > 0 {
			out = append(out, ',')
		}
		out = strconv.AppendUint(out, uint64(c), 10)
	}
	return append(out, ']'), nil
}
