package api

import (
	"net/http"

	"github.com/thingnet/thingnet/record"
)

// Upgrades is the answer of GET /v1/upgrade.
type Upgrades struct {
	Height     int64                `json:"height"`      // of the state read
	AppVersion uint64               `json:"app_version"` // the state's application version
	Seq        uint64               `json:"seq"`         // the last plan's or cancellation's sequence number
	Pending    *record.UpgradePlan  `json:"pending"`     // null: none planned
	Done       []record.UpgradeDone `json:"done"`
}

// upgradeRoutes serves the ledger's software upgrades (ledger/upgrade.go,
// docs/operations.md "Upgrades").
func (s *Server) upgradeRoutes() {
	s.handle("GET /v1/upgrade", s.getUpgrade)
}

// getUpgrade answers GET /v1/upgrade: the state's application version, the
// pending upgrade plan if any, and the upgrades done.
func (s *Server) getUpgrade(r *http.Request) (any, error) {
	st, _, err := s.view(r)
	if err != nil {
		return nil, err
	}
	out := Upgrades{Height: st.Height, Done: []record.UpgradeDone{}}
	if out.AppVersion, err = st.AppVersion(); err != nil {
		return nil, err
	}
	if out.Seq, err = st.UpgradeSeq(); err != nil {
		return nil, err
	}
	if out.Pending, err = st.UpgradePlan(); err != nil {
		return nil, err
	}
	done, err := st.UpgradesDone()
	if err != nil {
		return nil, err
	}
	out.Done = append(out.Done, done...)
	return out, nil
}
