// Package kinesis is the Kinesis Data Streams source (type: kinesis), built
// on aws-sdk-go-v2 kinesis and dynamodb with the Kinesis Client Library's
// model (vmware-go-kcl-v2 cannot be had here, and is unmaintained): one
// DynamoDB lease table per application, a lease per shard.
//
// A worker renews the leases it holds every lease_duration/3 and, each
// time, lists the shards (creating missing leases), reads the table and
// takes at most max_leases_per_take leases towards an even share: expired
// leases (counter unchanged for lease_duration) and free ones first; if
// still below its share, it asks the busiest worker for one (handoffTo on
// the lease). The holder sees the request when it renews, stops reading the
// shard, waits until everything it read is durable in every sink (flushing
// them), checkpoints, and then makes the asker the owner. Leases are never
// stolen from a live worker, so no record is written by two workers: a
// stolen lease would let the old holder land buffered objects after the
// new one had listed the lake. Every take, renewal, handoff and checkpoint
// is a conditional write. A worker whose renewal fails (its lease expired
// and was taken) stops reading that shard at once and its checkpoints are
// refused; if records of the shard were not yet durable, the source fails
// with ErrLeaseGone so that the pipeline gives up their writes.
//
// A child shard (after a split or merge) is read only once every parent's
// checkpoint is SHARD_END, so per-key order holds across resharding. A
// shard reader polls GetRecords at most five times a second, backs off on
// throttling, and reopens an expired iterator after the last record read.
// Checkpoints come only from the ack path. KPL aggregates are
// de-aggregated; their records share the sequence number and carry the
// sub-sequence as Sub ("/i"); a corrupt aggregate goes to the error
// output and still acks. On shutdown every shard is checkpointed and its
// lease released, so another task takes over at once.
package kinesis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	ktypes "github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"go.uber.org/zap"

	"github.com/sluice-data/sluice/internal/checkpoint"
	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/lifecycle"
	"github.com/sluice-data/sluice/internal/metrics"
	"github.com/sluice-data/sluice/internal/record"
	"github.com/sluice-data/sluice/internal/retry"
	"github.com/sluice-data/sluice/internal/sources"
)

var (
	_ sources.Source       = (*Source)(nil)
	_ sources.Checkpointer = (*Source)(nil)
	_ lifecycle.Runner     = (*Source)(nil)
)

// Source reads a Kinesis stream.
type Source struct {
	name    string
	cfg     config.Kinesis
	kin     *kinesis.Client
	leases  *leaseTable
	owner   string
	batch   int
	maxPend int64
	relieve func()
	log     *zap.Logger

	replay   bool
	from, to time.Time
	shards   []string // replaying: the shards Run reads

	// runMu orders Run's start against Close: Run adds to wg only while
	// the source is open.
	runMu   sync.Mutex
	running bool

	out    chan shardBatch
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	readers map[string]*reader
	seen    map[string]seenCounter // lease key -> counter and when it last changed

	// dead ends, with the reason, when a lease was lost while records read
	// from its shard were not yet durable: writing them after the new holder
	// has listed the lake could duplicate them, so the pipeline must stop
	// (its sinks give those writes up) and the task restart.
	dead context.Context
	kill context.CancelCauseFunc
}

// ErrLeaseGone is the cause of a source's failure when a lease was taken
// from this worker while records of its shard were not yet durable.
var ErrLeaseGone = errors.New("kinesis: lease lost with records not yet durable")

type seenCounter struct {
	counter int64
	at      time.Time
}

// shardBatch is what a shard reader hands to ReadBatch.
type shardBatch struct {
	r    *reader
	msgs []record.Message
	seq  string // sequence number of the last Kinesis record
}

// reader reads one shard whose lease this worker holds.
type reader struct {
	shard   string
	counter int64 // lease counter after our last take or renewal
	tracker *checkpoint.Tracker
	cancel  context.CancelFunc
	done    chan struct{}

	mu        sync.Mutex
	next      int64            // tracker position of the next batch
	seqs      map[int64]string // batch end position -> sequence number
	marked    int64            // last position checkpointed
	wrote     time.Time        // when the last checkpoint was written
	ended     bool             // read to SHARD_END
	lost      bool
	sent      int64  // batches handed to ReadBatch
	handoffTo string // worker this lease goes to once drained
	read      string // last sequence number read (replay progress)
}

