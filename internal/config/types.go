package config

// The structs below are the configuration contract (docs/configuration.md).
// Their tags drive decoding (yaml), defaults (default), allowed values (enum),
// required keys (required) and the reference in docs/config-reference.md
// (doc), so the three cannot drift apart. requiredfor:"TYPE" marks a key that
// Validate requires when the source or sink is of that type; the reference
// says so (TestReferenceMarksRequiredByType ties the two).

// Config is one configuration file.
type Config struct {
	Service Service  `yaml:"service" doc:"Process-wide settings."`
	Sources []Source `yaml:"sources" required:"true" doc:"Where records are read from."`
	Routes  []Route  `yaml:"routes" required:"true" doc:"Evaluated in order; a record may take several routes."`
	Sinks   []Sink   `yaml:"sinks" required:"true" doc:"Where records are written."`

	// File is the path the configuration was read from.
	File string `yaml:"-"`
	// Warnings are problems that do not stop the configuration from
	// running (Validate fills it); processor validate prints them and run
	// logs them at start.
	Warnings Errors `yaml:"-"`
	pos      map[string]int
	bad      map[string]bool // paths whose value did not decode
	red      redactor        // hides values that came from the environment
}

// Service holds process-wide settings.
type Service struct {
	Name            string   `yaml:"name" default:"sluice" doc:"Service name, used in logs and metrics."`
	HTTPListen      string   `yaml:"http_listen" default:":8080" doc:"Address for /healthz, /readyz and /metrics; empty disables the server."`
	LogLevel        string   `yaml:"log_level" default:"info" enum:"debug|info|warn|error" doc:"zap JSON log level."`
	ShutdownTimeout Duration `yaml:"shutdown_timeout" default:"25s" doc:"Time to stop reading, flush, ack and checkpoint on SIGTERM; must fit ECS stopTimeout."`
	ErrorSink       string   `yaml:"error_sink" doc:"Default error output (an s3 sink) for failures with no closer error sink."`
	Workers         int      `yaml:"workers" doc:"Decode/route/transform workers; 0 means one per CPU."`
	CloudWatchEMF   bool     `yaml:"cloudwatch_emf" doc:"Log per-source lag, records in/out and error records as CloudWatch Embedded Metric Format lines every 60 s (namespace Sluice), for alarms and scaling with nothing but awslogs."`
	JQ              JQLimits `yaml:"jq" doc:"Bounds on every jq evaluation (jq transform, partition_keys, opensearch id)."`
	Tap             bool     `yaml:"tap" default:"false" doc:"Serve GET /tap on http_listen for processor tap: live records of one route or sink as NDJSON. Off by default: whoever reaches the port sees record contents."`
	Reload          Reload   `yaml:"reload" doc:"When processor run reloads its configuration without a restart; SIGHUP always reloads."`
}

// Reload says what, besides SIGHUP, makes processor run read its
// configuration again. A configuration does not know where it was read
// from, so Validate checks only the values; run warns when a setting does
// not fit the -c it was given (watch on s3:// or ssm:, poll on a file).
type Reload struct {
	Watch bool     `yaml:"watch" default:"false" doc:"Reload when the file given to -c changes: its directory is watched, so editors' write-then-rename and mounted ConfigMap symlink swaps count. Local files only."`
	Poll  Duration `yaml:"poll" default:"0s" doc:"For -c s3://bucket/key or -c ssm:/name: fetch the document this often and reload when its bytes changed. 0s is off; else at least 1s."`
}

// JQLimits bound one jq evaluation on one record. A record whose
// evaluation passes a bound goes to the error output as processing-failed,
// and the pipeline moves on.
type JQLimits struct {
	Timeout        Duration `yaml:"timeout" default:"100ms" doc:"Wall time one evaluation may take."`
	MaxOutputs     int      `yaml:"max_outputs" default:"1000" doc:"Values one evaluation may produce."`
	MaxOutputBytes Size     `yaml:"max_output_bytes" default:"16MiB" doc:"Total size of those values, as JSON text. A single builtin step (\"x\" * n, tojson) may allocate its result before the bound is checked."`
}

