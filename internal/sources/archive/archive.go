// Package archive reads a raw event archive back: the gzip NDJSON envelopes
// (package archivefmt) a format: raw sink writes under dt=YYYY-MM-DD/hour=HH/
// by arrival time.
// Messages come out with the position and source name they were first read
// with, so a replay through today's routes names objects and ids exactly as
// the live path did, and overwrites instead of duplicating.
//
// Hours are read in order, and objects inside an hour in name order; names
// start with the source, partition and zero-padded first position, so the
// records of each source partition come out in position order.
package archive

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sluice-data/sluice/internal/archivefmt"
	"github.com/sluice-data/sluice/internal/blob"
	"github.com/sluice-data/sluice/internal/checkpoint"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sources"
)

var _ sources.Source = (*Source)(nil)

// Source reads one time range of an archive.
type Source struct {
	name      string
	store     blob.Lister
	from, to  time.Time
	batchSize int
	tracker   *checkpoint.Tracker

	hour    time.Time // next hour to list
	keys    []string  // objects of the current hour not yet read
	pending []record.Message
	index   int64 // messages handed out, for the pending cap
}

// New returns a source over [from, to) of the archive in store.
func New(name string, store blob.Lister, from, to time.Time, batchSize, maxPending int) *Source {
	return &Source{name: name, store: store, from: from, to: to, batchSize: batchSize,
		tracker: checkpoint.New(int64(maxPending)), hour: from.UTC().Truncate(time.Hour)}
}

// ReadBatch returns the next batch of archived messages.
func (s *Source) ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error) {
	for len(s.pending) < s.batchSize {
		if len(s.keys) == 0 {
			if !s.hour.Before(s.to) {
				break
			}
			keys, err := s.store.List(ctx, archivefmt.HourPrefix(s.hour))
			if err != nil {
				return record.Batch{}, nil, fmt.Errorf("source %s: %w", s.name, err)
			}
			s.keys = keys
			s.hour = s.hour.Add(time.Hour)
			continue
		}
		key := s.keys[0]
		s.keys = s.keys[1:]
		if err := s.readObject(ctx, key); err != nil {
			return record.Batch{}, nil, err
		}
	}
	if len(s.pending) == 0 {
		return record.Batch{}, nil, io.EOF
	}
	n := min(len(s.pending), s.batchSize)
	b := record.Batch{Source: s.name, Messages: s.pending[:n:n]}
	s.pending = s.pending[n:]
	s.index += int64(n)
	rng, err := s.tracker.Track(ctx, s.index, n)
	if err != nil {
		return record.Batch{}, nil, err
	}
	return b, rng.Ack, nil
}

func (s *Source) readObject(ctx context.Context, key string) error {
	if !strings.HasSuffix(key, ".ndjson.gz") && !strings.HasSuffix(key, ".ndjson") {
		return nil
	}
	data, err := s.store.Get(ctx, key)
	if err != nil {
		return fmt.Errorf("source %s: %w", s.name, err)
	}
	var r io.Reader = bytes.NewReader(data)
	if strings.HasSuffix(key, ".gz") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			return fmt.Errorf("source %s: %s: %w", s.name, key, err)
		}
		r = zr
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 256<<20)
	line := 0
	for sc.Scan() {
		line++
		m, err := archivefmt.Decode(sc.Bytes())
		if err != nil {
			// The archive is the record of last resort: a damaged object
			// stops the replay rather than skipping what it holds.
			return fmt.Errorf("source %s: %s line %d: %w", s.name, key, line, err)
		}
		if m.Arrival.Before(s.from) || !m.Arrival.Before(s.to) {
			continue
		}
		s.pending = append(s.pending, m)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("source %s: %s: %w", s.name, key, err)
	}
	return nil
}

// Close releases nothing; objects are read whole.
func (s *Source) Close(context.Context) error { return nil }
