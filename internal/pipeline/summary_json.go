package pipeline

import "encoding/json"

// JSON renders the summary as one JSON object (no newline), for the log
// of a run whose stdout is not a terminal (a container's log stream,
// where a table would arrive as many unrelated lines).
func (s Summary) JSON() []byte {
	type source struct {
		Name         string   `json:"name"`
		Messages     int64    `json:"messages"`
		Records      int64    `json:"records"`
		DecodeFailed int64    `json:"decode_failed"`
		Unmatched    int64    `json:"unmatched"`
		Routed       int64    `json:"routed"`
		Checkpoints  []string `json:"checkpoints,omitempty"`
	}
	type route struct {
		Name     string `json:"name"`
		Matched  int64  `json:"matched"`
		Out      int64  `json:"out"`
		Filtered int64  `json:"filtered"`
		Failed   int64  `json:"failed"`
	}
	type sink struct {
		Name         string `json:"name"`
		Received     int64  `json:"received"`
		Written      int64  `json:"written"`
		ErrorRecords int64  `json:"error_records"`
		Refused      int64  `json:"refused"`
		Skipped      int64  `json:"skipped"`
		Objects      int64  `json:"objects"`
		Bytes        int64  `json:"bytes"`
	}
	type balance struct {
		In int64 `json:"in"`
		// Out is records written, skipped, filtered, unmatched or sent
		// to an error output; OK is In == Out.
		Out int64 `json:"out"`
		// Pending is Summary.Pending; OK also holds when the shortfall
		// is within it.
		Pending int64 `json:"pending"`
		OK      bool  `json:"ok"`
	}
	out := struct {
		Sources      []source         `json:"sources"`
		Routes       []route          `json:"routes"`
		Sinks        []sink           `json:"sinks"`
		ErrorsByType map[string]int64 `json:"errors_by_type"`
		Balance      balance          `json:"balance"`
	}{Sources: []source{}, Routes: []route{}, Sinks: []sink{}, ErrorsByType: s.ErrorsByType}
	if out.ErrorsByType == nil {
		out.ErrorsByType = map[string]int64{}
	}
	for _, x := range s.Sources {
		out.Sources = append(out.Sources, source{x.Name, x.Messages, x.Records, x.DecodeFailed, x.Unmatched, x.Routed, x.Checkpoints})
	}
	for _, x := range s.Routes {
		out.Routes = append(out.Routes, route{x.Name, x.Matched, x.Out, x.Filtered, x.Failed})
	}
	for _, x := range s.Sinks {
		out.Sinks = append(out.Sinks, sink{x.Name, x.Received, x.Written, x.ErrorRecords, x.Failed, x.Skipped, x.Objects, x.Bytes})
	}
	in, o := s.Balance()
	out.Balance = balance{In: in, Out: o, Pending: s.Pending, OK: s.Accounted()}
	b, _ := json.Marshal(out) // only strings, ints and maps of them
	return b
}