// Source is one configured input.
type Source struct {
	Name       string     `yaml:"name" required:"true" doc:"Unique source name."`
	Type       string     `yaml:"type" required:"true" enum:"kafka|kinesis|file|firehose_http|archive" doc:"Source kind."`
	Format     string     `yaml:"format" default:"json" enum:"app_log|eventbridge|metric_stream|otlp_metrics|json|raw" doc:"How messages are decoded into records."`
	ErrorSink  string     `yaml:"error_sink" doc:"Where records that fail to decode go; defaults to service.error_sink."`
	EventTime  EventTime  `yaml:"event_time" doc:"Override the format's event-time field."`
	MaxPending int        `yaml:"max_pending" default:"1000000" doc:"Records read but not yet durably written, per partition, before reading blocks."`
	BatchSize  int        `yaml:"batch_size" default:"1024" doc:"Messages per batch handed to the pipeline."`
	File       FileSource `yaml:"file" doc:"Settings for type: file."`
	Archive    Archive    `yaml:"archive" doc:"Settings for type: archive."`
	Kafka      Kafka      `yaml:"kafka" doc:"Settings for type: kafka."`
	Kinesis    Kinesis    `yaml:"kinesis" doc:"Settings for type: kinesis."`

	Firehose FirehoseHTTP `yaml:"firehose_http" doc:"Settings for type: firehose_http."`

	// BatchLinger bounds how long a partial batch waits for more input.
	BatchLinger Duration `yaml:"batch_linger" default:"200ms" doc:"How long a partial batch waits for more messages before it is handed on (a quiet stdin or FIFO); a read blocked at shutdown ends at once with what it has."`
}

// FirehoseHTTP receives Amazon Data Firehose "HTTP endpoint" deliveries
// (protocol v1.0). A request is answered 200 only once every record in it
// is durably handled.
type FirehoseHTTP struct {
	Listen         string      `yaml:"listen" default:":8443" doc:"Address the endpoint listens on."`
	Path           string      `yaml:"path" default:"/firehose" doc:"URL path Firehose posts to; a GET on it answers 200 while the source accepts (load balancer health check)."`
	AccessKeys     []string    `yaml:"access_keys" doc:"Accepted X-Amz-Firehose-Access-Key values, compared in constant time; several allow rotation; [] refuses every request."`
	TLS            FirehoseTLS `yaml:"tls" doc:"TLS for the endpoint; empty: plain HTTP (TLS ends at the load balancer)."`
	MaxBody        Size        `yaml:"max_body" default:"64MiB" doc:"Largest request body, after gzip decoding; larger requests get 413 (Firehose does not retry 413)."`
	RequestTimeout Duration    `yaml:"request_timeout" default:"170s" doc:"Answer 500 (Firehose retries) when a request's records are not durably handled within this; keep it under Firehose's 180 s and above the buffer.interval (bulk.interval) of every sink the source's records reach."`
	DedupWindow    Duration    `yaml:"dedup_window" default:"2h" doc:"How long a request id that succeeded is remembered, so a retry of it gets 200 without a second write; at least 2h, the longest Firehose retry duration."`
	DedupMaxIDs    int         `yaml:"dedup_max_ids" default:"200000" doc:"Most request ids remembered (about 100 bytes each); the oldest are forgotten first."`
	MetadataField  string      `yaml:"metadata_field" doc:"Dotted path under which each JSON record gets {topic: source ARN, partition: 0, offset: record index, timestamp, key: request id, headers: common attributes}; empty: not added."`
}

// FirehoseTLS is the endpoint's certificate.
type FirehoseTLS struct {
	CertFile string `yaml:"cert_file" doc:"PEM certificate chain."`
	KeyFile  string `yaml:"key_file" doc:"PEM private key."`
}

