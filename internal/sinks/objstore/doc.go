// Package objstore is the object-store sink (type: s3): time-partitioned
// Parquet, NDJSON, CSV or raw-archive objects with Hive-style keys computed
// from each record by Firehose-compatible partition_keys and prefix
// templates, on a local directory (file:) or Amazon S3 (s3://).
//
// # Keys and error records
//
// A key never leaves its store's root. Partition values are Hive-escaped
// when the prefix is rendered ('/' and '\' as %2F and %5C, a value of
// only dots as %2E...), validation refuses a url, prefix or error_prefix
// that could step out, and every store refuses a key that is not a clean
// relative path (template.CheckKey) rather than writing it; the file store
// also resolves keys through an os.Root, so a symbolic link inside the
// root cannot lead out of it.
//
// Error records (failures inside the sink) go to the error location of
// config.Sink.ErrorLocation: by default a sibling of the url,
// <url>-errors/!{error-output-type}/!{timestamp:yyyy/MM/dd}/, so that
// readers of the table location (DuckDB, Athena) never meet an NDJSON
// file. They are a stream like any other, exactly once by position, and
// recovery lists their prefixes in the error location's store.
//
// # Buffering
//
// Records are buffered per lake partition (the rendered prefix) and, inside
// it, per source partition (a file, a Kafka partition, a Kinesis shard): a
// buffer is a stream. A stream is cut into an object when it reaches
// buffer.max_records or buffer.max_bytes, when buffer.interval has passed
// since its first record, when the source waits at its max_pending cap
// (Relieve), or when the spill is full. An object's records are acked only
// after the store has made it durable.
//
// # Spilling
//
// Memory is bounded by what buffers hold in memory, not by how many are
// open: at most max_open_partitions lake partitions and
// max_buffered_records records in memory, and max_buffered_bytes for rows
// in memory and objects being written. Past any of these, the
// rows in memory of the least recently used lake partition move to the
// spill, a few local files (spill_dir), and its buffers stay open. So many
// lake partitions in random order still make one object per partition per
// buffer.interval instead of one per record. A least recently used
// partition that got no row while half of max_buffered_records came in for
// others is written out instead: on input ordered by event time it is a
// past hour or day, complete, and spilling it would only write its rows to
// local disk and read them back for the same object. Past max_spill_bytes or
// max_spill_records, the buffer with the most spilled rows is flushed
// (cut). With max_spill_bytes: 0, or if the spill fails, the older rules
// apply: opening a lake partition beyond max_open_partitions flushes the
// oldest, and too many records or bytes flush the oldest or largest
// buffer.
//
// The spill is memory relief, not durability. Spilled records are not
// acked, so they hold back the source's checkpoint exactly as records in
// memory do, and a crash loses nothing the source will not deliver again.
// Spill files are unlinked as soon as they are created, so they vanish
// with the process, crashed or not, and never need cleaning up. A buffer
// is written from its spilled rows followed by those in memory: the same
// rows in the same order as without the spill, so the object and its name
// are what they would have been, and the argument below does not depend
// on spilling. Data objects under small_object_bytes are counted in
// sluice_sink_small_objects_total, with a warning at most once a minute.
//
// # Writing
//
// Objects are encoded and written by a pool of workers; how many at once
// follows the store's latency (more while PUTs are slow, about the CPUs
// when they are fast, never more than concurrency) and memory (an object
// starts only while max_buffered_bytes has room for its rows and encoded
// bytes, or when no other is being written). Objects may therefore become
// durable in any order. Nothing below depends on that order: an object's
// name comes from the places it holds, not from when it was written; each
// object acks only its own records, once it is durable; and a source's
// checkpoint moves only over the longest prefix of acked batches, so an
// object written early never lets the checkpoint pass one still in flight.
// A flush waits while every slot is taken, and that wait is what holds
// appends (and so the sources) back.
//
// # Exactly once after a crash
//
// A source re-delivers everything after its last checkpoint, and a crashed
// run may have made some of those records durable already, in objects cut
// at places (wall-clock intervals, memory relief) that the next run will not
// cut at again. Deterministic names alone (Kafka Connect's approach) do not
// survive that: a shorter object with the same first record would replace
// a longer one, and the records in between would be written twice under
// other names. So the sink records what each object holds, and skips what is
// already durable:
//
//   - Invariant. The records a source partition sp sends to a lake partition
//     P arrive in source order, and each message's records arrive together.
//     A record's place in that stream is (offset, k): its message's offset
//     (or decimal token, for Kinesis sequence numbers) and k, its ordinal
//     among that message's records in the stream (explode, several routes).
//     Every object holds records of one stream, and its name carries the
//     first and last place: src+partition+first-last.ext, for example
//     app+app-logs-3+000000012000-000000012499.2.parquet.
//   - Recovery. The first time a run appends to P, it lists P's prefix
//     once and merges, per source partition, the ranges in the names it
//     finds. A re-delivered record whose place lies inside a durable range
//     is skipped and acked as delivered (counted as skipped); any other
//     record is buffered as usual. Objects are never deleted or
//     overwritten.
//   - Why it is exactly once. Every record inside a durable object's range
//     is durable: the object holds the stream's records between first and
//     last, except those that were skipped because an older durable object
//     holds them. A skipped record is therefore durable, and a record that
//     is not inside any range is written. A new object's first record was
//     not skipped, so it is not the first record of any durable object and
//     the new name cannot replace an old one. Where the crashed run cut no
//     longer matters, nor what it had spilled: spilled records were never
//     acked, so the source delivers them again.
//   - Re-delivery inside one run (a Kafka partition revoked and assigned
//     back) shows as a place that does not advance. The sink then writes
//     out the stream's buffer, waits for every object in flight, lists P
//     again and carries on as after a restart.
//   - Cost. One LIST per lake partition per run (they run in parallel,
//     before the records that need them are appended), and nothing per
//     object: the ranges are in the names. Lake partitions idle for two
//     buffer intervals are forgotten and listed again if touched.
//   - Limits. A record's identity is its source position: the file source
//     identifies a line by path and line number, so a changed file at the
//     same path is not re-written, and stdin gets a new identity on every
//     run. A record refused by max_open_partitions with on_partition_limit:
//     error depends on what else was open at that moment, so it may land in
//     the error output in one run and in the lake in another.
package objstore
