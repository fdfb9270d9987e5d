// DuckDB side of the bench (run through duckdb.sh and lakecheck.sh, which
// install @duckdb/node-api into a cache directory and set DUCKDB_CACHE).
//
//   node duckdb.mjs copy  SPEC INPUT OUTDIR snappy|zstd
//       DuckDB writes the same rows and columns as the Sluice sink SPEC
//       describes (test/bench/lakespec prints it) as a partitioned Parquet
//       lake: COPY (SELECT …, strftime(…) AS year, …) TO OUTDIR
//       (FORMAT parquet, PARTITION_BY (…)).
//   node duckdb.mjs check SPEC INPUT LAKE
//       reads every object of LAKE with read_parquet and compares row
//       counts and a checksum of every column (and of every row) with
//       what INPUT should have produced; exits 1 on any difference.
//
// Both derive the expected columns from INPUT the same way: read_json's
// typed columns for the schema, a JSON object of the remaining top-level
// fields for the extra column, strftime on epoch seconds for the keys.
// That matches Sluice for inputs whose records all have the same fields
// in the same order (the bench's); records with missing fields would
// render the extra column differently (DuckDB writes "field":null).
import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';

const cache = process.env.DUCKDB_CACHE;
if (!cache) {
  console.error('duckdb.mjs: DUCKDB_CACHE is not set (run it through duckdb.sh or lakecheck.sh)');
  process.exit(2);
}
const { DuckDBInstance } = createRequire(path.join(cache, 'package.json'))('@duckdb/node-api');

const ident = (s) => '"' + s.replaceAll('"', '""') + '"';
const str = (s) => "'" + s.replaceAll("'", "''") + "'";

const sqlTypes = { string: 'VARCHAR', int64: 'BIGINT', double: 'DOUBLE', bool: 'BOOLEAN' };

// projection returns the SELECT list, over read_json(INPUT), of the data
// columns and the extra column, and the partition key expressions.
async function projection(conn, spec, input) {
  const described = await rows(conn, `DESCRIBE SELECT * FROM ${readJSON(input)}`);
  const fields = described.map((r) => r.column_name);
  const have = new Set(fields);
  // A nested field (a.b) is a struct member; the extra column then leaves
  // out its parent, which every member of must be a column.
  const nested = new Map();
  for (const c of spec.columns) {
    const [top, ...rest] = c.field.split('.');
    if (rest.length > 1) throw new Error(`column ${c.name}: ${c.field} is nested too deep for this script`);
    if (rest.length === 1) nested.set(top, [...(nested.get(top) || []), rest[0]]);
  }
  for (const [top, used] of nested) {
    if (!have.has(top)) continue;
    const members = (await rows(conn, `DESCRIBE SELECT ${ident(top)}.* FROM ${readJSON(input)}`)).map((r) => r.column_name);
    const left = members.filter((m) => !used.includes(m));
    if (left.length) throw new Error(`field ${top}: members ${left.join(', ')} are not columns; this script cannot split a struct`);
  }
  const data = [];
  for (const c of spec.columns) {
    const parts = c.field.split('.');
    const ref = parts.map(ident).join('.');
    const present = have.has(parts[0]);
    let expr;
    if (c.type === 'json') {
      expr = present ? `CAST(to_json(${ref}) AS VARCHAR)` : 'NULL::VARCHAR';
    } else if (sqlTypes[c.type]) {
      expr = present ? `CAST(${ref} AS ${sqlTypes[c.type]})` : `NULL::${sqlTypes[c.type]}`;
    } else {
      throw new Error(`column ${c.name}: type ${c.type} is not supported here`);
    }
    data.push({ name: c.name, expr });
  }
  if (spec.extra) {
    const used = new Set([...spec.columns.map((c) => c.field), ...nested.keys()]);
    const rest = fields.filter((f) => !used.has(f));
    const expr = rest.length === 0 ? 'NULL::VARCHAR'
      : `CAST(to_json(struct_pack(${rest.map((f) => `${ident(f)} := ${ident(f)}`).join(', ')})) AS VARCHAR)`;
    data.push({ name: spec.extra, expr });
  }
  const keys = spec.partitions.map((p) => {
    if (!have.has(p.field)) throw new Error(`partition key ${p.name}: no field ${p.field} in the input`);
    const expr = p.strftime
      ? `strftime(make_timestamp(CAST(${ident(p.field)} AS BIGINT) * 1000000), ${str(p.strftime)})`
      : `CAST(${ident(p.field)} AS VARCHAR)`;
    return { name: p.name, label: `key ${p.name}`, expr };
  });
  return { data, keys };
}

const readJSON = (input) => `read_json(${str(input)}, format = 'newline_delimited')`;

async function rows(conn, sql) {
  const r = await conn.runAndReadAll(sql);
  return r.getRowObjectsJson();
}

async function open() {
  const db = await DuckDBInstance.create(':memory:');
  const conn = await db.connect();
  await conn.run(`SET threads = ${Number(process.env.DUCKDB_THREADS || 2)}`);
  await conn.run(`SET TimeZone = 'UTC'`);
  return conn;
}

