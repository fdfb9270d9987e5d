package timeconv

import (
	"testing"
	"time"

	"github.com/valyala/fastjson"
)

func TestRead(t *testing.T) {
	tests := []struct {
		json, unit, want, wantErr string
	}{
		{`1730617200`, "auto", "2024-11-03T07:00:00.000Z", ""},
		{`1730617200123`, "auto", "2024-11-03T07:00:00.123Z", ""},
		{`1730617200123456`, "auto", "2024-11-03T07:00:00.123Z", ""},
		{`1730617200123456789`, "auto", "2024-11-03T07:00:00.123Z", ""},
		{`1730617200.5`, "auto", "2024-11-03T07:00:00.500Z", ""},
		{`1730617200000`, "ms", "2024-11-03T07:00:00.000Z", ""},
		{`1730617200`, "ms", "1970-01-21T00:43:37.200Z", ""},
		{`"2024-11-03T16:00:00.250+09:00"`, "auto", "2024-11-03T07:00:00.250Z", ""},
		{`"1730617200"`, "auto", "2024-11-03T07:00:00.000Z", ""},
		{`-5`, "s", "", "epoch -5 s is out of range (1970-01-01 to 9999-12-31)"},
		{`1e30`, "s", "", "epoch 1000000000000000000000000000000 s is out of range (1970-01-01 to 9999-12-31)"},
		{`"soon"`, "auto", "", `"soon" is neither an epoch nor an RFC 3339 time`},
		{`true`, "auto", "", "want an epoch number or RFC 3339 string, not true"},
	}
	for _, tt := range tests {
		got, err := Read(fastjson.MustParse(tt.json), tt.unit)
		gotErr := ""
		if err != nil {
			gotErr = err.Error()
		}
		s := ""
		if err == nil {
			s = string(AppendRFC3339Millis(nil, got, time.UTC))
		}
		if s != tt.want || gotErr != tt.wantErr {
			t.Errorf("Read(%s, %s) = %q, %q; want %q, %q", tt.json, tt.unit, s, gotErr, tt.want, tt.wantErr)
		}
	}
}

func TestZone(t *testing.T) {
	seoul, err := time.LoadLocation("Asia/Seoul")
	if err != nil {
		t.Skip("no tzdata")
	}
	got := string(AppendRFC3339Millis(nil, time.UnixMilli(1730617200000), seoul))
	if got != "2024-11-03T16:00:00.000+09:00" {
		t.Errorf("got %s", got)
	}
}
