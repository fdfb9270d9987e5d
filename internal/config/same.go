package config

import (
	"bytes"
	"encoding/json"
)

// Same reports whether two parts of configurations (a Source, a Sink, a
// Route, Service) say the same thing: their keys and values are equal,
// wherever they sat in their files and however they were spelled in YAML.
// Comments, key order and line numbers do not count.
func Same(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}
