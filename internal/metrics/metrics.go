// Package metrics declares the Prometheus metrics every component reports.
// They live in one registry so /metrics shows the whole pipeline and the
// accounting identity (records in = written + filtered + unmatched + failed)
// can be checked from outside.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry holds every Sluice metric plus the Go and process collectors.
var Registry = prometheus.NewRegistry()

func counter(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "sluice", Name: name, Help: help}, labels)
	Registry.MustRegister(c)
	return c
}

func gauge(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: "sluice", Name: name, Help: help}, labels)
	Registry.MustRegister(g)
	return g
}

// The metrics.
var (
	SourceRecords      = counter("source_records_total", "Records decoded from a source, plus messages that failed to decode.", "source")
	SourceMessages     = counter("source_messages_total", "Messages read from a source.", "source")
	DecodeFailed       = counter("source_decode_failed_total", "Records that failed to decode, sent to the error output.", "source")
	SourceReadFailed   = counter("source_read_failed_total", "Parts of a source's input that could not be read (a truncated or corrupt file, a path that is no readable file, an over-long line), each sent to the error output as one record.", "source")
	DecodeInvalidUTF8  = counter("source_invalid_utf8_total", "Records decoded with invalid UTF-8 (or lone surrogate escapes) in their strings, each replaced by U+FFFD.", "source")
	Unmatched          = counter("source_unmatched_total", "Records that matched no route (acked as delivered).", "source")
	SourcePending      = gauge("source_pending_records", "Records read but not yet durably written, per source.", "source")
	RouteMatched       = counter("route_matched_total", "Records that matched a route.", "route")
	RouteOut           = counter("route_out_total", "Records a route sent to its sinks (after explode and filters).", "route")
	RouteFiltered      = counter("route_filtered_total", "Records a route's transforms filtered out.", "route")
	RouteFailed        = counter("route_failed_total", "Records that failed a transform, sent to the error output.", "route")
	SinkRecords        = counter("sink_records_total", "Records a sink received.", "sink")
	SinkWritten        = counter("sink_written_total", "Records durably written by a sink.", "sink")
	SinkFailed         = counter("sink_failed_total", "Records a sink could not write, sent to its error output.", "sink", "type")
	SinkErrorRecs      = counter("sink_error_records_written_total", "Error records durably written by a sink.", "sink")
	ErrorRecords       = counter("error_records_total", "Error records durably written to an error output, by error output type (records skipped as already durable are not counted).", "type")
	SinkObjects        = counter("sink_objects_total", "Objects written.", "sink")
	SinkBytes          = counter("sink_bytes_total", "Object bytes written.", "sink")
	SinkDroppedKeys    = counter("sink_extra_fields_dropped_total", "Records whose fields outside the schema were dropped (extra_column is empty).", "sink")
	SinkSkipped        = counter("sink_skipped_total", "Records not written again because a durable object already holds them (re-delivery after a restart).", "sink")
	SinkRecoveryLists  = counter("sink_recovery_lists_total", "Listings of a lake partition to find what is already durable.", "sink")
	SinkFailing        = gauge("sink_failing", "1 while a sink's last write attempt failed (endpoint down, whole request refused, store error), 0 once one succeeds.", "sink")
	SinkStoreRetries   = counter("sink_store_retries_total", "Object writes and recovery listings tried again after a store error.", "sink")
	SearchIndexed      = counter("opensearch_documents_indexed_total", "Documents OpenSearch indexed (2xx, or 409 on our own id).", "sink")
	SearchRetried      = counter("opensearch_documents_retried_total", "Documents sent again after a 429/5xx item or request answer, or a connection error.", "sink")
	SearchFailed       = counter("opensearch_documents_failed_total", "Documents sent to the error sink (4xx, too large, or retries exhausted).", "sink")
	SearchInflight     = gauge("opensearch_bulk_inflight", "Bulk requests in flight.", "sink")
	SearchBulkSeconds  = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sluice", Name: "opensearch_bulk_seconds", Help: "Bulk request latency.", Buckets: prometheus.ExponentialBuckets(0.005, 2, 14)}, []string{"sink"})
	SearchBulkBytes    = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sluice", Name: "opensearch_bulk_bytes", Help: "Bulk request body size.", Buckets: prometheus.ExponentialBuckets(4096, 4, 9)}, []string{"sink"})
	KafkaLag           = gauge("kafka_consumer_lag", "Records between the last one read and the high watermark, per partition.", "source", "partition")
	KafkaCommits       = counter("kafka_commits_total", "Successful offset commits.", "source")
	KafkaRebalances    = counter("kafka_rebalances_total", "Partition assignments, revokes and losses.", "source")
	KafkaPaused        = gauge("kafka_paused_partitions", "Partitions whose fetching is paused at the pending cap.", "source")
	KinesisLeases      = gauge("kinesis_leases_held", "Shard leases this worker holds.", "source")
	KinesisBehind      = gauge("kinesis_millis_behind_latest", "MillisBehindLatest of the last GetRecords, per shard.", "source", "shard")
	KinesisThrottles   = counter("kinesis_getrecords_throttles_total", "GetRecords calls refused with ProvisionedThroughputExceeded.", "source")
	KinesisCheckpoints = counter("kinesis_checkpoints_total", "Checkpoints written to the lease table.", "source")
	SinkBuffered       = gauge("sink_buffered_bytes", "Bytes buffered in open partitions.", "sink")
	SinkOpen           = gauge("sink_open_partitions", "Open partition buffers.", "sink")
	SinkSpillBytes     = gauge("sink_spill_bytes", "Local disk held by spilled rows of open partitions.", "sink")
	SinkSmallObjects   = counter("sink_small_objects_total", "Data objects written smaller than small_object_bytes.", "sink")
	SinkWriteLimit     = gauge("sink_write_limit", "Objects the sink may encode and write at once: follows store latency, up to concurrency.", "sink")
	SinkWriting        = gauge("sink_writing_objects", "Objects being encoded and written.", "sink")
	FlushSeconds       = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "sluice", Name: "sink_flush_seconds", Help: "Time to encode and durably write one object.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 16)}, []string{"sink"})
	GlueErrors         = counter("sink_glue_errors_total", "Failed Glue partition registrations (retried on the partition's next object).", "sink")
	Checkpoint         = gauge("source_checkpoint", "Highest position whose records are all durably written, per source partition.", "source", "partition")
)

// JQLimitExceeded counts jq evaluations stopped at a bound of service.jq;
// limit is timeout, max_outputs or max_output_bytes.
var JQLimitExceeded = counter("jq_limit_exceeded_total", "jq evaluations (transform, partition key, id) stopped at a service.jq bound; the record went to the error output.", "limit")

// ConfigReloads counts configuration reloads by result: applied,
// rejected, unchanged or failed.
var ConfigReloads = counter("config_reloads_total", "Configuration reloads by result: applied; rejected (invalid, the running configuration stays); unchanged (the same bytes as the running one); failed (the document could not be fetched, or the swap failed).", "result")

// ConfigInfo is 1 for the hash of the configuration running now, and
// has no other series: whoever sets it resets it first.
var ConfigInfo = gauge("config_info", "1 for the configuration running now, by hash: the first 12 hex digits of the SHA-256 of its document.", "hash")

func init() {
	Registry.MustRegister(FlushSeconds, SearchBulkSeconds, SearchBulkBytes)
	Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
}
