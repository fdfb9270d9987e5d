// Package sources defines what the pipeline reads from.
package sources

import (
	"context"
	"time"

	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/registry"
)

// Source yields batches. ack is called once every record of the batch is
// durably handled (nil) or has failed (the error); a source advances its
// checkpoint only over batches acked with nil, in order. ReadBatch returns
// io.EOF when a finite source is exhausted, and blocks while the source's
// pending cap is reached (backpressure).
type Source interface {
	ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error)
	Close(ctx context.Context) error
}

// Env is what the pipeline gives a source constructor besides the
// source's own configuration.
type Env struct {
	Log *zap.Logger
	// Relieve is called while the source waits at its pending cap: it asks
	// the sinks the source's records can reach to write out their oldest
	// buffers, so that acks come back.
	Relieve func()
	// Replay, when set, makes the source read the time range [From, To)
	// and end, without joining groups or committing anything.
	Replay   bool
	From, To time.Time
}

// Constructor opens a source of one kind. It starts no background work
// that outlives a failed construction, and returns an error naming the
// source when the configuration cannot be opened.
type Constructor func(cfg *config.Source, env Env) (Source, error)

var kinds = registry.New[Constructor]("sources")

// Register makes a source kind (the config's type:) available. Registering
// the same kind twice is a programming error and panics.
func Register(typ string, c Constructor) { kinds.Register(typ, c) }

// Lookup returns the constructor registered for typ.
func Lookup(typ string) (Constructor, bool) { return kinds.Lookup(typ) }

// Kinds lists the registered source kinds, sorted.
func Kinds() []string { return kinds.Kinds() }

// Checkpointer is a source that can say how far it has durably got: one
// line per partition, shard or file, for the run summary.
type Checkpointer interface {
	Checkpoints() []string
}

// PartitionProgress is how far a source reading a range (a replay) has
// read one partition, or a file source its files.
type PartitionProgress struct {
	Partition   string
	Done, Total int64 // read and in all: records of a range, bytes of files
	Finished    bool
}

// ProgressReporter is a source reading a bounded range (a replay, files)
// that can say how far along it is.
type ProgressReporter interface {
	Progress() []PartitionProgress
}

// ErrReporter is a source whose failures can surface after it returned
// io.EOF (an ack that failed once every batch was read). The pipeline
// asks it once everything is flushed, and fails the run with its error.
type ErrReporter interface {
	Err() error
}

// Updater is a source that can take some changes of its settings in
// place, at a reload, instead of being closed and opened again (which
// would drop its connections, group membership or leases).
type Updater interface {
	// CanUpdate reports whether the source can take cfg in place.
	CanUpdate(cfg *config.Source) bool
	// Update applies cfg. The pipeline calls it at a batch boundary, and
	// only after CanUpdate said yes.
	Update(cfg *config.Source)
}
