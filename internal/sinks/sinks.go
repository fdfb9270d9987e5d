// Package sinks defines how the pipeline hands records to outputs.
//
// Work is split in two so that both cores are used and the output stays
// deterministic: a Writer, one per pipeline worker, does the per-record work
// (partition keys, templates, row encoding) in parallel; the Sink's Append
// then takes the encoded records in source order and does only buffer
// bookkeeping, so the same input always cuts into the same objects.
package sinks

import (
	"context"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/jq"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/registry"
)

// Error output types, as Firehose names them in !{error-output-type}.
const (
	ProcessingFailed = "processing-failed"
	SchemaMismatch   = "schema-mismatch"
	SinkRejected     = "sink-rejected"
	PartitionLimit   = "partition-limit"
)

// Failure is a record that could not be delivered, on its way to an error
// output with its reason.
type Failure struct {
	Type    string // one of the error output types
	Code    string // Firehose-style errorCode, e.g. DynamicPartitioning.MetadataExtractionFailed
	Message string
	Source  string
	Route   string // empty when the record failed before routing
	Sink    string // empty unless a sink failed it
	Pos     record.Position
	Raw     []byte    // the message bytes, as read
	Arrival time.Time // when the source read it
	Event   time.Time // its event time, for !{timestamp:} in error_prefix
	// FiledSource and FiledPos, when set, are where an error output files
	// the failure instead of Source and Pos. An error output keeps each
	// source partition's records in source order; a sink whose failures
	// come out of order (OpenSearch items failing after retries) files
	// them in a stream of its own, in the order it reports them.
	FiledSource string
	FiledPos    record.Position
}

// Sink is a configured output.
type Sink interface {
	// Name is the configured name.
	Name() string
	// NewWriter returns an encoder for one pipeline worker.
	NewWriter() Writer
	// ErrorSink names the sink that takes records this sink fails; a sink
	// that keeps its own error output returns its own name.
	ErrorSink() string
	// Append takes what a Writer encoded, in pipeline order. ack fires once
	// every record in p is durable (or failed). Append blocks while the
	// sink is at its in-flight limit: that is the backpressure.
	Append(ctx context.Context, p Pending, ack record.AckFunc) error
	// Flush writes out everything buffered and waits until it is durable.
	Flush(ctx context.Context) error
	// Close flushes and releases resources. If ctx is done, the caller has
	// given up: writes still retrying stop at once and their acks get an
	// error.
	Close(ctx context.Context) error
	// Stats reports what the sink has durably written so far.
	Stats() Stats
	// Relieve starts writing out the oldest buffered records, because a
	// source is waiting for acks at its pending cap.
	Relieve(ctx context.Context)
}

// Stats is what a sink has durably written.
type Stats struct {
	Records      int64 // data records
	ErrorRecords int64 // records written to this sink's error output
	Objects      int64
	Bytes        int64
	// Skipped counts records not written because a durable object from an
	// earlier run (or an earlier delivery) already holds them.
	Skipped int64
	// ErrorsByType counts the error records of ErrorRecords by error output
	// type: what this run wrote, not what it skipped as already durable.
	ErrorsByType map[string]int64
	// Refused counts records the sink took from Write but could not write
	// and sent to an error output later (partition-limit, OpenSearch
	// rejections); a Failure Write returns is counted by its caller.
	Refused int64
}

// Writer encodes records for one sink. It is used by one goroutine.
type Writer interface {
	// Write encodes rec. A record the sink cannot take is returned as a
	// Failure for the pipeline to send to ErrorSink.
	Write(rec *record.Record) *Failure
	// WriteFailure encodes a failure for this sink's error output.
	WriteFailure(f *Failure)
	// Take returns what was written since the last Take, or nil if nothing.
	Take() Pending
}

// JQWriter is a Writer that evaluates jq per record (partition keys, an
// id). The pipeline hands it its worker's jq.Env once, before the first
// Write, so that every evaluation is bounded by service.jq and stopped on
// shutdown. A writer that was given none evaluates under jq.DefaultLimits.
type JQWriter interface {
	SetJQ(env *jq.Env)
}

// Pending is encoded records on their way to Append.
type Pending interface {
	// Len is the number of records.
	Len() int
}

// ErrorSinkUser is a sink that hands records it fails after Append (an
// OpenSearch item rejected after its retries) straight to its error sink,
// instead of returning them from a Writer. The pipeline gives it that sink
// once, at wiring time, and flushes and closes it before the error sink,
// so that what it hands over while flushing is made durable too.
type ErrorSinkUser interface {
	SetErrorSink(Sink)
}

// Env is what the pipeline gives a sink constructor besides the sink's own
// configuration.
type Env struct {
	Log *zap.Logger
	// ErrorSink names the sink that takes this sink's failures: the sink's
	// error_sink, else service.error_sink.
	ErrorSink string
}

// Constructor opens a sink of one kind. It starts no background work that
// outlives a failed construction.
type Constructor func(cfg *config.Sink, env Env) (Sink, error)

var kinds = registry.New[Constructor]("sinks")

// Register makes a sink kind (the config's type:) available. Registering
// the same kind twice is a programming error and panics.
func Register(typ string, c Constructor) { kinds.Register(typ, c) }

// Lookup returns the constructor registered for typ.
func Lookup(typ string) (Constructor, bool) { return kinds.Lookup(typ) }

// Kinds lists the registered sink kinds, sorted.
func Kinds() []string { return kinds.Kinds() }

// Wait waits for wg, or until ctx is done.
func Wait(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