async function copy(spec, input, out, compression) {
  const conn = await open();
  const { data, keys } = await projection(conn, spec, input);
  // A key that is also a data column gets another name, so the column
  // stays in the files as it does in Sluice's (PARTITION_BY drops its
  // columns from the data).
  const names = new Set(data.map((c) => c.name));
  const parts = keys.map((k) => ({ ...k, as: names.has(k.name) ? k.name + '_key' : k.name }));
  const select = [...data.map((c) => `${c.expr} AS ${ident(c.name)}`), ...parts.map((k) => `${k.expr} AS ${ident(k.as)}`)];
  await conn.run(`COPY (SELECT ${select.join(', ')} FROM ${readJSON(input)}) TO ${str(out)}
    (FORMAT parquet, COMPRESSION ${compression}, PARTITION_BY (${parts.map((k) => ident(k.as)).join(', ')}))`);
}

// sums renders count and checksum aggregates of named expressions, plus
// the row count and a checksum of whole rows (so values cannot have moved
// between rows).
function sums(cols) {
  const out = ['count(*) AS "rows"'];
  cols.forEach((c, i) => {
    out.push(`count(${c.expr}) AS "n${i}"`, `sum(hash(${c.expr})::HUGEINT)::VARCHAR AS "h${i}"`);
  });
  out.push(`sum(hash(${cols.map((c) => c.expr).join(', ')})::HUGEINT)::VARCHAR AS "row"`);
  return out.join(', ');
}

function compare(what, cols, want, got, problems) {
  const diff = (label, a, b) => {
    if (String(a) !== String(b)) problems.push(`${what}: ${label}: input ${a}, lake ${b}`);
  };
  diff('rows', want.rows, got.rows);
  cols.forEach((c, i) => {
    const label = c.label || `column ${c.name}`;
    diff(`${label} values`, want[`n${i}`], got[`n${i}`]);
    diff(`${label} checksum`, want[`h${i}`], got[`h${i}`]);
  });
  diff('row checksum', want.row, got.row);
}

function parquetFiles(dir) {
  let n = 0;
  for (const e of fs.readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile() && e.name.endsWith('.parquet')) n++;
  }
  return n;
}

async function check(spec, input, lake) {
  const conn = await open();
  const { data, keys } = await projection(conn, spec, input);
  const glob = str(path.join(lake, '**', '*.parquet'));
  const problems = [];

  // Every object's footer, and the number of objects.
  const files = parquetFiles(lake);
  const [meta] = await rows(conn, `SELECT count(*) AS files, sum(num_rows) AS rows FROM parquet_file_metadata(${glob})`);
  if (Number(meta.files) !== files) problems.push(`objects: ${files} on disk, DuckDB read ${meta.files} footers`);

  // 1. What is stored: the data columns as written, the key values from
  // each object's path (Hive-escaped there).
  const pathKey = (k) => `url_decode(regexp_extract(filename, ${str('(^|/)' + k.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') + '=([^/]*)/')}, 2))`;
  const stored = [...data, ...keys];
  const lakeStored = [...data.map((c) => ({ name: c.name, expr: ident(c.name) })), ...keys.map((k) => ({ ...k, expr: pathKey(k) }))];
  const [want] = await rows(conn, `SELECT ${sums(stored)} FROM ${readJSON(input)}`);
  const [got] = await rows(conn, `SELECT ${sums(lakeStored)} FROM read_parquet(${glob}, hive_partitioning = false, filename = true)`);
  compare('stored', stored, want, got, problems);
  if (String(meta.rows) !== String(want.rows)) problems.push(`footers: ${meta.rows} rows, input ${want.rows}`);

  // 2. What an engine sees with hive_partitioning: a key named like a
  // data column shows the key's value.
  const described = await rows(conn, `DESCRIBE SELECT * FROM read_parquet(${glob}, hive_partitioning = true, hive_types_autocast = false)`);
  const byName = new Map([...data, ...keys].map((c) => [c.name, c])); // a key wins
  const seen = described.map((r) => r.column_name);
  const missing = [...byName.keys()].filter((n) => !seen.includes(n));
  if (missing.length) problems.push(`engine view: no column ${missing.join(', ')}`);
  const extra = seen.filter((n) => !byName.has(n));
  if (extra.length) problems.push(`engine view: unexpected column ${extra.join(', ')}`);
  const view = seen.filter((n) => byName.has(n));
  const wantView = view.map((n) => ({ ...byName.get(n), label: `column ${n}` }));
  const gotView = view.map((n) => ({ name: n, expr: ident(n) }));
  const [want2] = await rows(conn, `SELECT ${sums(wantView)} FROM ${readJSON(input)}`);
  const [got2] = await rows(conn, `SELECT ${sums(gotView)} FROM read_parquet(${glob}, hive_partitioning = true, hive_types_autocast = false)`);
  compare('engine view', wantView, want2, got2, problems);

  for (const p of problems) console.log('lakecheck: MISMATCH ' + p);
  const summary = `rows=${got.rows} objects=${files} columns=${stored.length}`;
  if (problems.length) {
    console.log(`lakecheck: FAILED (${problems.length} differences) ${summary}`);
    process.exitCode = 1;
  } else {
    console.log(`lakecheck: ok ${summary}`);
  }
}

const [mode, specArg, input, out, compression] = process.argv.slice(2);
const spec = JSON.parse(specArg);
try {
  if (mode === 'copy') await copy(spec, input, out, compression || 'snappy');
  else if (mode === 'check') await check(spec, input, out);
  else throw new Error(`unknown mode ${mode}`);
} catch (e) {
  console.error('duckdb.mjs:', e.message);
  process.exitCode = 2;
}