// New builds a worker and makes sure the lease table exists; Run joins the
// lease table and takes shards.
func New(cfg *config.Source, relieve func(), log *zap.Logger) (*Source, error) {
	s, err := newSource(cfg, relieve, log)
	if err != nil {
		return nil, err
	}
	ddbCfg, err := awsConfig(cfg.Kinesis.Region)
	if err != nil {
		return nil, err
	}
	ddb := dynamodb.NewFromConfig(ddbCfg, func(o *dynamodb.Options) {
		if ep := cmp.Or(cfg.Kinesis.DynamoDBEndpoint, os.Getenv("AWS_ENDPOINT_URL_DYNAMODB")); ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
	s.leases = &leaseTable{ddb: ddb, name: cfg.Kinesis.LeaseTable}
	if err := s.leases.ensure(s.ctx); err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Name, err)
	}
	return s, nil
}

// NewReplay reads every shard from from (AT_TIMESTAMP) until records
// arrive at or after to, or the shard's end, writing nothing to the lease
// table.
func NewReplay(cfg *config.Source, from, to time.Time, log *zap.Logger) (*Source, error) {
	s, err := newSource(cfg, nil, log)
	if err != nil {
		return nil, err
	}
	s.replay, s.from, s.to = true, from, to
	shards, err := s.listShards(s.ctx)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", cfg.Name, err)
	}
	for _, sh := range shards {
		s.shards = append(s.shards, aws.ToString(sh.ShardId))
	}
	return s, nil
}

// Run does the source's background work until Close, or until ctx ends,
// which stops it as Close does but without final checkpoints: the lease
// loop (renewing and taking leases, a reader per shard held) or, replaying,
// a reader per shard, after which the source ends. ReadBatch needs it
// running. Run returns, once every reader has stopped, ErrLeaseGone if a
// lease was lost with records not yet durable (ReadBatch fails with it
// too, at once).
func (s *Source) Run(ctx context.Context) error {
	s.runMu.Lock()
	if s.running {
		s.runMu.Unlock()
		return fmt.Errorf("source %s: already running", s.name)
	}
	if s.ctx.Err() != nil { // closed
		s.runMu.Unlock()
		return nil
	}
	s.running = true
	defer context.AfterFunc(ctx, s.cancel)()
	if s.replay {
		for _, sh := range s.shards {
			s.startReader(sh, 0, "")
		}
	} else {
		s.wg.Add(1)
		go s.coordinate()
	}
	s.runMu.Unlock()
	s.wg.Wait()
	if s.replay {
		close(s.out) // every shard read: ReadBatch returns io.EOF
	}
	return context.Cause(s.dead)
}

func newSource(cfg *config.Source, relieve func(), log *zap.Logger) (*Source, error) {
	if relieve == nil {
		relieve = func() {}
	}
	kcfg, err := awsConfig(cfg.Kinesis.Region)
	if err != nil {
		return nil, err
	}
	kin := kinesis.NewFromConfig(kcfg, func(o *kinesis.Options) {
		if ep := cmp.Or(cfg.Kinesis.Endpoint, os.Getenv("AWS_ENDPOINT_URL_KINESIS")); ep != "" {
			o.BaseEndpoint = aws.String(ep)
		}
	})
	host, _ := os.Hostname()
	ctx, cancel := context.WithCancel(context.Background())
	s := &Source{
		name: cfg.Name, cfg: cfg.Kinesis, kin: kin, batch: cfg.BatchSize, maxPend: int64(cfg.MaxPending), relieve: relieve, log: log,
		owner: fmt.Sprintf("%s-%d-%d", host, os.Getpid(), time.Now().UnixNano()),
		out:   make(chan shardBatch), ctx: ctx, cancel: cancel,
		readers: map[string]*reader{}, seen: map[string]seenCounter{},
	}
	s.dead, s.kill = context.WithCancelCause(context.Background())
	return s, nil
}

