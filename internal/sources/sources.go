// Package sources defines what the pipeline reads from.
package sources

import (
	"context"

	"github.com/sluice-data/sluice/internal/record"
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
