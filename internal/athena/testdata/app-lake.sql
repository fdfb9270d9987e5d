-- Sluice sink app-lake: s3://mozart-lake/app-logs/ Parquet (SNAPPY) with partition projection.
-- Also data columns: project_id as project_id_path, plan_ver as plan_ver_path. The data column keeps the clean value (AWS/EC2);
-- the partition column holds the path value (AWS%2FEC2) and prunes partitions.
-- project_id_path, plan_ver_path: injected, so every query must filter on each with = or IN.
-- project_id_path, plan_ver_path: path values are Hive-escaped (AWS/EC2 is stored as AWS%2FEC2); filter with the escaped form.
CREATE EXTERNAL TABLE IF NOT EXISTS `telemetry`.`app_lake` (
  `project_id` string,
  `plan_ver` string,
  `event_timestamp` bigint,
  `level` string,
  `message` string,
  `_extra` string
)
PARTITIONED BY (
  `project_id_path` string,
  `plan_ver_path` string,
  `year` int,
  `month` int,
  `day` int,
  `hour` int
)
STORED AS PARQUET
LOCATION 's3://mozart-lake/app-logs/'
TBLPROPERTIES (
  'parquet.compression'='SNAPPY',
  'projection.enabled'='true',
  'projection.project_id_path.type'='injected',
  'projection.plan_ver_path.type'='injected',
  'projection.year.type'='integer',
  'projection.year.range'='2020,2027',
  'projection.year.digits'='4',
  'projection.month.type'='integer',
  'projection.month.range'='1,12',
  'projection.month.digits'='2',
  'projection.day.type'='integer',
  'projection.day.range'='1,31',
  'projection.day.digits'='2',
  'projection.hour.type'='integer',
  'projection.hour.range'='0,23',
  'projection.hour.digits'='2',
  'storage.location.template'='s3://mozart-lake/app-logs/project_id=${project_id_path}/plan_ver=${plan_ver_path}/year=${year}/month=${month}/day=${day}/hour=${hour}/'
);