func awsConfig(region string) (aws.Config, error) {
	var opts []func(*awsconfig.LoadOptions) error
	if region != "" {
		opts = append(opts, awsconfig.WithRegion(region))
	}
	cfg, err := awsconfig.LoadDefaultConfig(context.Background(), opts...)
	if err == nil && cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return cfg, err
}

func (s *Source) listShards(ctx context.Context) ([]ktypes.Shard, error) {
	var shards []ktypes.Shard
	in := &kinesis.ListShardsInput{StreamName: aws.String(s.cfg.Stream)}
	for {
		out, err := s.kin.ListShards(ctx, in)
		if err != nil {
			return nil, err
		}
		shards = append(shards, out.Shards...)
		if out.NextToken == nil {
			return shards, nil
		}
		in = &kinesis.ListShardsInput{NextToken: out.NextToken}
	}
}

// coordinate runs the lease loop until the source closes.
func (s *Source) coordinate() {
	defer s.wg.Done()
	interval := s.cfg.LeaseDuration.D() / 3
	for {
		if err := s.leaseRound(s.ctx); err != nil && s.ctx.Err() == nil {
			s.log.Warn("lease round failed", zap.String("source", s.name), zap.Error(err))
		}
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}

// leaseRound renews held leases, creates leases for new shards, and takes
// leases towards an even share.
func (s *Source) leaseRound(ctx context.Context) error {
	s.mu.Lock()
	held := make([]*reader, 0, len(s.readers))
	for _, r := range s.readers {
		held = append(held, r)
	}
	s.mu.Unlock()
	for _, r := range held {
		r.mu.Lock()
		counter, ended, handoffTo := r.counter, r.ended, r.handoffTo
		r.mu.Unlock()
		if ended {
			continue
		}
		if handoffTo == "" {
			select {
			case <-r.done:
				// The reader gave up on an error: once what it read is
				// durable, give the lease back so that it (or another
				// worker) starts the shard afresh; until then keep it.
				if !s.drained(r) {
					s.relieve()
					break
				}
				s.mu.Lock()
				delete(s.readers, r.shard)
				s.mu.Unlock()
				forgetBehind(s.name, r.shard)
				s.checkpoint(ctx, r)
				if err := s.leases.release(ctx, r.shard, s.owner); err != nil {
					return err
				}
				continue
			default:
			}
		}
		s.checkpoint(ctx, r)
		if handoffTo != "" {
			if s.drained(r) {
				s.handOver(ctx, r, counter, handoffTo)
				continue
			}
			s.relieve() // the sinks' buffers hold the rest: write them now
		}
		next, asker, err := s.leases.renew(ctx, r.shard, counter, s.owner)
		if errors.Is(err, errLeaseLost) {
			s.lose(r)
			continue
		}
		if err != nil {
			return err
		}
		r.mu.Lock()
		r.counter = next
		if asker != "" && asker != s.owner && r.handoffTo == "" {
			r.handoffTo = asker
			r.mu.Unlock()
			// Stop reading; once everything read is durable, a later
			// round checkpoints and hands the lease over.
			r.cancel()
			s.log.Info("kinesis lease asked for; draining the shard before handing it over",
				zap.String("source", s.name), zap.String("shard", r.shard), zap.String("to", asker))
			continue
		}
		r.mu.Unlock()
	}
	shards, err := s.listShards(ctx)
	if err != nil {
		return err
	}
	open := map[string]bool{}
	for _, sh := range shards {
		id := aws.ToString(sh.ShardId)
		open[id] = true
		var parents []string
		for _, p := range []*string{sh.ParentShardId, sh.AdjacentParentShardId} {
			if p != nil {
				parents = append(parents, *p)
			}
		}
		if err := s.leases.create(ctx, id, parents); err != nil {
			return err
		}
	}
	all, err := s.leases.scan(ctx)
	if err != nil {
		return err
	}
	now := time.Now()
	expired := func(l *lease) bool {
		if l.owner == "" {
			return true
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		sc, ok := s.seen[l.key]
		if !ok || sc.counter != l.counter {
			s.seen[l.key] = seenCounter{l.counter, now}
			return false
		}
		return now.Sub(sc.at) >= s.cfg.LeaseDuration.D()
	}
	// Leases that can be worked: not finished, parents finished.
	ready := func(l *lease) bool {
		if l.checkpoint == shardEnd {
			return false
		}
		for _, p := range l.parents {
			pl, ok := all[p]
			if ok && pl.checkpoint != shardEnd || !ok && open[p] {
				return false
			}
		}
		return true
	}
	owners := map[string]int{s.owner: 0}
	var free []*lease
	active := 0
	for _, l := range all {
		if !ready(l) {
			continue
		}
		active++
		if expired(l) {
			if l.owner != s.owner {
				free = append(free, l)
			}
			continue
		}
		if l.owner == s.owner && l.handoffTo == "" {
			s.mu.Lock()
			_, reading := s.readers[l.key]
			s.mu.Unlock()
			if !reading {
				// Handed over to us.
				s.log.Info("kinesis lease handed over to this worker", zap.String("source", s.name), zap.String("shard", l.key))
				s.startReader(l.key, l.counter, l.checkpoint)
			}
		}
		if l.handoffTo != "" {
			owners[l.handoffTo]++ // on its way there
			owners[l.owner] += 0
			continue
		}
		owners[l.owner]++
	}
	mine := owners[s.owner]
	target := int(math.Ceil(float64(active) / float64(len(owners))))
	sort.Slice(free, func(i, j int) bool { return free[i].key < free[j].key })
	taken := 0
	for _, l := range free {
		if mine >= target || taken >= s.cfg.MaxLeasesPerTake {
			break
		}
		if s.takeLease(ctx, l) {
			mine++
			taken++
		}
	}
	if mine < target && taken == 0 {
		// Ask the busiest worker above the target for one of its leases.
		busiest, most := "", target
		for o, n := range owners {
			if o != s.owner && n > most {
				busiest, most = o, n
			}
		}
		if busiest != "" {
			for _, l := range all {
				if l.owner != busiest || l.handoffTo != "" || !ready(l) || expired(l) {
					continue
				}
				asked, err := s.leases.askHandoff(ctx, l.key, busiest, s.owner)
				if err != nil {
					return err
				}
				if asked {
					s.log.Info("kinesis lease asked for", zap.String("source", s.name), zap.String("shard", l.key), zap.String("from", busiest))
					break
				}
			}
		}
	}
	metrics.KinesisLeases.WithLabelValues(s.name).Set(float64(s.held()))
	return nil
}

func (s *Source) held() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.readers)
}

