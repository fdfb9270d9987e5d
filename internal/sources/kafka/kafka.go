// Package kafka is the Kafka source (type: kafka) on franz-go.
//
// Live, it is a consumer group member with the cooperative-sticky
// balancer. Offsets advance only from the ack path: each batch is tracked
// per partition by a capped checkpoint tracker, and when a partition's
// checkpoint (every record up to it durably written by every sink) moves,
// the next offset is marked; franz-go commits marked offsets periodically
// (AutoCommitMarks), and the source commits them synchronously when
// partitions are revoked and at shutdown. On revoke, the source asks the
// sinks to flush and waits (up to revokeWait) for the partition's pending
// records to be acked before committing, so the next owner starts where
// this one durably stopped. A partition whose pending records reach
// max_pending stops being fetched until half of them are acked.
//
// For replay, the same source reads a time range of every partition
// directly (no group, nothing committed) and ends at the range's end or at
// the high watermark seen at start.
//
// A message's position is topic/partition and offset; its arrival time is
// the Kafka record timestamp, so a replay renders the same objects.
package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl"
	awssasl "github.com/twmb/franz-go/pkg/sasl/aws"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/checkpoint"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/sources"
)

var (
	_ sources.Source           = (*Source)(nil)
	_ sources.Checkpointer     = (*Source)(nil)
	_ sources.ProgressReporter = (*Source)(nil)
)

// revokeWait bounds how long a revoke waits for pending records.
var revokeWait = 45 * time.Second

type topicPart struct {
	topic string
	part  int32
}

func (tp topicPart) String() string { return tp.topic + "/" + strconv.Itoa(int(tp.part)) }

// partState is one assigned partition.
type partState struct {
	tp      topicPart
	name    string // tp.String(), the messages' partition
	tracker *checkpoint.Tracker
	epoch   int32
	marked  int64 // last offset marked for commit, -1 none
	paused  bool
	end     int64 // replay: first offset not to read
	done    bool  // replay: reached end
	start   int64 // replay: first offset, for progress
	read    int64 // replay: last offset read
}

// Source reads Kafka.
type Source struct {
	name    string
	cfg     config.Kafka
	cl      *kgo.Client
	batch   int
	maxPend int64
	log     *zap.Logger
	relieve func()

	mu     sync.Mutex
	parts  map[topicPart]*partState
	replay bool          // reading a range, not as a group member
	ahead  []*kgo.Record // polled, not yet handed out (see ReadBatch)
	// interrupt ends ReadBatch's wait for a fetch, or is nil.
	interrupt context.CancelFunc

	lag        *metricsVec
	commits    func()
	rebalances func()

	// dead ends, with the reason, when a partition left this process with
	// records not yet durable: writing them later could duplicate what its
	// next owner writes, so the pipeline must stop (its sinks then give up
	// their writes) and the task restart.
	dead context.Context
	kill context.CancelCauseFunc
}

type metricsVec struct{ source string }

func (m *metricsVec) set(tp topicPart, lag int64) {
	metrics.KafkaLag.WithLabelValues(m.source, tp.String()).Set(float64(lag))
}

// New joins the source's consumer group. relieve asks the sinks to flush;
// it is called while a revoke or a full partition waits for acks.
func New(cfg *config.Source, relieve func(), log *zap.Logger) (*Source, error) {
	s := newSource(cfg, relieve, log)
	opts, err := clientOpts(cfg)
	if err != nil {
		return nil, err
	}
	start := kgo.NewOffset().AtStart()
	switch cfg.Kafka.Start {
	case "earliest":
	case "latest":
		start = kgo.NewOffset().AtEnd()
	default:
		t, err := time.Parse(time.RFC3339, cfg.Kafka.Start)
		if err != nil {
			return nil, fmt.Errorf("source %s: kafka.start: %w", cfg.Name, err)
		}
		start = kgo.NewOffset().AfterMilli(t.UnixMilli())
	}
	opts = append(opts,
		kgo.ConsumeTopics(cfg.Kafka.Topics...),
		kgo.ConsumerGroup(cfg.Kafka.Group),
		kgo.SessionTimeout(sessionTimeout(cfg.Kafka)),
		kgo.Balancers(kgo.CooperativeStickyBalancer()),
		kgo.ConsumeResetOffset(start),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.AutoCommitCallback(func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err == nil {
				s.commits()
			}
		}),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Name, err)
	}
	return s, nil
}

