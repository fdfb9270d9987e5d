package jq

import (
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// TestTimeFormattersBoundYears: strftime, strflocaltime and todate refuse
// times whose year has more than four digits or is negative, on the native
// path and in gojq alike; times inside the range are formatted as before.
func TestTimeFormattersBoundYears(t *testing.T) {
	tests := []struct {
		expr, rec, want, wantErr string
	}{
		{expr: `.t | strftime("%Y-%m-%d")`, rec: `{"t":1700000000}`, want: "2023-11-14"},
		{expr: `.t | strftime("%Y-%m-%d")`, rec: `{"t":-1}`, want: "1969-12-31"},
		{expr: `.t | strftime("%Y-%m-%d")`, rec: `{"t":-99999999999}`, wantErr: "time out of range"},
		{expr: `.t | strftime("%Y")`, rec: `{"t":253402300800}`, wantErr: "time out of range"},
		{expr: `.t | strftime("%Y")`, rec: `{"t":253402300799}`, want: "9999"},
		{expr: `.t | todate`, rec: `{"t":-99999999999}`, wantErr: "time out of range"},
		{expr: `.t | strflocaltime("%Y")`, rec: `{"t":1e18}`, wantErr: "time out of range"},
		{expr: `[-1200,0,1,0,0,0] | strftime("%Y")`, rec: `{}`, wantErr: "time out of range"},
		{expr: `[2024,10,3,7,0,0.5] | strftime("%Y-%m-%dT%H")`, rec: `{}`, want: "2024-11-03T07"},
		{expr: `"x" | strftime("%Y")`, rec: `{}`, wantErr: "cannot be applied"},
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
