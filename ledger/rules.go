// The rule book: who may do what, and the state changes of authorization,
// in one place for transactions and agreement effects alike.

package ledger

import (
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// ownsResource reports whether grantor owns r: its own resources, and for
// an organisation its devices' resources.
func ownsResource(st *State, grantor record.Principal, r record.Resource) (bool, error) {
	if r.Owner == grantor {
		return true, nil
	}
	if grantor.Type == "org" && r.Owner.Type == "device" {
		d, err := st.Device(r.Owner.ID)
		if err != nil {
			return false, notFound(err)
		}
		return d.Org == grantor.ID, nil
	}
	return false, nil
}

func principalExists(st *State, p record.Principal) error {
	var err error
	switch p.Type {
	case "org":
		_, err = st.Org(p.ID)
	case "agreement":
		var id uint64
		if id, err = strconv.ParseUint(p.ID, 10, 64); err == nil {
			_, err = st.Agreement(id)
		}
	default:
		_, err = st.Device(p.ID)
	}
	return notFound(err)
}

// speaksFor reports whether signer speaks for a party principal: the
// device itself; for an organisation, one of its admins. With devOrgs, an
// admin of a device's organisation speaks for the device too (accepting).
func speaksFor(st *State, signer, principal string, devOrgs bool) (bool, error) {
	p, err := record.ParsePrincipal(principal)
	if err != nil {
		return false, err
	}
	switch p.Type {
	case "device":
		if signer == p.ID {
			return true, nil
		}
		if !devOrgs {
			return false, nil
		}
		d, err := st.Device(p.ID)
		if err != nil {
			return false, notFound(err)
		}
		p = record.Principal{Type: "org", ID: d.Org}
		fallthrough
	case "org":
		o, err := st.Org(p.ID)
		if err != nil {
			return false, notFound(err)
		}
		return o.IsAdmin(signer), nil
	}
	return false, nil
}
