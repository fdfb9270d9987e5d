-- Sluice sink by-day: s3://mozart-lake/by-day/ Parquet (SNAPPY) with partition projection.
CREATE EXTERNAL TABLE IF NOT EXISTS `telemetry`.`by_day` (
  `Id` string
)
PARTITIONED BY (
  `dt` string
)
STORED AS PARQUET
LOCATION 's3://mozart-lake/by-day/'
TBLPROPERTIES (
  'parquet.compression'='SNAPPY',
  'projection.enabled'='true',
  'projection.dt.type'='date',
  'projection.dt.range'='2019-01-01,2030-12-31',
  'projection.dt.format'='yyyy-MM-dd',
  'projection.dt.interval'='1',
  'projection.dt.interval.unit'='DAYS',
  'storage.location.template'='s3://mozart-lake/by-day/dt=${dt}/'
);
