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
	cfg, _, err := fetchConfig(ctx, ref)
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// configSource is where a running configuration came from: what a reload
// fetches again, and the hash of the document it runs.
type configSource struct {
	fetcher *configsrc.Fetcher
	hash    string // SHA-256 of the document, hex
	// reload is set for processor run: SIGHUP, service.reload.watch and
	// service.reload.poll read the configuration again.
	reload bool
}

// fetchConfig is loadConfig that also returns where the configuration
// came from.
func fetchConfig(ctx context.Context, ref string) (*config.Config, configSource, error) {
	f, err := configsrc.New(ctx, ref, configsrc.Options{})
	if err != nil {
		return nil, configSource{}, err
	}
	doc, err := f.Fetch(ctx)
	if err != nil {
		return nil, configSource{}, err
	}
	cfg, err := config.Parse(doc.Name, doc.Data, os.LookupEnv)
	return cfg, configSource{fetcher: f, hash: doc.Hash()}, err
}