// Kinesis reads a stream with shard leases in DynamoDB, KCL-style.
type Kinesis struct {
	Stream           string   `yaml:"stream" requiredfor:"kinesis" doc:"Stream name."`
	Region           string   `yaml:"region" doc:"AWS region (default: the SDK's)."`
	Endpoint         string   `yaml:"endpoint" doc:"Kinesis endpoint override, for emulators (AWS_ENDPOINT_URL_KINESIS also works)."`
	DynamoDBEndpoint string   `yaml:"dynamodb_endpoint" doc:"Endpoint override for the lease table (AWS_ENDPOINT_URL_DYNAMODB also works)."`
	LeaseTable       string   `yaml:"lease_table" requiredfor:"kinesis" doc:"DynamoDB table holding shard leases and checkpoints; created (on-demand billing) if missing."`
	Start            string   `yaml:"start" default:"trim_horizon" doc:"Where a shard without a checkpoint starts: trim_horizon, latest, or an RFC 3339 time."`
	LeaseDuration    Duration `yaml:"lease_duration" default:"10s" doc:"A lease not renewed for this long is expired and may be taken."`
	MaxLeasesPerTake int      `yaml:"max_leases_per_take" default:"2" doc:"Leases a worker takes at most per lease interval, so workers balance gradually."`
}

// Kafka reads topics as a consumer group.
type Kafka struct {
	Brokers  []string `yaml:"brokers" requiredfor:"kafka" doc:"Seed brokers, host:port."`
	Topics   []string `yaml:"topics" requiredfor:"kafka" doc:"Topics to consume."`
	Group    string   `yaml:"group" requiredfor:"kafka" doc:"Consumer group; offsets are committed only after every sink durably wrote the records."`
	Start    string   `yaml:"start" default:"earliest" doc:"Where a group without committed offsets starts: earliest, latest, or an RFC 3339 time."`
	ClientID string   `yaml:"client_id" default:"sluice" doc:"Kafka client id."`
	// SessionTimeout is how long the group waits for a silent member
	// before giving its partitions to others.
	SessionTimeout Duration `yaml:"session_timeout" default:"45s" doc:"How long the group waits for a member that stopped heartbeating (a killed task) before reassigning its partitions."`
	// FetchMaxBytes bounds one fetch response from a broker.
	FetchMaxBytes Size      `yaml:"fetch_max_bytes" default:"1MiB" doc:"Most bytes one fetch from a broker returns (a broker still returns one whole record batch past it). The source queues one fetch per broker while the client fetches the next, so this bounds that memory and how long the first records take; raise it for brokers far away (one fetch per broker is in flight at a time)."`
	TLS           KafkaTLS  `yaml:"tls" doc:"TLS to the brokers."`
	SASL          KafkaSASL `yaml:"sasl" doc:"SASL authentication."`
	// MetadataField, when set, puts each message's Kafka metadata into its
	// JSON records, for routes, partition keys and ids.
	MetadataField string `yaml:"metadata_field" doc:"Dotted path under which each JSON record gets {topic, partition, offset, timestamp, key, headers} (for match, partition_keys, id); empty: not added."`
}

// KafkaTLS configures TLS to the brokers.
type KafkaTLS struct {
	Enabled            bool   `yaml:"enabled" doc:"Use TLS."`
	CAFile             string `yaml:"ca_file" doc:"PEM file of the CAs to trust instead of the system's."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" doc:"Do not verify the brokers' certificates (tests only)."`
}

// KafkaSASL configures SASL.
type KafkaSASL struct {
	Mechanism string `yaml:"mechanism" default:"none" enum:"none|plain|scram-sha-256|scram-sha-512|aws-msk-iam" doc:"SASL mechanism."`
	Username  string `yaml:"username" doc:"User for plain and scram."`
	Password  string `yaml:"password" doc:"Password for plain and scram."`
	Region    string `yaml:"region" doc:"AWS region for aws-msk-iam (default: the SDK's)."`
}

