package ledger

import (
	"fmt"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// DataKeyShare returns grantee's share of version v of org's data key.
func (s *State) DataKeyShare(org string, v uint64, grantee string) (*record.DataKeyShare, error) {
	var sh record.DataKeyShare
	ok, err := s.get(record.DataKeyShareKey(org, v, grantee), &sh)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("organisation %q shares no data key version %d with %s: %w", org, v, grantee, ErrNotFound)
	}
	return &sh, nil
}

// orgDataKeyShare publishes (or, with no Sealed, withdraws) a grantee's
// share of a published version of the organisation's data key: an admin's
// tx. The ledger cannot check what the share holds (only the grantee can
// open it); the grantee checks the key it unwraps against the published
// public key.
func (x *txExec) orgDataKeyShare(m *record.OrgDataKeyShare) error {
	if _, err := x.adminOrg(m.Org); err != nil {
		return err
	}
	if _, err := x.st.DataKey(m.Org, m.Version); err != nil {
		return notFound(err)
	}
	key := record.DataKeyShareKey(m.Org, m.Version, m.Grantee)
	if len(m.Sealed) == 0 {
		x.buf.del(key)
	} else {
		x.buf.set(key, &record.DataKeyShare{Org: m.Org, Version: m.Version, Grantee: m.Grantee, Suite: m.Suite, Sealed: m.Sealed,
			Height: x.height, Signer: x.tx.Signer})
	}
	x.emit("org", "id", m.Org, "action", m.Kind(), "version", strconv.FormatUint(m.Version, 10), "grantee", m.Grantee)
	return nil
}
