// Package emf publishes Sluice's lag and throughput to CloudWatch as
// Embedded Metric Format log lines, so alarms and autoscaling on ECS work
// with nothing but the awslogs driver: no agent, no PutMetricData calls
// (and so no IAM permission). It reads the Prometheus registry that
// /metrics serves, so the pipeline needs no hooks for it.
//
// Every interval it writes one JSON line per source, per sink and per
// error-record type, in namespace Sluice:
//
//	Service, Source: RecordsIn (records decoded in the interval),
//	                 KafkaConsumerLag (records, summed over partitions),
//	                 MillisBehindLatest (Kinesis, the largest over shards),
//	                 PendingRecords (read, not yet durable)
//	Service, Sink:   RecordsOut (durably written in the interval),
//	                 ErrorRecordsWritten, StoreRetries, BufferedBytes,
//	                 OpenPartitions, FlushSeconds (mean time to write
//	                 one object in the interval, when one was written)
//	Service and Service, Type: ErrorRecords (sent to an error output)
//
// Each source and sink line also carries the dimension set [Service], so
// CloudWatch aggregates it per service (Sum for counts, Maximum for lag).
package emf

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Namespace is the CloudWatch namespace of every metric.
const Namespace = "Sluice"

// Interval is how often lines are written.
const Interval = 60 * time.Second

// Emitter writes EMF lines from a Prometheus gatherer.
type Emitter struct {
	g       prometheus.Gatherer
	w       io.Writer
	service string

	mu   sync.Mutex
	prev map[string]float64 // counter values at the last emit
}

// New returns an emitter that reads g and writes to w (the log stream
// awslogs ships) with dimension Service=service.
func New(g prometheus.Gatherer, w io.Writer, service string) *Emitter {
	return &Emitter{g: g, w: w, service: service, prev: map[string]float64{}}
}

// Run emits every Interval until ctx ends, then once more so the last
// partial interval's counts are not lost.
func (e *Emitter) Run(ctx context.Context) error {
	t := time.NewTicker(Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return e.Emit(time.Now())
		case now := <-t.C:
			if err := e.Emit(now); err != nil {
				return err
			}
		}
	}
}

type metricDef struct {
	Name string `json:"Name"`
	Unit string `json:"Unit"`
}

// line is one EMF document: dimension values and metric values at the
// top level, their declaration under _aws.
type line struct {
	dims    [][]string
	fields  map[string]string
	metrics []metricDef
	values  map[string]float64
}

func (l *line) set(name, unit string, v float64) {
	if l.values == nil {
		l.values = map[string]float64{}
	}
	if _, ok := l.values[name]; !ok {
		l.metrics = append(l.metrics, metricDef{Name: name, Unit: unit})
	}
	l.values[name] = v
}

func (l *line) marshal(ts time.Time) ([]byte, error) {
	doc := map[string]any{}
	for k, v := range l.fields {
		doc[k] = v
	}
	for k, v := range l.values {
		doc[k] = v
	}
	doc["_aws"] = map[string]any{
		"Timestamp": ts.UnixMilli(),
		"CloudWatchMetrics": []any{map[string]any{
			"Namespace":  Namespace,
			"Dimensions": l.dims,
			"Metrics":    l.metrics,
		}},
	}
	b, err := json.Marshal(doc)
	return append(b, '\n'), err
}

// Emit gathers once and writes the lines for the interval ending at now.
func (e *Emitter) Emit(now time.Time) error {
	families, err := e.g.Gather()
	if err != nil {
		return fmt.Errorf("emf: gather: %w", err)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	sources, sinks, types := map[string]*line{}, map[string]*line{}, map[string]*line{}
	get := func(m map[string]*line, dim, val string) *line {
		l := m[val]
		if l == nil {
			l = &line{fields: map[string]string{"Service": e.service}}
			l.fields[dim] = val
			// Per component, and summed (or, for lag, maxed) over the
			// service: alarms and scaling need no per-name setup.
			l.dims = [][]string{{"Service", dim}, {"Service"}}
			m[val] = l
		}
		return l
	}
	// delta turns a counter into its increase since the last emit.
	delta := func(key string, v float64) float64 {
		d := v - e.prev[key]
		e.prev[key] = v
		if d < 0 {
			d = v // the counter restarted
		}
		return d
	}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			lb := labels(m)
			switch f.GetName() {
			case "sluice_source_records_total":
				get(sources, "Source", lb["source"]).set("RecordsIn", "Count", delta(f.GetName()+lb["source"], m.GetCounter().GetValue()))
			case "sluice_source_pending_records":
				get(sources, "Source", lb["source"]).set("PendingRecords", "Count", m.GetGauge().GetValue())
			case "sluice_kafka_consumer_lag":
				l := get(sources, "Source", lb["source"])
				l.set("KafkaConsumerLag", "Count", l.values["KafkaConsumerLag"]+m.GetGauge().GetValue())
			case "sluice_kinesis_millis_behind_latest":
				l := get(sources, "Source", lb["source"])
				l.set("MillisBehindLatest", "Milliseconds", max(l.values["MillisBehindLatest"], m.GetGauge().GetValue()))
			case "sluice_sink_written_total":
				get(sinks, "Sink", lb["sink"]).set("RecordsOut", "Count", delta(f.GetName()+lb["sink"], m.GetCounter().GetValue()))
			case "sluice_sink_error_records_written_total":
				get(sinks, "Sink", lb["sink"]).set("ErrorRecordsWritten", "Count", delta(f.GetName()+lb["sink"], m.GetCounter().GetValue()))
			case "sluice_sink_store_retries_total":
				get(sinks, "Sink", lb["sink"]).set("StoreRetries", "Count", delta(f.GetName()+lb["sink"], m.GetCounter().GetValue()))
			case "sluice_sink_flush_seconds":
				h := m.GetHistogram()
				key := f.GetName() + lb["sink"]
				n, sum := delta(key+"#n", float64(h.GetSampleCount())), delta(key+"#s", h.GetSampleSum())
				if n > 0 {
					get(sinks, "Sink", lb["sink"]).set("FlushSeconds", "Seconds", sum/n)
				}
			case "sluice_sink_buffered_bytes":
				get(sinks, "Sink", lb["sink"]).set("BufferedBytes", "Bytes", m.GetGauge().GetValue())
			case "sluice_sink_open_partitions":
				get(sinks, "Sink", lb["sink"]).set("OpenPartitions", "Count", m.GetGauge().GetValue())
			case "sluice_error_records_total":
				l := get(types, "Type", lb["type"])
				// Both the per-type and the service-wide dimension set:
				// CloudWatch sums the lines into the service total.
				l.dims = [][]string{{"Service"}, {"Service", "Type"}}
				l.set("ErrorRecords", "Count", delta(f.GetName()+lb["type"], m.GetCounter().GetValue()))
			}
		}
	}
	all := []*line{}
	for _, m := range []map[string]*line{sources, sinks, types} {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			all = append(all, m[k])
		}
	}
	for _, l := range all {
		b, err := l.marshal(now)
		if err != nil {
			return fmt.Errorf("emf: %w", err)
		}
		if _, err := e.w.Write(b); err != nil {
			return fmt.Errorf("emf: write: %w", err)
		}
	}
	return nil
}

func labels(m *dto.Metric) map[string]string {
	out := map[string]string{}
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}