// Archive reads back a raw event archive (a format: raw sink's objects)
// for a time range of arrival, with the original positions.
type Archive struct {
	URL      string `yaml:"url" requiredfor:"archive" doc:"Where the archive sink writes: s3://bucket/prefix/ or file:path/."`
	From     string `yaml:"from" requiredfor:"archive" doc:"RFC 3339 start of the arrival-time range (inclusive)."`
	To       string `yaml:"to" doc:"RFC 3339 end of the range (exclusive); default now."`
	Region   string `yaml:"region" doc:"AWS region for s3:// URLs."`
	Endpoint string `yaml:"endpoint" doc:"Endpoint override for S3-compatible servers."`
}

// EventTime names the field holding a record's event time.
type EventTime struct {
	Field string `yaml:"field" doc:"Dotted path of the event-time field."`
	Unit  string `yaml:"unit" default:"auto" enum:"s|ms|us|ns|auto" doc:"Epoch unit; auto also accepts RFC 3339 strings."`
}

// FileSource reads local files or stdin.
type FileSource struct {
	Paths []string `yaml:"paths" requiredfor:"file" doc:"Files or globs; \"-\" is stdin; .gz files are decompressed."`

	MaxLineBytes Size `yaml:"max_line_bytes" default:"16MiB" doc:"Longest line read whole; a longer line goes to the error output (Sluice.ReadFailed) with its first max_line_bytes bytes, the rest skipped."`
}

// Route sends records from sources through transforms to sinks.
type Route struct {
	Name       string      `yaml:"name" required:"true" doc:"Unique route name."`
	From       []string    `yaml:"from" required:"true" doc:"Source names."`
	To         []string    `yaml:"to" required:"true" doc:"Sink names."`
	ErrorSink  string      `yaml:"error_sink" doc:"Where records that fail a transform go; defaults to the source's, then service.error_sink."`
	Match      Node        `yaml:"match" doc:"EventBridge event pattern; absent matches every record."`
	Transforms []Transform `yaml:"transforms" doc:"Applied in order; each is a mapping with one key, the transform's name."`
}

