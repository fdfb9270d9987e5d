package jq

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// TestTimeFormattersBoundYears: strftime, strflocaltime and todate refuse
// times before year 0, on the native path and in gojq alike; other times
// are formatted as jq formats them (year 56811 from milliseconds too).
func TestTimeFormattersBoundYears(t *testing.T) {
	tests := []struct {
		expr, rec, want, wantErr string
	}{
		{expr: `.t | strftime("%Y-%m-%d")`, rec: `{"t":1700000000}`, want: "2023-11-14"},
		{expr: `.t | strftime("%Y-%m-%d")`, rec: `{"t":-1}`, want: "1969-12-31"},
		{expr: `.t | strftime("%Y-%m-%d")`, rec: `{"t":-99999999999}`, wantErr: "time out of range"},
		{expr: `.t | strftime("%Y")`, rec: `{"t":1730617200000}`, want: "56811"},
		{expr: `.t | strftime("%Y")`, rec: `{"t":-62167219200}`, want: "0000"},
		{expr: `.t | strftime("%Y")`, rec: `{"t":-62167219201}`, wantErr: "time out of range"},
		{expr: `.t | todate`, rec: `{"t":-99999999999}`, wantErr: "time out of range"},
		{expr: `.t | strflocaltime("%Y")`, rec: `{"t":1e30}`, wantErr: "time out of range"},
		{expr: `[-1200,0,1,0,0,0] | strftime("%Y")`, rec: `{}`, wantErr: "time out of range"},
		{expr: `[2024,10,3,7,0,0.5] | strftime("%Y-%m-%dT%H")`, rec: `{}`, want: "2024-11-03T07"},
		{expr: `"x" | strftime("%Y")`, rec: `{}`, wantErr: `strftime("%Y") cannot be applied to: string ("x")`},
	}
	for _, tt := range tests {
		e, err := Compile(tt.expr)
		if err != nil {
			t.Fatal(err)
		}
		v := fastjson.MustParse(tt.rec)
		got, err := e.AppendText(nil, v)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s on %s = %q, %v; want error %q", tt.expr, tt.rec, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("%s on %s = %q, %v; want %q", tt.expr, tt.rec, got, err, tt.want)
		}
	}
}
