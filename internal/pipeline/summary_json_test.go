package pipeline

import (
	"encoding/json"
	"testing"
)

func TestSummaryJSON(t *testing.T) {
	s := Summary{
		Sources:      []SourceSummary{{Name: "logs", Messages: 3, Records: 3, Routed: 3, Checkpoints: []string{"a: line 3"}}},
		Routes:       []RouteSummary{{Name: "all", Matched: 3, Out: 3}},
		Sinks:        []SinkSummary{{Name: "lake", Received: 3, Written: 2, ErrorRecords: 1, Failed: 1, Objects: 1, Bytes: 10}},
		ErrorsByType: map[string]int64{"schema-mismatch": 1},
	}
	b := s.JSON()
	var got struct {
		Sources []struct {
			Name    string `json:"name"`
			Records int64  `json:"records"`
		} `json:"sources"`
		Sinks []struct {
			Written      int64 `json:"written"`
			ErrorRecords int64 `json:"error_records"`
		} `json:"sinks"`
		ErrorsByType map[string]int64 `json:"errors_by_type"`
		Balance      struct {
			In, Out int64
			OK      bool
		} `json:"balance"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	for _, c := range b {
		if c == '\n' {
			t.Fatalf("not one line: %s", b)
		}
	}
	if got.Sources[0].Name != "logs" || got.Sources[0].Records != 3 || got.Sinks[0].Written != 2 || got.Sinks[0].ErrorRecords != 1 ||
		got.ErrorsByType["schema-mismatch"] != 1 || got.Balance.In != 3 || got.Balance.Out != 3 || !got.Balance.OK {
		t.Errorf("JSON() = %s", b)
	}
}
