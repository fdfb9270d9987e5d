package testutil

// ProdExampleEnv is what configs/prod.example.yaml's ${VAR}s are in the
// deployment its documents describe: deploy/ecs/sluice.yaml's task role is
// `processor iam-policy` for the example with these values.
var ProdExampleEnv = map[string]string{
	"MSK_BOOTSTRAP":       "b-1.mozart-msk.a1b2c3.c2.kafka.ap-northeast-2.amazonaws.com:9098",
	"LAKE_BUCKET":         "mozart-lake",
	"OPENSEARCH_ENDPOINT": "https://search-mozart-abc123.ap-northeast-2.es.amazonaws.com",
	"AWS_REGION":          "ap-northeast-2",
}