// Sink is one configured output.
type Sink struct {
	Name              string   `yaml:"name" required:"true" doc:"Unique sink name."`
	Type              string   `yaml:"type" required:"true" enum:"s3|opensearch" doc:"Sink kind."`
	URL               string   `yaml:"url" requiredfor:"s3" doc:"s3://bucket/prefix, file:///abs/path or file:relative/path."`
	Format            string   `yaml:"format" default:"parquet" enum:"parquet|ndjson|csv|raw" doc:"Object format."`
	Compression       string   `yaml:"compression" enum:"snappy|zstd|gzip|none" doc:"parquet: snappy (default), zstd, gzip, none; ndjson/csv/raw: gzip or none (default none; raw gzip)."`
	PartitionKeys     KeyMap   `yaml:"partition_keys" doc:"Firehose dynamic-partitioning jq, evaluated per record, in order."`
	Prefix            string   `yaml:"prefix" doc:"Object key prefix template; default Hive-style k=v/ from partition_keys in order."`
	ErrorPrefix       string   `yaml:"error_prefix" doc:"Prefix template for error records, relative to url. Unset: they go beside the data, to a sibling named after the url's last element plus -errors (s3://b/lake/app-logs/ → s3://b/lake/app-logs-errors/!{error-output-type}/!{timestamp:yyyy/MM/dd}/), or under errors/ inside a url that is a bucket or file-system root; a sink that no route writes to (only an error output) keeps them under its url, as !{error-output-type}/!{timestamp:yyyy/MM/dd}/."`
	Schema            []Column `yaml:"schema" doc:"Parquet columns; fields not listed go to extra_column."`
	ExtraColumn       string   `yaml:"extra_column" default:"_extra" doc:"JSON column for fields not in schema; \"\" drops them (counted in a metric)."`
	MaxValueBytes     Size     `yaml:"max_value_bytes" default:"1MiB" doc:"parquet: largest value of a string or json column (and of extra_column); a record with a larger one goes to the error output as schema-mismatch."`
	Buffer            Buffer   `yaml:"buffer" doc:"Per-partition buffering hints."`
	MaxOpenPartitions int      `yaml:"max_open_partitions" default:"500" doc:"Partition buffers held in memory; one more moves the least recently used to the spill (or, with spilling off, flushes the oldest)."`
	OnPartitionLimit  string   `yaml:"on_partition_limit" default:"flush_oldest" enum:"flush_oldest|error" doc:"At max_open_partitions: flush the oldest partition, or send the record to the error output as partition-limit."`
	MaxBufferedBytes  Size     `yaml:"max_buffered_bytes" default:"256MiB" doc:"Memory for rows: open buffers plus objects being written (their rows and encoded bytes). Past it the largest buffer is flushed, then appends wait for writes, and no further write starts."`
	MaxBufferedRecs   int      `yaml:"max_buffered_records" default:"100000" doc:"Records held in memory across all partitions; past it the least recently used partitions are spilled, or written out if none of their rows came while half this many came for others (with spilling off, the oldest is flushed)."`
	SpillDir          string   `yaml:"spill_dir" doc:"Directory for spilled rows (default: the system temp dir). Spill files are unlinked when created and never outlive the process."`
	MaxSpillBytes     Size     `yaml:"max_spill_bytes" default:"2GiB" doc:"Local disk for rows of open partitions moved out of memory; past it the largest buffer is flushed. 0 turns spilling off."`
	MaxSpillRecs      int      `yaml:"max_spill_records" default:"1000000" doc:"Records held in the spill (each still costs memory for its ack); past it the largest buffer is flushed. Keep it below the sources' max_pending so reading never waits for buffer.interval."`
	SmallObjectBytes  Size     `yaml:"small_object_bytes" default:"1MiB" doc:"Data objects smaller than this are counted in sluice_sink_small_objects_total, with a warning at most once a minute."`
	Concurrency       int      `yaml:"concurrency" default:"64" doc:"Most objects encoded and written at once. Within it the sink keeps as many in flight as store latency calls for (cpus × (encode + store time) / encode time, averaged over recent objects: more when PUTs are slow, about the cpus when they are fast), and starts another only while max_buffered_bytes has room for the rows and encoded bytes of those in flight. Metric sluice_sink_write_limit."`
	KMSKeyID          string   `yaml:"kms_key_id" doc:"SSE-KMS key for S3 objects."`
	Region            string   `yaml:"region" doc:"AWS region."`
	Endpoint          string   `yaml:"endpoint" doc:"Endpoint override for S3-compatible servers."`
	StorageClass      string   `yaml:"storage_class" doc:"S3 storage class."`
	Glue              Glue     `yaml:"glue" doc:"Register each new partition in the Glue Data Catalog."`
	Retry             Retry    `yaml:"retry" doc:"Retry limits of store writes and listings (s3) or of documents (opensearch)."`

	// OpenSearch sinks.
	Endpoints []string       `yaml:"endpoints" requiredfor:"opensearch" doc:"OpenSearch endpoints."`
	Auth      OpenSearchAuth `yaml:"auth" doc:"OpenSearch authentication."`
	Index     string         `yaml:"index" requiredfor:"opensearch" doc:"Index name template."`
	ID        string         `yaml:"id" doc:"jq for the document _id; default derived from the source position."`
	Bulk      Bulk           `yaml:"bulk" doc:"Bulk request limits."`
	ErrorSink string         `yaml:"error_sink" doc:"opensearch only: where documents OpenSearch rejects go (an s3 sink); default service.error_sink. An s3 sink's own failures go to its error_prefix."`
	TLS       TLS            `yaml:"tls" doc:"TLS settings for the OpenSearch endpoints."`
	// Bootstrap, applied idempotently (PUT) at start.
	IndexTemplate  NamedFile `yaml:"index_template" doc:"Index template to PUT at start: {name, file} (JSON body of _index_template)."`
	IngestPipeline NamedFile `yaml:"ingest_pipeline" doc:"Ingest pipeline to PUT at start and name in every bulk request: {name, file}."`

	// routed is set by Validate when a route sends records to the sink. A
	// sink no route writes to is only an error output: it has no table
	// location to keep error records out of.
	routed bool
}

