-- Sluice sink app-lake: s3://mozart-lake/app-logs/ Parquet (SNAPPY), partitions registered, not projected:
-- Athena cannot enumerate project_id, plan_ver. Register partitions with the sink's glue option
-- or MSCK REPAIR TABLE; or print projection with --enum project_id=A,B,... or --injected project_id,plan_ver.
-- project_id, plan_ver: partition columns only (Athena allows no column twice).
-- project_id, plan_ver: registered partitions hold the path value unescaped (AWS%2FEC2 in the path is AWS/EC2);
-- filter with the clean value.
CREATE EXTERNAL TABLE IF NOT EXISTS `telemetry`.`app_lake` (
  `event_timestamp` bigint,
  `level` string,
  `message` string,
  `_extra` string
)
PARTITIONED BY (
  `project_id` string,
  `plan_ver` string,
  `year` int,
  `month` int,
  `day` int,
  `hour` int
)
STORED AS PARQUET
LOCATION 's3://mozart-lake/app-logs/'
TBLPROPERTIES (
  'parquet.compression'='SNAPPY'
);
