-- Sluice sink app-lake: s3://mozart-lake/app-logs/ Parquet (SNAPPY), partitions registered, not projected:
-- Athena cannot enumerate project_id, plan_ver. Register partitions with the sink's glue option
-- or MSCK REPAIR TABLE; or print projection with --enum project_id=A,B,... or --injected project_id,plan_ver.
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
-- project_id, plan_ver: partition columns only; the path value (AWS%2FEC2) stands for the data column.
-- project_id, plan_ver: path values are Hive-escaped (AWS/EC2 is stored as AWS%2FEC2); filter with the escaped form.
STORED AS PARQUET
LOCATION 's3://mozart-lake/app-logs/'
TBLPROPERTIES (
  'parquet.compression'='SNAPPY'
);
