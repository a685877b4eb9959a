package ledger

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// File returns a file manifest.
func (s *State) File(org, name string) (*record.FileManifest, error) {
	var f record.FileManifest
	ok, err := s.get(record.FileKey(org, name), &f)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("file %s/%s: %w", org, name, ErrNotFound)
	}
	return &f, nil
}

// Files lists an organisation's files by name, after the name given.
func (s *State) Files(org, after string, limit int) ([]record.FileManifest, error) {
	if limit <= 0 || limit > 1000 {
		limit = 1000
	}
	p := []byte(record.PrefixFile + org + "/")
	start := p
	if after != "" {
		start = append(append([]byte{}, p...), after+"\x00"...)
	}
	var out []record.FileManifest
	err := s.scan(start, prefixEnd(p), func(_, v []byte) (bool, error) {
		var f record.FileManifest
		if err := record.Unmarshal(v, &f); err != nil {
			return false, err
		}
		out = append(out, f)
		return len(out) < limit, nil
	})
	return out, err
}

// FilePins lists the nodes that pin a CID, in pinner order.
func (s *State) FilePins(cid string) ([]record.FilePin, error) {
	p := []byte(record.PrefixFilePin + cid + "/")
	var out []record.FilePin
	err := s.scan(p, prefixEnd(p), func(_, v []byte) (bool, error) {
		var f record.FilePin
		if err := record.Unmarshal(v, &f); err != nil {
			return false, err
		}
		out = append(out, f)
		return len(out) < 1000, nil
	})
	return out, err
}

// mayPublish: an admin of org, or an active device of org.
func (x *txExec) mayPublish(org string) error {
	if x.device != nil {
		if x.device.Org != org {
			return record.Errf(record.CodeUnauthorized, "device %s belongs to %s, not %s", x.device.ID, x.device.Org, org)
		}
		return nil
	}
	_, err := x.adminOrg(org)
	return err
}

// mayManageFile: the file's owner (publisher) or an admin of its org.
func (x *txExec) mayManageFile(f *record.FileManifest) error {
	if x.tx.Signer == f.Owner {
		return nil
	}
	if x.device != nil {
		return record.Errf(record.CodeUnauthorized, "only the owner %s or an admin of %s manages file %s", f.Owner, f.Org, f.Name)
	}
	_, err := x.adminOrg(f.Org)
	return err
}

// checkRecipients: every recipient is a known device that may fetch the
// file (a fetch grant in force, to the device or its organisation), or the
// signer itself.
func (x *txExec) checkRecipients(org, name string, keys []record.WrappedKey) error {
	res := []string{record.FileResource(org, name), "org:" + org + "/file", "org:" + org}
	for _, k := range keys {
		if k.Recipient == x.tx.Signer {
			continue
		}
		d, err := x.st.Device(k.Recipient)
		if err != nil {
			return notFound(err)
		}
		if d.Status != record.StatusActive {
			return record.Errf(record.CodeUnauthorized, "recipient %s is %s", d.ID, d.Status)
		}
		ok := d.Org == org
		if !ok {
			if ok, err = holdsGrant(x.st, []string{"device:" + d.ID, "org:" + d.Org}, record.ActionFetch, res, x.height); err != nil {
				return err
			}
		}
		if !ok {
			return record.Errf(record.CodeUnauthorized, "recipient %s holds no fetch grant on %s", d.ID, record.FileResource(org, name))
		}
	}
	return nil
}

