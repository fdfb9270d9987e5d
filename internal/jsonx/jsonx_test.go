package jsonx

import (
	"bytes"
	"encoding/binary"
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
		{`{"axb":1,"ayb":2,"axb":3}`, `{"ayb":2,"axb":3}`},
		{`{"":1,"x":2,"":3}`, `{"x":2,"":3}`},
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
		// Settle does the same in its walk for numbers.
		var c NumberChecker
		v, _ = fastjson.Parse(tt.give)
		if bad := c.Settle(v); bad != nil {
			t.Errorf("Settle(%s) found number %s", tt.give, bad)
		}
		if got := string(v.MarshalTo(nil)); got != tt.want {
			t.Errorf("Settle(%s) = %s, want %s", tt.give, got, tt.want)
		}
	}
}

// TestSettleRefusesWhatBadRefuses: Settle reports the first number that
// is not JSON, as Bad does, even under a key that deduplication drops.
func TestSettleRefusesWhatBadRefuses(t *testing.T) {
	for _, give := range []string{`{"a":NaN,"a":1}`, `{"a":1,"b":[2,{"c":01}]}`, `[1,.5]`, `{"x":{"y":inf}}`, `{"a":1e400,"b":-0.5}`} {
		var c NumberChecker
		want := fmt.Sprint(BadNumber(fastjson.MustParse(give)))
		if got := fmt.Sprint(c.Settle(fastjson.MustParse(give))); got != want {
			t.Errorf("Settle(%s) = %s, Bad = %s", give, got, want)
		}
	}
}

// TestSpecial8: the eight-byte test finds each special byte at each place
// among plain ones, and only those.
func TestSpecial8(t *testing.T) {
	for _, fill := range []byte{'a', ' ', '!', '~', '#', '[', ']', 0x7f} {
		for c := range 256 {
			for at := range 8 {
				b := bytes.Repeat([]byte{fill}, 8)
				b[at] = byte(c)
				if got := special8(binary.LittleEndian.Uint64(b)); got != special[c] {
					t.Errorf("special8(%q) = %v, want %v", b, got, special[c])
				}
			}
		}
	}
}
