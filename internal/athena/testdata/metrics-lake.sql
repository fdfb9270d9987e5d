-- Sluice sink metrics-lake: file:out/lake/metrics/ Parquet (SNAPPY) with partition projection.
-- metrics-lake writes local files: LOCATION is a placeholder. Upload out/lake/metrics/ to S3 as it is and put its URL
-- in LOCATION and storage.location.template.
-- Also data columns: namespace as namespace_path. The data column keeps the clean value (AWS/EC2);
-- the partition column holds the path value (AWS%2FEC2) and prunes partitions.
-- namespace_path: path values are Hive-escaped (AWS/EC2 is stored as AWS%2FEC2); filter with the escaped form.
CREATE EXTERNAL TABLE IF NOT EXISTS `telemetry`.`metrics_lake` (
  `time_utc` timestamp,
  `namespace` string,
  `metric_name` string,
  `sum` double,
  `_extra` string
)
PARTITIONED BY (
  `namespace_path` string,
  `dt` string,
  `hour` int
)
STORED AS PARQUET
LOCATION 's3://YOUR-BUCKET/metrics/'
TBLPROPERTIES (
  'parquet.compression'='SNAPPY',
  'projection.enabled'='true',
  'projection.namespace_path.type'='enum',
  'projection.namespace_path.values'='AWS%2FEC2,AWS%2FLambda,Custom',
  'projection.dt.type'='date',
  'projection.dt.range'='2020%2F01%2F01,NOW',
  'projection.dt.format'="yyyy'%2F'MM'%2F'dd",
  'projection.dt.interval'='1',
  'projection.dt.interval.unit'='DAYS',
  'projection.hour.type'='integer',
  'projection.hour.range'='0,23',
  'projection.hour.digits'='2',
  'storage.location.template'='s3://YOUR-BUCKET/metrics/namespace=${namespace_path}/dt=${dt}/hour=${hour}/'
);