func (x *txExec) filePublish(m *record.FilePublish) error {
	if err := x.mayPublish(m.Org); err != nil {
		return err
	}
	if _, err := x.st.File(m.Org, m.Name); err == nil {
		return record.Errf(record.CodeConflict, "file %s/%s exists; use file.rekey to replace a private file's content", m.Org, m.Name)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := x.checkRecipients(m.Org, m.Name, m.Keys); err != nil {
		return err
	}
	f := &record.FileManifest{Org: m.Org, Name: m.Name, CID: m.CID, Size: m.Size, ContentType: m.ContentType,
		Private: m.Private, Keys: m.Keys, Owner: x.tx.Signer, Version: 1, Height: x.height, Updated: x.height}
	x.buf.set(record.FileKey(m.Org, m.Name), f)
	x.emit("file", "action", "publish", "org", m.Org, "name", m.Name, "cid", m.CID)
	return nil
}

func (x *txExec) fileForUpdate(org, name string) (*record.FileManifest, error) {
	f, err := x.st.File(org, name)
	if err != nil {
		return nil, notFound(err)
	}
	if err := x.mayManageFile(f); err != nil {
		return nil, err
	}
	if !f.Private {
		return nil, record.Errf(record.CodeInvalid, "file %s/%s is public: it has no keys to share, revoke or replace", org, name)
	}
	return f, nil
}

func (x *txExec) fileShare(m *record.FileShare) error {
	f, err := x.fileForUpdate(m.Org, m.Name)
	if err != nil {
		return err
	}
	if err := x.checkRecipients(m.Org, m.Name, m.Keys); err != nil {
		return err
	}
	f.Keys = mergeKeys(f.Keys, m.Keys)
	if len(f.Keys) > record.MaxFileKeys {
		return record.Errf(record.CodeInvalid, "file %s/%s would have %d wrapped keys; at most %d", m.Org, m.Name, len(f.Keys), record.MaxFileKeys)
	}
	f.Updated = x.height
	x.buf.set(record.FileKey(m.Org, m.Name), f)
	x.emit("file", "action", "share", "org", m.Org, "name", m.Name, "keys", strconv.Itoa(len(m.Keys)))
	return nil
}

// mergeKeys merges two recipient-sorted lists; b wins on equal recipients.
func mergeKeys(a, b []record.WrappedKey) []record.WrappedKey {
	out := make([]record.WrappedKey, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i].Recipient < b[j].Recipient:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Recipient < a[i].Recipient:
			out = append(out, b[j])
			j++
		default:
			out = append(out, b[j])
			i++
			j++
		}
	}
	return out
}

func (x *txExec) fileRevoke(m *record.FileRevoke) error {
	f, err := x.fileForUpdate(m.Org, m.Name)
	if err != nil {
		return err
	}
	kept := f.Keys[:0:0]
	for _, k := range f.Keys {
		if k.Recipient != m.Recipient {
			kept = append(kept, k)
		}
	}
	if len(kept) == len(f.Keys) {
		return record.Errf(record.CodeNotFound, "file %s/%s has no key for %s", m.Org, m.Name, m.Recipient)
	}
	f.Keys, f.Updated = kept, x.height
	x.buf.set(record.FileKey(m.Org, m.Name), f)
	x.emit("file", "action", "revoke", "org", m.Org, "name", m.Name, "recipient", m.Recipient)
	return nil
}

func (x *txExec) fileRekey(m *record.FileRekey) error {
	f, err := x.fileForUpdate(m.Org, m.Name)
	if err != nil {
		return err
	}
	if m.CID == f.CID {
		return record.Errf(record.CodeInvalid, "re-key needs new content: %s is the current CID", m.CID)
	}
	if err := x.checkRecipients(m.Org, m.Name, m.Keys); err != nil {
		return err
	}
	f.CID, f.Size, f.Keys, f.Version, f.Updated = m.CID, m.Size, m.Keys, f.Version+1, x.height
	x.buf.set(record.FileKey(m.Org, m.Name), f)
	x.emit("file", "action", "rekey", "org", m.Org, "name", m.Name, "cid", m.CID, "version", strconv.FormatUint(f.Version, 10))
	return nil
}

func (x *txExec) filePin(m *record.FilePinMsg) error {
	if x.device == nil {
		return record.Errf(record.CodeUnauthorized, "only a device (a gateway or full device) records a pin")
	}
	k := record.FilePinKey(m.CID, x.device.ID)
	if m.Unpin {
		var old record.FilePin
		if ok, err := x.st.get(k, &old); err != nil {
			return err
		} else if !ok {
			return record.Errf(record.CodeNotFound, "%s does not pin %s", x.device.ID, m.CID)
		}
		x.buf.del(k)
	} else {
		x.buf.set(k, &record.FilePin{CID: m.CID, Pinner: x.device.ID, Height: x.height})
	}
	action := "pin"
	if m.Unpin {
		action = "unpin"
	}
	x.emit("file", "action", action, "cid", m.CID, "pinner", x.device.ID)
	return nil
}