func (s *Source) takeLease(ctx context.Context, l *lease) bool {
	counter, err := s.leases.take(ctx, l, s.owner)
	if err != nil {
		return false
	}
	s.log.Info("kinesis lease taken", zap.String("source", s.name), zap.String("shard", l.key), zap.String("from", l.owner))
	s.startReader(l.key, counter, l.checkpoint)
	return true
}

// lose stops reading a shard whose lease another worker took (ours had
// expired: renewals failed for lease_duration). If records read from it are
// not yet durable, the source fails: see ErrLeaseGone.
func (s *Source) lose(r *reader) {
	r.mu.Lock()
	r.lost = true
	r.mu.Unlock()
	r.cancel()
	s.mu.Lock()
	delete(s.readers, r.shard)
	s.mu.Unlock()
	s.log.Warn("kinesis lease lost; stopped reading the shard", zap.String("source", s.name), zap.String("shard", r.shard))
	<-r.done
	forgetBehind(s.name, r.shard)
	if !s.drained(r) {
		s.kill(fmt.Errorf("%w: shard %s", ErrLeaseGone, r.shard))
	}
}

// forgetBehind drops a shard's MillisBehindLatest gauge when this worker
// stops reading it: the new holder reports it, and a stale value here
// would keep the lag alarm and the scale-out policy firing.
func forgetBehind(source, shard string) {
	metrics.KinesisBehind.DeleteLabelValues(source, shard)
}

