package pipeline

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/sluice-data/sluice/internal/sources"
)

// Summary is the accounting of a run: where every record went.
type Summary struct {
	Sources []SourceSummary
	Routes  []RouteSummary
	Sinks   []SinkSummary
	// ErrorsByType counts error records this run durably wrote, by type
	// (processing-failed, schema-mismatch, sink-rejected, partition-limit),
	// counted by the error output that wrote them: a record skipped as
	// already durable is not counted again.
	ErrorsByType map[string]int64
	// Pending is the share of the balance's "in" of batches processed
	// but not acked (a sink still held them when the run stopped): the
	// next run reads them again, so up to this many may be missing from
	// the "out" side without any record being lost.
	Pending int64
}

// SourceSummary accounts for one source.
type SourceSummary struct {
	Name                                               string
	Messages, Records, DecodeFailed, Unmatched, Routed int64
	Checkpoints                                        []string
}

// RouteSummary accounts for one route.
type RouteSummary struct {
	Name                           string
	Matched, Out, Filtered, Failed int64
}

// SinkSummary accounts for one sink.
type SinkSummary struct {
	Name                                  string
	Received, Failed                      int64
	Written, ErrorRecords, Objects, Bytes int64
	// Skipped records were already in a durable object (re-delivered after
	// a restart, or the same input run again).
	Skipped int64
}

// Summary reports the counts so far: of every source, route and sink the
// run has had, by name, reloads included (a component a reload replaced
// counts on where its predecessor stopped; one it removed keeps its counts).
func (p *Pipeline) Summary() Summary {
	s := Summary{Pending: p.pending.Load()}
	p.statsMu.Lock()
	defer p.statsMu.Unlock()
	for _, name := range p.srcNames {
		st := p.srcStats[name]
		ss := SourceSummary{Name: name, Messages: st.Messages.Load(), Records: st.Records.Load(),
			DecodeFailed: st.DecodeFailed.Load(), Unmatched: st.Unmatched.Load(), Routed: st.Routed.Load()}
		if run := p.srcLatest[name]; run != nil && run.checkpointer != nil {
			ss.Checkpoints = run.checkpointer.Checkpoints()
		}
		s.Sources = append(s.Sources, ss)
	}
	for _, name := range p.routeNames {
		st := p.routeStats[name]
		s.Routes = append(s.Routes, RouteSummary{Name: name, Matched: st.Matched.Load(), Out: st.Out.Load(),
			Filtered: st.Filtered.Load(), Failed: st.Failed.Load()})
	}
	s.ErrorsByType = map[string]int64{}
	for _, name := range p.sinkNames {
		ss := SinkSummary{Name: name, Received: p.sinkStats[name].Received.Load(), Failed: p.sinkStats[name].Failed.Load()}
		for _, sk := range p.sinkInst[name] {
			st := sk.Stats()
			for typ, n := range st.ErrorsByType {
				s.ErrorsByType[typ] += n
			}
			ss.Written += st.Records
			ss.ErrorRecords += st.ErrorRecords
			ss.Objects += st.Objects
			ss.Bytes += st.Bytes
			ss.Skipped += st.Skipped
			ss.Failed += st.Refused
		}
		s.Sinks = append(s.Sinks, ss)
	}
	return s
}

// Accounted reports whether the balance holds: every record is on the
// "out" side, or the shortfall is within the records of batches not acked
// when the run stopped, which the next run reads again.
func (s Summary) Accounted() bool {
	in, out := s.Balance()
	return in == out || (in > out && in-out <= s.Pending)
}

// Balance checks that every record is accounted for. Records in, plus the
// extra records routes created (explode, jq, a record taking several routes,
// a route writing to several sinks), must equal records written (or found
// already written), filtered, unmatched and sent to an error output. It
// returns both sides.
func (s Summary) Balance() (in, out int64) {
	var routed, matched, routeOut, routeFiltered, routeFailed, unmatched, decodeFailed int64
	for _, src := range s.Sources {
		in += src.Records
		routed += src.Routed
		unmatched += src.Unmatched
		decodeFailed += src.DecodeFailed
	}
	var fanout int64
	for _, r := range s.Routes {
		matched += r.Matched
		routeOut += r.Out
		routeFiltered += r.Filtered
		routeFailed += r.Failed
	}
	var received, written, errs, skipped int64
	for _, sk := range s.Sinks {
		received += sk.Received
		written += sk.Written
		errs += sk.ErrorRecords
		skipped += sk.Skipped
	}
	// Extra records: a record matching k routes counts k times from here on;
	// a route's transforms may add records (explode); a record sent to k
	// sinks counts k times.
	fanout = (matched - routed) + (routeOut + routeFiltered + routeFailed - matched) + (received - routeOut)
	in += fanout
	out = written + skipped + routeFiltered + unmatched + errs
	return in, out
}

