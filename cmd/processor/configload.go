package main

import (
	"context"
	"os"

	"github.com/sluice-data/sluice/internal/config"
	"github.com/sluice-data/sluice/internal/configsrc"
)

// loadConfig reads the configuration -c names: a path, s3://bucket/key or
// ssm:/name (see internal/configsrc), expands ${VAR} from the environment
// (where ECS puts `secrets`) and validates it.
func loadConfig(ctx context.Context, ref string) (*config.Config, error) {
	f, err := configsrc.New(ctx, ref, configsrc.Options{})
	if err != nil {
		return nil, err
	}
	doc, err := f.Fetch(ctx)
	if err != nil {
		return nil, err
	}
	return config.Parse(doc.Name, doc.Data, os.LookupEnv)
}