// drained reports whether a stopped reader's records are all durable:
// it has exited, and every batch it handed to ReadBatch is acked.
func (s *Source) drained(r *reader) bool {
	select {
	case <-r.done:
	default:
		return false
	}
	r.mu.Lock()
	sent := r.sent
	r.mu.Unlock()
	if sent == 0 {
		return true
	}
	ck, ok := r.tracker.Checkpoint()
	return ok && ck >= sent-1
}

// handOver ends a handoff: the drained shard's checkpoint is written (the
// caller did), and the lease goes to the worker that asked for it.
func (s *Source) handOver(ctx context.Context, r *reader, counter int64, to string) {
	err := s.leases.transfer(ctx, r.shard, counter, s.owner, to)
	if err != nil && !errors.Is(err, errLeaseLost) {
		s.log.Warn("kinesis lease handoff failed; trying again next round", zap.String("source", s.name), zap.String("shard", r.shard), zap.Error(err))
		return
	}
	s.mu.Lock()
	delete(s.readers, r.shard)
	s.mu.Unlock()
	forgetBehind(s.name, r.shard)
	s.log.Info("kinesis lease handed over", zap.String("source", s.name), zap.String("shard", r.shard), zap.String("to", to))
}

func (s *Source) startReader(shard string, counter int64, ckpt string) *reader {
	ctx, cancel := context.WithCancel(s.ctx)
	r := &reader{shard: shard, counter: counter, tracker: checkpoint.New(s.maxPend), cancel: cancel, done: make(chan struct{}), seqs: map[int64]string{}, marked: -1}
	r.tracker.OnWait(s.relieve)
	s.mu.Lock()
	s.readers[shard] = r
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(r.done)
		if err := s.read(ctx, r, ckpt); err != nil && ctx.Err() == nil {
			s.log.Error("kinesis shard reader stopped", zap.String("source", s.name), zap.String("shard", shard), zap.Error(err))
		}
	}()
	return r
}

// iterator opens a shard where its checkpoint says, or at the start.
func (s *Source) iterator(ctx context.Context, shard, after string) (*string, error) {
	in := &kinesis.GetShardIteratorInput{StreamName: aws.String(s.cfg.Stream), ShardId: aws.String(shard)}
	switch {
	case s.replay && after == "":
		in.ShardIteratorType, in.Timestamp = ktypes.ShardIteratorTypeAtTimestamp, aws.Time(s.from)
	case after != "" && after != "TRIM_HORIZON" && after != "LATEST":
		in.ShardIteratorType, in.StartingSequenceNumber = ktypes.ShardIteratorTypeAfterSequenceNumber, aws.String(after)
	case s.cfg.Start == "latest":
		in.ShardIteratorType = ktypes.ShardIteratorTypeLatest
	case s.cfg.Start == "trim_horizon" || s.cfg.Start == "":
		in.ShardIteratorType = ktypes.ShardIteratorTypeTrimHorizon
	default:
		t, err := time.Parse(time.RFC3339, s.cfg.Start)
		if err != nil {
			return nil, err
		}
		in.ShardIteratorType, in.Timestamp = ktypes.ShardIteratorTypeAtTimestamp, aws.Time(t)
	}
	out, err := s.kin.GetShardIterator(ctx, in)
	if err != nil {
		return nil, err
	}
	return out.ShardIterator, nil
}

