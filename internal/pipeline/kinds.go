package pipeline

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sinks"
	"github.com/sluice-data/sluice/internal/sinks/objstore"
	"github.com/sluice-data/sluice/internal/sinks/opensearch"
	"github.com/sluice-data/sluice/internal/sources"
	"github.com/sluice-data/sluice/internal/sources/archive"
	"github.com/sluice-data/sluice/internal/sources/file"
	"github.com/sluice-data/sluice/internal/sources/firehose"
	"github.com/sluice-data/sluice/internal/sources/kafka"
	"github.com/sluice-data/sluice/internal/sources/kinesis"
)

// This file is the one place that knows every kind of source and sink this
// build can run: each config type: is registered here, explicitly, the
// first time a pipeline is built, instead of from init functions scattered
// over the kinds' packages.

var registerOnce sync.Once

// registerKinds registers every source and sink kind; it runs once.
func registerKinds() {
	registerOnce.Do(func() {
		sources.Register("file", newFileSource)
		sources.Register("kafka", newKafkaSource)
		sources.Register("kinesis", newKinesisSource)
		sources.Register("firehose_http", newFirehoseSource)
		sources.Register("archive", newArchiveSource)
		sinks.Register("s3", newObjstoreSink)
		sinks.Register("opensearch", newOpensearchSink)
	})
}

func newFileSource(sc *config.Source, env sources.Env) (sources.Source, error) {
	fs, err := file.New(sc.Name, sc.File.Paths, sc.BatchSize, sc.MaxPending)
	if err != nil {
		return nil, err
	}
	fs.OnWait(env.Relieve)
	fs.SetLinger(sc.BatchLinger.D())
	fs.SetMaxLineBytes(int(sc.File.MaxLineBytes))
	fs.SetLogger(env.Log)
	return fs, nil
}

func newKafkaSource(sc *config.Source, env sources.Env) (sources.Source, error) {
	var (
		ks  *kafka.Source
		err error
	)
	if env.Replay {
		ks, err = kafka.NewReplay(sc, env.From, env.To, env.Log)
	} else {
		ks, err = kafka.New(sc, env.Relieve, env.Log)
	}
	if err != nil {
		return nil, err
	}
	return ks, nil
}

func newKinesisSource(sc *config.Source, env sources.Env) (sources.Source, error) {
	var (
		ks  *kinesis.Source
		err error
	)
	if env.Replay {
		ks, err = kinesis.NewReplay(sc, env.From, env.To, env.Log)
	} else {
		ks, err = kinesis.New(sc, env.Relieve, env.Log)
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", sc.Name, err)
	}
	return ks, nil
}

func newFirehoseSource(sc *config.Source, env sources.Env) (sources.Source, error) {
	if env.Replay {
		// Firehose keeps nothing to read again: replay its raw archive
		// instead. The source ends at once.
		return exhausted{}, nil
	}
	fh, err := firehose.New(sc, env.Log)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", sc.Name, err)
	}
	fh.OnWait(env.Relieve)
	return fh, nil
}

func newArchiveSource(sc *config.Source, env sources.Env) (sources.Source, error) {
	if env.Replay {
		sc.Archive.From, sc.Archive.To = env.From.Format(time.RFC3339Nano), env.To.Format(time.RFC3339Nano)
	}
	store, err := blob.OpenStore(sc.Archive.URL, blob.S3Options{Region: sc.Archive.Region, Endpoint: sc.Archive.Endpoint})
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", sc.Name, err)
	}
	from, _ := time.Parse(time.RFC3339Nano, sc.Archive.From)
	to := time.Now()
	if sc.Archive.To != "" {
		to, _ = time.Parse(time.RFC3339Nano, sc.Archive.To)
	}
	return archive.New(sc.Name, store, from, to, sc.BatchSize, sc.MaxPending), nil
}

// exhausted is a source with nothing to read.
type exhausted struct{}

func (exhausted) ReadBatch(context.Context) (record.Batch, record.AckFunc, error) {
	return record.Batch{}, nil, io.EOF
}
func (exhausted) Close(context.Context) error { return nil }

func newObjstoreSink(sc *config.Sink, env sinks.Env) (sinks.Sink, error) {
	stores, err := objstore.StoresFor(sc)
	if err != nil {
		return nil, err
	}
	s, err := objstore.New(sc, stores, env.Log)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func newOpensearchSink(sc *config.Sink, env sinks.Env) (sinks.Sink, error) {
	s, err := opensearch.New(sc, env.ErrorSink, env.Log)
	if err != nil {
		return nil, err
	}
	return s, nil
}
