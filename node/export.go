package node

import (
	"net/http"

	"github.com/thingnet/thingnet/api"
	"github.com/thingnet/thingnet/export"
	"github.com/thingnet/thingnet/export/exporters"
	"github.com/thingnet/thingnet/metrics"
)

// mountExports adds GET /v1/exports (the exports' status, for operators
// and the explorer) and the exports' metrics; both answer an empty list
// until startExports runs, and without [[export]] tables.
func (n *Node) mountExports(reg *metrics.Registry) {
	status := func() []export.Status {
		if set := n.exports.Load(); set != nil {
			return set.Status()
		}
		return []export.Status{}
	}
	reg.Exports(status)
	n.api.Mount(map[string]api.HandlerFunc{"GET /v1/exports": func(*http.Request) (any, error) {
		return map[string]any{"exports": status()}, nil
	}})
}

// startExports starts the [[export]] tables: they follow this node's
// gateway through its own API, as the gateway key unless a table names
// another identity.
func (n *Node) startExports(c Config) error {
	if len(c.Export) == 0 {
		return nil
	}
	set, err := exporters.Start(c.Export, exporters.Env{Home: n.home, Source: "http://" + n.api.Addr(), Key: n.gwKey, Logger: n.log.With("module", "export")})
	if err != nil {
		return err
	}
	n.exports.Store(set)
	n.log.Info("exports started", "exports", len(c.Export))
	return nil
}