// read polls one shard: at most five GetRecords a second, backoff on
// throttling, reopen on an expired iterator.
func (s *Source) read(ctx context.Context, r *reader, ckpt string) error {
	iter, err := s.iterator(ctx, r.shard, ckpt)
	if err != nil {
		return err
	}
	lastSeq := ckpt
	throttle := throttleBackoff.Start()
	for {
		start := time.Now()
		out, err := s.kin.GetRecords(ctx, &kinesis.GetRecordsInput{ShardIterator: iter, Limit: aws.Int32(10000)})
		var throttled *ktypes.ProvisionedThroughputExceededException
		var expired *ktypes.ExpiredIteratorException
		switch {
		case errors.As(err, &throttled):
			metrics.KinesisThrottles.WithLabelValues(s.name).Inc()
			if throttle.Wait(ctx) != nil {
				return nil
			}
			continue
		case errors.As(err, &expired):
			if iter, err = s.iterator(ctx, r.shard, lastSeq); err != nil {
				return err
			}
			continue
		case err != nil:
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("GetRecords failed", zap.String("source", s.name), zap.String("shard", r.shard), zap.Error(err))
			if retry.Sleep(ctx, time.Second) != nil {
				return nil
			}
			continue
		}
		throttle.Reset()
		if out.MillisBehindLatest != nil {
			metrics.KinesisBehind.WithLabelValues(s.name, r.shard).Set(float64(*out.MillisBehindLatest))
		}
		stop := false
		var msgs []record.Message
		for _, kr := range out.Records {
			arrival := aws.ToTime(kr.ApproximateArrivalTimestamp).UTC()
			if s.replay && !arrival.Before(s.to) {
				stop = true
				break
			}
			seq := aws.ToString(kr.SequenceNumber)
			pos := record.Position{Partition: r.shard, Token: seq}
			if isAggregated(kr.Data) {
				urs, err := deaggregate(kr.Data)
				if err != nil {
					msgs = append(msgs, record.Message{Data: kr.Data, Pos: pos, Arrival: arrival, Err: err})
				}
				for i, ur := range urs {
					p := pos
					p.Sub = "/" + strconv.Itoa(i)
					msgs = append(msgs, record.Message{Data: ur.data, Pos: p, Arrival: arrival})
				}
			} else {
				msgs = append(msgs, record.Message{Data: kr.Data, Pos: pos, Arrival: arrival})
			}
			lastSeq = seq
			if len(msgs) >= s.batch {
				if !s.send(ctx, r, msgs, lastSeq) {
					return nil
				}
				msgs = nil
			}
		}
		if len(msgs) > 0 && !s.send(ctx, r, msgs, lastSeq) {
			return nil
		}
		caughtUp := len(out.Records) == 0 && out.MillisBehindLatest != nil && *out.MillisBehindLatest == 0
		if out.NextShardIterator == nil || s.replay && (stop || caughtUp) {
			if s.replay {
				r.mu.Lock()
				r.ended = true
				r.mu.Unlock()
				return nil
			}
			return s.finish(ctx, r)
		}
		iter = out.NextShardIterator
		wait := 200 * time.Millisecond // five calls a second per shard
		if len(out.Records) == 0 {
			wait = time.Second
		}
		if retry.Sleep(ctx, wait-time.Since(start)) != nil {
			return nil
		}
	}
}

// throttleBackoff paces GetRecords on a shard over its read throughput:
// from 200 ms, doubling up to 10 s, for as long as the throttling lasts.
var throttleBackoff = retry.Policy{Base: 200 * time.Millisecond, Max: 10 * time.Second}

// send hands a batch to ReadBatch.
func (s *Source) send(ctx context.Context, r *reader, msgs []record.Message, seq string) bool {
	select {
	case s.out <- shardBatch{r: r, msgs: msgs, seq: seq}:
		r.mu.Lock()
		r.read = seq
		r.sent++
		r.mu.Unlock()
		return true
	case <-ctx.Done():
		return false
	}
}

// finish waits until everything read from a closed shard is durable, then
// checkpoints SHARD_END so its children may start.
func (s *Source) finish(ctx context.Context, r *reader) error {
	for r.tracker.Pending() > 0 {
		s.relieve()
		if err := waitCtx(ctx, r.tracker, 200*time.Millisecond); err != nil {
			return nil
		}
	}
	if err := r.tracker.Err(); err != nil {
		return err
	}
	s.checkpoint(ctx, r)
	if err := s.leases.checkpoint(ctx, r.shard, s.owner, shardEnd); err != nil {
		return fmt.Errorf("checkpoint SHARD_END: %w", err)
	}
	r.mu.Lock()
	r.ended = true
	r.mu.Unlock()
	metrics.KinesisCheckpoints.WithLabelValues(s.name).Inc()
	s.log.Info("kinesis shard finished", zap.String("source", s.name), zap.String("shard", r.shard))
	return nil
}

func waitCtx(ctx context.Context, t *checkpoint.Tracker, d time.Duration) error {
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	err := t.Wait(wctx)
	if ctx.Err() != nil {
		return ctx.Err()
	}
	_ = err
	return nil
}