// TLS configures a client's TLS.
type TLS struct {
	CAFile             string `yaml:"ca_file" doc:"PEM file of the CAs to trust instead of the system's."`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify" doc:"Do not verify the server's certificate (tests only)."`
}

// NamedFile is a named JSON body read from a file.
type NamedFile struct {
	Name string `yaml:"name" doc:"Name of the object to create or replace."`
	File string `yaml:"file" doc:"JSON file with its body, relative to the working directory."`
}

// Glue names the catalog table a Parquet sink's partitions are registered in.
type Glue struct {
	Database string `yaml:"database" doc:"Glue database; empty disables registration."`
	Table    string `yaml:"table" doc:"Glue table (create it with processor athena-ddl)."`
	Region   string `yaml:"region" doc:"Glue region; default the sink's."`
	Endpoint string `yaml:"endpoint" doc:"Endpoint override (tests, VPC endpoints)."`
}

// Column is one Parquet column.
type Column struct {
	Name     string `yaml:"name" required:"true" doc:"Dotted path of the field in the record."`
	Column   string `yaml:"column" doc:"Column name; defaults to name."`
	Type     string `yaml:"type" required:"true" enum:"string|int64|double|bool|timestamp_ms|timestamp_us|date|json" doc:"Column type."`
	Required bool   `yaml:"required" doc:"A record without the field fails as schema-mismatch."`
}

// Buffer holds Firehose-style buffering hints, per partition.
type Buffer struct {
	MaxBytes   Size     `yaml:"max_bytes" default:"64MiB" doc:"Flush a partition at this many encoded bytes."`
	MaxRecords int      `yaml:"max_records" default:"500000" doc:"Flush a partition at this many records."`
	Interval   Duration `yaml:"interval" default:"60s" doc:"Flush a partition this long after its first record."`
}

// OpenSearchAuth is how an OpenSearch sink authenticates.
type OpenSearchAuth struct {
	Type     string `yaml:"type" default:"none" enum:"sigv4|basic|none" doc:"Authentication kind."`
	Service  string `yaml:"service" default:"es" enum:"es|aoss" doc:"SigV4 service."`
	Region   string `yaml:"region" doc:"SigV4 region."`
	Username string `yaml:"username" doc:"Basic auth user."`
	Password string `yaml:"password" doc:"Basic auth password."`
}

// Bulk holds OpenSearch bulk request limits.
type Bulk struct {
	MaxBytes    Size     `yaml:"max_bytes" default:"10MiB" doc:"Bulk body size limit."`
	MaxDocs     int      `yaml:"max_docs" default:"5000" doc:"Documents per bulk request."`
	Interval    Duration `yaml:"interval" default:"5s" doc:"Send a partial bulk after this long."`
	Concurrency int      `yaml:"concurrency" default:"4" doc:"Bulk requests in flight."`
}

// Retry limits retries.
type Retry struct {
	MaxElapsed Duration `yaml:"max_elapsed" default:"300s" doc:"Give up retrying after this long: opensearch per document (then it goes to error_sink); s3 per object write or recovery LIST (then the sink fails and the process exits, checkpointed only before the unwritten records)."`
}
