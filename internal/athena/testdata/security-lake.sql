-- Sluice sink security-lake: s3://mozart-lake/security/ Parquet (ZSTD) with partition projection.
CREATE EXTERNAL TABLE IF NOT EXISTS `telemetry`.`security_lake` (
  `Id` string,
  `severity` string,
  `time_utc` timestamp,
  `Resources` string,
  `n` double,
  `ok` boolean,
  `d` date,
  `_extra` string
)
PARTITIONED BY (
  `year` int,
  `month` int
)
STORED AS PARQUET
LOCATION 's3://mozart-lake/security/'
TBLPROPERTIES (
  'parquet.compression'='ZSTD',
  'projection.enabled'='true',
  'projection.year.type'='integer',
  'projection.year.range'='2020,2027',
  'projection.year.digits'='4',
  'projection.month.type'='integer',
  'projection.month.range'='1,12',
  'projection.month.digits'='2',
  'storage.location.template'='s3://mozart-lake/security/year=${year}/month=${month}/'
);
