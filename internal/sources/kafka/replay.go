package kafka

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/sources"
)

// NewReplay reads the records of every partition of the source's topics
// whose timestamps fall in [from, to), as a plain consumer: it does not
// join the group and commits nothing. It ends at to, or at the high
// watermark each partition had at start, whichever comes first.
func NewReplay(cfg *config.Source, from, to time.Time, log *zap.Logger) (*Source, error) {
	s := newSource(cfg, nil, log)
	s.replay = true
	opts, err := clientOpts(cfg)
	if err != nil {
		return nil, err
	}
	admin, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Name, err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	starts, err := adm.ListOffsetsAfterMilli(ctx, from.UnixMilli(), cfg.Kafka.Topics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: offsets at %s: %w", cfg.Name, from.Format(time.RFC3339), err)
	}
	ends, err := adm.ListOffsetsAfterMilli(ctx, to.UnixMilli(), cfg.Kafka.Topics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: offsets at %s: %w", cfg.Name, to.Format(time.RFC3339), err)
	}
	hws, err := adm.ListEndOffsets(ctx, cfg.Kafka.Topics...)
	if err == nil {
		err = hws.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("source %s: high watermarks: %w", cfg.Name, err)
	}
	consume := map[string]map[int32]kgo.Offset{}
	starts.Each(func(o kadm.ListedOffset) {
		tp := topicPart{o.Topic, o.Partition}
		end := o.Offset
		if e, ok := ends.Lookup(o.Topic, o.Partition); ok {
			end = e.Offset
		}
		if hw, ok := hws.Lookup(o.Topic, o.Partition); ok && hw.Offset < end {
			end = hw.Offset
		}
		st := s.state(tp)
		st.start, st.end, st.read = o.Offset, end, o.Offset-1
		if o.Offset >= end {
			st.done = true
			return
		}
		if consume[o.Topic] == nil {
			consume[o.Topic] = map[int32]kgo.Offset{}
		}
		consume[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
	})
	if s.cl, err = kgo.NewClient(append(opts, kgo.ConsumePartitions(consume))...); err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Name, err)
	}
	return s, nil
}

func (s *Source) replayDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.parts {
		if !st.done {
			return false
		}
	}
	return true
}

// Progress reports a replay's progress per partition.
func (s *Source) Progress() []sources.PartitionProgress {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sources.PartitionProgress, 0, len(s.parts))
	for tp, st := range s.parts {
		out = append(out, sources.PartitionProgress{Partition: tp.String(), Done: st.read + 1 - st.start, Total: st.end - st.start, Finished: st.done})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Partition < out[j].Partition })
	return out
}
