package jsonx

import (
	"fmt"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func TestDedupe(t *testing.T) {
	var wide, wideWant strings.Builder
	wide.WriteString(`{"k":0`)
	wideWant.WriteString(`{`)
	for i := range 40 {
		fmt.Fprintf(&wide, `,"f%d":%d`, i, i)
		fmt.Fprintf(&wideWant, `"f%d":%d,`, i, i)
	}
	wide.WriteString(`,"k":1}`)
	wideWant.WriteString(`"k":1}`)
	tests := []struct {
		give, want string
	}{
		{`{"a":1,"b":2}`, `{"a":1,"b":2}`},
		{`{"a":1,"a":2}`, `{"a":2}`},
		{`{"a":1,"b":2,"a":3,"a":4}`, `{"b":2,"a":4}`},
		{`{"a":1,"\u0061":2}`, `{"a":2}`},
		{`{"x":{"a":1,"a":{"b":1,"b":2}}}`, `{"x":{"a":{"b":2}}}`},
		{`[{"a":1,"a":2},[{"b":3,"b":4}]]`, `[{"a":2},[{"b":4}]]`},
		{`{"plan_ver":"","plan_ver":0}`, `{"plan_ver":0}`},
		{wide.String(), wideWant.String()},
		{`"s"`, `"s"`},
	}
	for _, tt := range tests {
		v, err := fastjson.Parse(tt.give)
		if err != nil {
			t.Fatal(err)
		}
		Dedupe(v)
		if got := string(v.MarshalTo(nil)); got != tt.want {
			t.Errorf("Dedupe(%s) = %s, want %s", tt.give, got, tt.want)
		}
	}
}