func (s Summary) skipped() (n int64) {
	for _, sk := range s.Sinks {
		n += sk.Skipped
	}
	return n
}

// SinkLegend says what the sink table's columns count.
const SinkLegend = "(rows: records written; errors: error records this sink wrote, failures from any source, route or sink; " +
	"refused: records this sink could not take, sent to an error output; skipped: records already durable, not written again)"

// Print writes the one-screen summary.
func (s Summary) Print(w io.Writer) {
	fmt.Fprintln(w, "── sluice run summary ──")
	fmt.Fprintf(w, "%-22s %10s %10s %10s %10s\n", "source", "messages", "records", "unmatched", "bad")
	for _, src := range s.Sources {
		fmt.Fprintf(w, "%-22s %10d %10d %10d %10d\n", src.Name, src.Messages, src.Records, src.Unmatched, src.DecodeFailed)
	}
	fmt.Fprintf(w, "\n%-22s %10s %10s %10s %10s\n", "route", "matched", "out", "filtered", "failed")
	for _, r := range s.Routes {
		fmt.Fprintf(w, "%-22s %10d %10d %10d %10d\n", r.Name, r.Matched, r.Out, r.Filtered, r.Failed)
	}
	fmt.Fprintf(w, "\n%-22s %10s %10s %10s %10s %10s %12s\n", "sink", "rows", "errors", "refused", "skipped", "objects", "bytes")
	for _, sk := range s.Sinks {
		fmt.Fprintf(w, "%-22s %10d %10d %10d %10d %10d %12d\n", sk.Name, sk.Written, sk.ErrorRecords, sk.Failed, sk.Skipped, sk.Objects, sk.Bytes)
	}
	fmt.Fprintln(w, SinkLegend)
	var types []string
	for t, n := range s.ErrorsByType {
		types = append(types, fmt.Sprintf("%s %d", t, n))
	}
	sort.Strings(types)
	if len(types) == 0 {
		types = []string{"none"}
	}
	fmt.Fprintf(w, "\nerrors by type: %s\n", strings.Join(types, ", "))
	in, out := s.Balance()
	status := "ok"
	switch {
	case in == out:
	case s.Accounted():
		status = fmt.Sprintf("ok, %d not yet durable: their batches were not acked and are read again on the next run", in-out)
	default:
		status = fmt.Sprintf("MISMATCH (%d unaccounted)", in-out)
	}
	fmt.Fprintf(w, "\nbalance: %d in (with fan-out) = %d written + skipped + filtered + unmatched + error records: %s\n", in, out, status)
	if sk := s.skipped(); sk > 0 {
		fmt.Fprintf(w, "skipped: %d records were already durably written (a re-delivery or a re-run) and were not written again\n", sk)
	}
	var cps []string
	for _, src := range s.Sources {
		for _, c := range src.Checkpoints {
			cps = append(cps, src.Name+" "+c)
		}
	}
	sort.Strings(cps)
	if len(cps) > 0 && len(cps) <= 10 {
		fmt.Fprintln(w, "checkpoints: "+strings.Join(cps, "; "))
	} else if len(cps) > 10 {
		fmt.Fprintf(w, "checkpoints: %d files, all read\n", len(cps))
	}
}

// ReplayProgress reports records read so far and, for sources reading a
// range that can say how far they are (Kafka), each partition's progress.
func (p *Pipeline) ReplayProgress() (records int64, parts []sources.PartitionProgress) {
	for _, src := range p.cur.Load().sources {
		records += src.stats.Messages.Load()
		if src.progress != nil {
			parts = append(parts, src.progress.Progress()...)
		}
	}
	return records, parts
}
