package config

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// nodeDecoder is implemented by types that decode themselves from YAML.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

// Duration is a Go duration such as 90s or 5m.
type Duration time.Duration

func (x *Duration) decodeNode(d *decoder, n *yaml.Node, path string) {
	if !d.scalar(n, path) {
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		d.errorf(n, path, "invalid duration %q (want a Go duration such as 90s or 5m)", n.Value)
		return
	}
	*x = Duration(v)
}

// D returns the duration as a time.Duration.
func (x Duration) D() time.Duration { return time.Duration(x) }

// Size is a byte count: 1024, 512KiB, 64MiB, 1GiB (KB, MB, GB are decimal).
type Size int64

var sizeUnits = []struct {
	suffix string
	mult   int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1},
}

// ParseSize parses a size such as 64MiB.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || v < 0 || v*float64(mult) > 1<<62 {
		return 0, fmt.Errorf("invalid size %q (want bytes or a number with KiB, MiB, GiB)", s)
	}
	return Size(v * float64(mult)), nil
}

func (x *Size) decodeNode(d *decoder, n *yaml.Node, path string) {
	if !d.scalar(n, path) {
		return
	}
	v, err := ParseSize(n.Value)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return
	}
	*x = v
}

// Node keeps a YAML subtree as it is, for values whose shape is free
// (event patterns, values to set). Line is where it starts.
type Node struct {
	*yaml.Node
}

func (x *Node) decodeNode(d *decoder, n *yaml.Node, path string) {
	x.Node = n
	d.recordTree(n, path)
}

// Value converts the node to plain Go values (map[string]any, []any, string,
// int, float64, bool, nil).
func (x Node) Value() (any, error) {
	if x.Node == nil {
		return nil, nil
	}
	var v any
	err := x.Node.Decode(&v)
	return v, err
}

// KV is one entry of an ordered string map.
type KV struct {
	Key, Value string
}

// KeyMap is a string-to-string map that keeps the file's order.
type KeyMap []KV

func (x *KeyMap) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping of names to strings")
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := path + "." + k.Value
		d.record(p, k.Line)
		if seen[k.Value] {
			d.errorf(k, p, "duplicate key")
			continue
		}
		seen[k.Value] = true
		if !d.scalar(v, p) {
			continue
		}
		*x = append(*x, KV{Key: k.Value, Value: v.Value})
	}
}

// Get returns the value for key.
func (x KeyMap) Get(key string) (string, bool) {
	for _, kv := range x {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return "", false
}

// KeyNode is one entry of an ordered map with free-form values.
type KeyNode struct {
	Key  string
	Node Node
}

// KeyNodes is a map of names to free-form values that keeps the file's order.
type KeyNodes []KeyNode

func (x *KeyNodes) decodeNode(d *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "must be a mapping of field paths to values")
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		p := path + "." + k.Value
		d.record(p, k.Line)
		d.recordTree(v, p)
		*x = append(*x, KeyNode{Key: k.Value, Node: Node{v}})
	}
}

// MarshalJSON renders the node's value, so that two configurations can be
// compared by content, not by where their YAML sat in the file.
func (x Node) MarshalJSON() ([]byte, error) {
	v, err := x.Value()
	if err != nil {
		return nil, err
	}
	return json.Marshal(v)
}
