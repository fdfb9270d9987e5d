package test

import (
	"encoding/csv"
	"io"
)

// csvReadAll parses strictly: quotes must follow RFC 4180.
func csvReadAll(r io.Reader) ([][]string, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	return cr.ReadAll()
}
