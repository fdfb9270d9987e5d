package configtest

import "github.com/sluice-data/sluice/internal/sinks/opensearch"

// Document is a captured OpenSearch document.
type Document = opensearch.Document
