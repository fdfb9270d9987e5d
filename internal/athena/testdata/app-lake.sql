-- Sluice sink app-lake: s3://mozart-lake/app-logs/ Parquet (SNAPPY) with partition projection.
CREATE EXTERNAL TABLE IF NOT EXISTS `telemetry`.`app_lake` (
  `event_timestamp` bigint,
  `level` string,
  `message` string,
  `_extra` string
)
-- project_id, plan_ver: also partition keys, so read from the partition path (Athena allows no column twice).
PARTITIONED BY (
  `project_id` string,
  `plan_ver` string,
  `year` string,
  `month` string,
  `day` string,
  `hour` string
)
-- project_id, plan_ver: injected, so every query must filter on each with = or IN. Path values are Hive-escaped (AWS/EC2 is stored as AWS%2FEC2).
STORED AS PARQUET
LOCATION 's3://mozart-lake/app-logs/'
TBLPROPERTIES (
  'parquet.compression'='SNAPPY',
  'projection.enabled'='true',
  'projection.project_id.type'='injected',
  'projection.plan_ver.type'='injected',
  'projection.year.type'='integer',
  'projection.year.range'='2000,2099',
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
  'storage.location.template'='s3://mozart-lake/app-logs/project_id=${project_id}/plan_ver=${plan_ver}/year=${year}/month=${month}/day=${day}/hour=${hour}/'
);