// ReadBatch returns the next batch any shard reader produced. It blocks
// while that shard is at its pending cap.
func (s *Source) ReadBatch(ctx context.Context) (record.Batch, record.AckFunc, error) {
	var sb shardBatch
	var ok bool
	select {
	case sb, ok = <-s.out:
		if !ok {
			return record.Batch{}, nil, io.EOF
		}
	case <-s.dead.Done():
		return record.Batch{}, nil, context.Cause(s.dead)
	case <-ctx.Done():
		return record.Batch{}, nil, ctx.Err()
	}
	r := sb.r
	r.mu.Lock()
	end := r.next
	r.next++
	r.seqs[end] = sb.seq
	r.mu.Unlock()
	rng, err := r.tracker.Track(ctx, end, len(sb.msgs))
	if err != nil {
		return record.Batch{}, nil, err
	}
	pending := metrics.SourcePending.WithLabelValues(s.name)
	pending.Add(float64(len(sb.msgs)))
	n := float64(len(sb.msgs))
	return record.Batch{Source: s.name, Messages: sb.msgs}, func(err error) {
		rng.Ack(err)
		pending.Sub(n)
		if err == nil && !s.replay {
			s.checkpointEvery(r, time.Second)
		}
	}, nil
}

// checkpointEvery writes the shard's checkpoint unless one was written less
// than every ago: one conditional write a second per shard at most; the
// lease round and shutdown write whatever is left.
func (s *Source) checkpointEvery(r *reader, every time.Duration) {
	r.mu.Lock()
	recent := time.Since(r.wrote) < every
	r.mu.Unlock()
	if !recent {
		s.checkpoint(context.Background(), r)
	}
}

// checkpoint writes the shard's checkpoint if it moved.
func (s *Source) checkpoint(ctx context.Context, r *reader) {
	ck, ok := r.tracker.Checkpoint()
	r.mu.Lock()
	if !ok || ck <= r.marked || r.lost {
		r.mu.Unlock()
		return
	}
	seq := r.seqs[ck]
	for k := range r.seqs {
		if k <= ck {
			delete(r.seqs, k)
		}
	}
	r.marked = ck
	r.wrote = time.Now()
	r.mu.Unlock()
	if err := s.leases.checkpoint(ctx, r.shard, s.owner, seq); err != nil {
		s.log.Warn("kinesis checkpoint refused", zap.String("source", s.name), zap.String("shard", r.shard), zap.Error(err))
		return
	}
	metrics.KinesisCheckpoints.WithLabelValues(s.name).Inc()
}

// Checkpoints lists the shards this worker holds and how far each is
// durable (in batches read this run).
func (s *Source) Checkpoints() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, r := range s.readers {
		r.mu.Lock()
		state := "reading"
		if r.ended {
			state = "finished"
		}
		out = append(out, id+": "+state+", last read "+r.read)
		r.mu.Unlock()
	}
	sort.Strings(out)
	return out
}

// Held returns the shards whose leases this worker holds.
func (s *Source) Held() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id, r := range s.readers {
		r.mu.Lock()
		if !r.ended {
			out = append(out, id)
		}
		r.mu.Unlock()
	}
	sort.Strings(out)
	return out
}

// Close stops reading, writes final checkpoints and releases the leases.
func (s *Source) Close(ctx context.Context) error {
	s.runMu.Lock()
	s.cancel()
	s.runMu.Unlock()
	if s.replay {
		return nil
	}
	s.wg.Wait()
	s.mu.Lock()
	readers := make([]*reader, 0, len(s.readers))
	for _, r := range s.readers {
		readers = append(readers, r)
	}
	s.mu.Unlock()
	var errs []error
	for _, r := range readers {
		s.checkpoint(ctx, r)
		if err := s.leases.release(ctx, r.shard, s.owner); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Abandon stops the worker as a crash would: no final checkpoint, no
// release. Tests use it to stand for SIGKILL.
func (s *Source) Abandon() {
	s.runMu.Lock()
	s.cancel()
	s.runMu.Unlock()
	s.wg.Wait()
}