func sessionTimeout(k config.Kafka) time.Duration {
	if d := k.SessionTimeout.D(); d > 0 {
		return d
	}
	return 45 * time.Second
}

func newSource(cfg *config.Source, relieve func(), log *zap.Logger) *Source {
	if relieve == nil {
		relieve = func() {}
	}
	s := &Source{
		name: cfg.Name, cfg: cfg.Kafka, batch: cfg.BatchSize, maxPend: int64(cfg.MaxPending), log: log, relieve: relieve,
		parts: map[topicPart]*partState{}, lag: &metricsVec{source: cfg.Name},
		commits:    metrics.KafkaCommits.WithLabelValues(cfg.Name).Inc,
		rebalances: metrics.KafkaRebalances.WithLabelValues(cfg.Name).Inc,
	}
	s.dead, s.kill = context.WithCancelCause(context.Background())
	return s
}

// ErrPartitionGone is the cause of a source's failure when a partition
// was revoked or lost while some of its records were not yet durable.
var ErrPartitionGone = errors.New("kafka: partition left this process with records not yet durable")

// clientOpts are the connection options: brokers, TLS, SASL.
func clientOpts(cfg *config.Source) ([]kgo.Opt, error) {
	k := cfg.Kafka
	opts := []kgo.Opt{kgo.SeedBrokers(config.SeedBrokers(k.Brokers)...), kgo.ClientID(k.ClientID), kgo.FetchMaxWait(500 * time.Millisecond)}
	if k.FetchMaxBytes > 0 {
		// Small fetches cost little now that the next is fetched while
		// the source hands out the last (ReadBatch), and keep the queued
		// fetch small and the first records quick (franz-go's default is
		// 50 MiB).
		opts = append(opts, kgo.FetchMaxBytes(int32(k.FetchMaxBytes)))
	}
	if k.TLS.Enabled {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: k.TLS.InsecureSkipVerify}
		if k.TLS.CAFile != "" {
			pem, err := os.ReadFile(k.TLS.CAFile)
			if err != nil {
				return nil, fmt.Errorf("source %s: kafka.tls.ca_file: %w", cfg.Name, err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("source %s: kafka.tls.ca_file: no certificate in %s", cfg.Name, k.TLS.CAFile)
			}
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	var mech sasl.Mechanism
	switch k.SASL.Mechanism {
	case "plain":
		mech = plain.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsMechanism()
	case "scram-sha-256":
		mech = scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha256Mechanism()
	case "scram-sha-512":
		mech = scram.Auth{User: k.SASL.Username, Pass: k.SASL.Password}.AsSha512Mechanism()
	case "aws-msk-iam":
		lo := []func(*awsconfig.LoadOptions) error{}
		if k.SASL.Region != "" {
			lo = append(lo, awsconfig.WithRegion(k.SASL.Region))
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(context.Background(), lo...)
		if err != nil {
			return nil, fmt.Errorf("source %s: aws config: %w", cfg.Name, err)
		}
		mech = awssasl.ManagedStreamingIAM(func(ctx context.Context) (awssasl.Auth, error) {
			c, err := awsCfg.Credentials.Retrieve(ctx)
			if err != nil {
				return awssasl.Auth{}, err
			}
			return awssasl.Auth{AccessKey: c.AccessKeyID, SecretKey: c.SecretAccessKey, SessionToken: c.SessionToken, UserAgent: "sluice"}, nil
		})
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// state returns the state of a partition, creating it when first seen.
func (s *Source) state(tp topicPart) *partState {
	st := s.parts[tp]
	if st == nil {
		st = &partState{tp: tp, name: tp.String(), tracker: checkpoint.New(s.maxPend), marked: -1}
		st.tracker.OnWait(s.relieve)
		s.parts[tp] = st
	}
	return st
}

// ReadBatch hands out up to batch_size records. It blocks while a
// partition in the batch is at its pending cap.
//
// It takes everything the client has buffered at once and hands it out
// from its own queue, because franz-go fetches again from a broker only
// once that broker's buffered fetch is drained: polling batch_size records
// at a time would leave the next fetch (round trip and decompression)
// unstarted until the pipeline had taken the last of the previous one,
// with the pipeline's workers idle while it runs. So at most one fetch per
// broker waits here while the next is fetched. Queued records of a
// partition paused at its cap stay queued, in order, while other
// partitions' records are handed out, as the client would leave them
// unfetched.
func (s *Source) ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error) {
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	defer context.AfterFunc(s.dead, stop)()
	for {
		if err := context.Cause(s.dead); err != nil {
			return record.Batch{}, nil, err
		}
		if s.replay && s.replayDone() {
			return record.Batch{}, nil, io.EOF
		}
		b, ack, err := s.batchOf(ctx)
		if err != nil || len(b.Messages) > 0 {
			return b, ack, err
		}
		if err := s.poll(ctx); err != nil {
			return record.Batch{}, nil, err
		}
	}
}

// poll waits for the client's buffered fetches and queues all their
// records. A partition resuming while it waits ends the wait, so its
// queued records go out without waiting for a fetch.
func (s *Source) poll(ctx context.Context) error {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.takeable() {
		s.mu.Unlock()
		return nil // a partition resumed since batchOf looked
	}
	s.interrupt = cancel
	s.mu.Unlock()
	fetches := s.cl.PollFetches(pctx)
	s.mu.Lock()
	s.interrupt = nil
	s.mu.Unlock()
	if fetches.IsClientClosed() {
		return io.EOF
	}
	if err := context.Cause(s.dead); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	fetches.EachError(func(topic string, part int32, err error) {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("kafka fetch error", zap.String("source", s.name), zap.String("topic", topic), zap.Int32("partition", part), zap.Error(err))
		}
	})
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if n := len(p.Records); n > 0 {
			s.lag.set(topicPart{p.Topic, p.Partition}, p.HighWatermark-p.Records[n-1].Offset-1)
		}
	})
	recs := fetches.Records()
	s.mu.Lock()
	s.ahead = append(s.ahead, recs...)
	s.mu.Unlock()
	return nil
}

// takeable says whether a queued record belongs to a partition that is
// not paused. s.mu is held.
func (s *Source) takeable() bool {
	var st *partState
	for _, r := range s.ahead {
		if st == nil || st.tp.part != r.Partition || st.tp.topic != r.Topic {
			st = s.parts[topicPart{r.Topic, r.Partition}]
		}
		if st == nil || !st.paused {
			return true
		}
	}
	return false
}

// drop removes the queued records of partitions that left this process:
// they were never tracked, and their next owner reads them from the
// committed offset.
func (s *Source) drop(parts map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ahead = slices.DeleteFunc(s.ahead, func(r *kgo.Record) bool { return slices.Contains(parts[r.Topic], r.Partition) })
}

type tracked struct {
	st  *partState
	rng *checkpoint.Range
}

// batchOf takes up to batch_size queued records, skipping paused
// partitions', and tracks them.
func (s *Source) batchOf(ctx context.Context) (record.Batch, record.AckFunc, error) {
	type span struct {
		last  *kgo.Record
		n     int
		order int
	}
	spans := map[topicPart]*span{}
	b := record.Batch{Source: s.name}
	s.mu.Lock()
	var st *partState
	i, kept := 0, 0 // s.ahead[:kept] are skipped records, s.ahead[i:] not looked at
	for ; i < len(s.ahead) && (s.batch <= 0 || len(b.Messages) < s.batch); i++ {
		r := s.ahead[i]
		tp := topicPart{r.Topic, r.Partition}
		if st == nil || st.tp != tp { // records come partition by partition
			st = s.state(tp)
		}
		if st.paused {
			s.ahead[kept] = r
			kept++
			continue
		}
		if s.replay {
			if st.done || r.Offset >= st.end {
				st.done = true
				continue
			}
			st.read = r.Offset
			if r.Offset+1 >= st.end {
				st.done = true
			}
		}
		sp := spans[tp]
		if sp == nil {
			sp = &span{order: len(spans)}
			spans[tp] = sp
		}
		sp.last = r
		sp.n++
		if b.Messages == nil {
			n := len(s.ahead) - i
			if s.batch > 0 {
				n = min(n, s.batch)
			}
			b.Messages = make([]record.Message, 0, n)
		}
		m := record.Message{Data: r.Value, Pos: record.Position{Partition: st.name, Offset: r.Offset}, Arrival: r.Timestamp.UTC()}
		if s.cfg.MetadataField != "" {
			meta := &record.Meta{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UTC(), Key: r.Key}
			for _, h := range r.Headers {
				meta.Headers = append(meta.Headers, record.Header{Key: h.Key, Value: h.Value})
			}
			m.Meta = meta
		}
		b.Messages = append(b.Messages, m)
	}
	// Close the gap between the skipped records and the rest, and let go
	// of the records handed out: their values live only as long as the
	// batch does.
	if kept == 0 {
		clear(s.ahead[:i])
		s.ahead = s.ahead[i:]
	} else if kept < i {
		n := copy(s.ahead[kept:], s.ahead[i:])
		clear(s.ahead[kept+n:])
		s.ahead = s.ahead[:kept+n]
	}
	if len(s.ahead) == 0 {
		s.ahead = nil
	}
	s.mu.Unlock()
	if len(b.Messages) == 0 {
		return b, nil, nil
	}
	order := make([]topicPart, 0, len(spans))
	for tp := range spans {
		order = append(order, tp)
	}
	sort.Slice(order, func(i, j int) bool { return spans[order[i]].order < spans[order[j]].order })
	var ranges []tracked
	for _, tp := range order {
		sp := spans[tp]
		s.mu.Lock()
		st := s.state(tp)
		st.epoch = sp.last.LeaderEpoch
		s.mu.Unlock()
		rng, err := st.tracker.Track(ctx, sp.last.Offset, sp.n)
		if err != nil {
			for _, t := range ranges {
				t.rng.Ack(err)
			}
			return record.Batch{}, nil, err
		}
		ranges = append(ranges, tracked{st, rng})
		if !s.replay && st.tracker.Pending() >= s.maxPend && s.maxPend > 0 {
			s.pause(st)
		}
	}
	metrics.SourcePending.WithLabelValues(s.name).Add(float64(len(b.Messages)))
	n := float64(len(b.Messages))
	return b, func(err error) {
		metrics.SourcePending.WithLabelValues(s.name).Sub(n)
		for _, t := range ranges {
			t.rng.Ack(err)
			if err == nil {
				s.mark(t.st)
			}
		}
	}, nil
}

// mark marks the partition's checkpoint for commit, and resumes fetching a
// paused partition once half its cap is free.
func (s *Source) mark(st *partState) {
	if s.replay {
		return
	}
	ck, ok := st.tracker.Checkpoint()
	s.mu.Lock()
	advance := ok && ck > st.marked
	if advance {
		st.marked = ck
	}
	resume := st.paused && st.tracker.Pending() <= s.maxPend/2
	if resume {
		st.paused = false
		if s.interrupt != nil {
			s.interrupt() // ReadBatch waits for a fetch: its queued records can go
		}
	}
	epoch := st.epoch
	s.mu.Unlock()
	if advance {
		s.cl.MarkCommitOffsets(map[string]map[int32]kgo.EpochOffset{st.tp.topic: {st.tp.part: {Epoch: epoch, Offset: ck + 1}}})
		metrics.Checkpoint.WithLabelValues(s.name, st.tp.String()).Set(float64(ck))
	}
	if resume {
		s.cl.ResumeFetchPartitions(map[string][]int32{st.tp.topic: {st.tp.part}})
		metrics.KafkaPaused.WithLabelValues(s.name).Dec()
	}
}

func (s *Source) pause(st *partState) {
	s.mu.Lock()
	already := st.paused
	st.paused = true
	s.mu.Unlock()
	if !already {
		s.cl.PauseFetchPartitions(map[string][]int32{st.tp.topic: {st.tp.part}})
		metrics.KafkaPaused.WithLabelValues(s.name).Inc()
		s.log.Debug("partition paused at its pending cap", zap.String("source", s.name), zap.String("partition", st.tp.String()))
	}
}

func (s *Source) assigned(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	s.rebalances()
	s.log.Info("kafka partitions assigned", zap.String("source", s.name), zap.Any("partitions", parts))
}

// revoked waits until the revoked partitions' pending records are durable
// (flushing the sinks meanwhile), marks their checkpoints and commits, so
// the next owner starts right after what this process wrote.
func (s *Source) revoked(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
	s.rebalances()
	s.drop(parts)
	wctx, cancel := context.WithTimeout(ctx, revokeWait)
	defer cancel()
	var states []*partState
	s.mu.Lock()
	for topic, ps := range parts {
		for _, p := range ps {
			if st := s.parts[topicPart{topic, p}]; st != nil {
				states = append(states, st)
			}
		}
	}
	s.mu.Unlock()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for _, st := range states {
		for st.tracker.Pending() > 0 && wctx.Err() == nil {
			s.relieve()
			select {
			case <-tick.C:
			case <-wctx.Done():
			}
		}
		if n := st.tracker.Pending(); n > 0 {
			s.log.Error("partition revoked with records not yet durable; stopping so they are not written after the next owner reads them again",
				zap.String("source", s.name), zap.String("partition", st.tp.String()), zap.Int64("pending", n), zap.Duration("waited", revokeWait))
			s.kill(fmt.Errorf("%w: %s revoked with %d records pending after %s", ErrPartitionGone, st.tp, n, revokeWait))
		}
		s.mark(st)
	}
	if err := cl.CommitMarkedOffsets(ctx); err != nil {
		s.log.Warn("commit on revoke failed", zap.String("source", s.name), zap.Error(err))
	} else {
		s.commits()
	}
	s.mu.Lock()
	for _, st := range states {
		if st.paused {
			metrics.KafkaPaused.WithLabelValues(s.name).Dec()
		}
		delete(s.parts, st.tp)
		s.forgetLag(st.tp)
	}
	s.mu.Unlock()
	s.log.Info("kafka partitions revoked", zap.String("source", s.name), zap.Any("partitions", parts))
}

// forgetLag drops a partition's lag gauge when it leaves this process:
// its next owner reports it, and a stale value here would keep the lag
// alarm and the scale-out policy firing after a rebalance.
func (s *Source) forgetLag(tp topicPart) {
	metrics.KafkaLag.DeleteLabelValues(s.name, tp.String())
}

// lost drops partitions taken away without a chance to commit.
func (s *Source) lost(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	s.rebalances()
	s.drop(parts)
	s.mu.Lock()
	for topic, ps := range parts {
		for _, p := range ps {
			tp := topicPart{topic, p}
			if st := s.parts[tp]; st != nil {
				if n := st.tracker.Pending(); n > 0 {
					s.kill(fmt.Errorf("%w: %s lost with %d records pending", ErrPartitionGone, tp, n))
				}
			}
			delete(s.parts, tp)
			s.forgetLag(tp)
		}
	}
	s.mu.Unlock()
	s.log.Warn("kafka partitions lost", zap.String("source", s.name), zap.Any("partitions", parts))
}

// Checkpoints returns, per partition, the last offset durably written.
func (s *Source) Checkpoints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for tp, st := range s.parts {
		if ck, ok := st.tracker.Checkpoint(); ok {
			out = append(out, tp.String()+": offset "+strconv.FormatInt(ck, 10))
		}
	}
	sort.Strings(out)
	return out
}

// Close commits what is marked and leaves the group.
func (s *Source) Close(ctx context.Context) error {
	var err error
	if !s.replay {
		s.mu.Lock()
		states := make([]*partState, 0, len(s.parts))
		for _, st := range s.parts {
			states = append(states, st)
		}
		s.mu.Unlock()
		for _, st := range states {
			s.mark(st)
		}
		if err = s.cl.CommitMarkedOffsets(ctx); err == nil {
			s.commits()
		}
	}
	s.cl.Close()
	return err
}
