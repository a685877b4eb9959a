package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sort"

	"github.com/thingnet/thingnet/datalog"
	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/ledger"
	"github.com/thingnet/thingnet/reading"
	"github.com/thingnet/thingnet/record"
)

// What a LogFinding says was altered, beside datalog's kinds (missing,
// extra, entry, node, state).
const (
	FindMalformed = "malformed" // the entry does not decode (layout, envelope)
	FindSignature = "signature" // the envelope's signature does not verify over its bytes: the payload or the signature was altered
	FindSigner    = "signer"    // the entry's signer was not registered and active at its authentication height, or the height is not before its anchor
	FindAnchor    = "anchor"    // the log as stored does not give an anchored root
)

// LogFinding is one alteration of a gateway's reading log.
type LogFinding struct {
	Index  uint64 `json:"index"`
	What   string `json:"what"`
	Level  uint   `json:"level,omitempty"` // for a subtree hash ("node")
	Detail string `json:"detail"`
}

// LogReport is what CheckLog found.
type LogReport struct {
	Gateway  string       `json:"gateway"`
	Size     uint64       `json:"size"`     // entries the log's state record claims
	Anchors  int          `json:"anchors"`  // anchors of this gateway on the ledger
	Anchored uint64       `json:"anchored"` // size of the last anchor
	Findings []LogFinding `json:"findings"`
	// FirstBadAnchor is the first anchor whose root the log as stored does
	// not give: the log was altered within its entries.
	FirstBadAnchor *record.Anchor `json:"first_bad_anchor,omitempty"`
	// AnchorList is every anchor of the gateway in st, by size, for the
	// caller to prove against a header it trusts.
	AnchorList []record.Anchor `json:"-"`
	// Erased lists the entries whose values were erased (erase.go): by a
	// ledger erasure that covers them, or under their organisation's
	// retention. A tombstone that does not check is a finding
	// (datalog.FindTombstone), and is listed here too.
	Erased []ErasedEntry `json:"erased,omitempty"`
	// Archived lists the archived ranges (archive.go) with what the
	// audit could check of their segments.
	Archived []ArchivedSegment `json:"archived,omitempty"`
}

// What an ArchivedSegment's check found, and the finding kinds of
// archiving.
const (
	SegmentChecked    = "checked"        // fetched; digest, leaf hashes and signatures check
	SegmentNotFetched = "not_fetched"    // no way to fetch it was given
	SegmentDigest     = "digest_checked" // fetched, its digest checks; not opened (no gateway key given)
	FindArchive       = "archive"        // entries dropped as archived that the ledger records no segment of
	FindSegment       = "segment"        // a segment that was lost or does not check
)

// ArchivedSegment is an archived range the audit found, with its ledger
// record's CID and its segment's state: SegmentChecked,
// SegmentNotFetched, or why it is unavailable.
type ArchivedSegment struct {
	First  uint64 `json:"first"`
	Count  uint64 `json:"count"`
	CID    string `json:"cid,omitempty"`
	Status string `json:"status"`
}

// ErasedEntry is an erased entry the audit found.
type ErasedEntry struct {
	Index   uint64 `json:"index"`
	Reason  string `json:"reason"`            // ReasonErasure or ReasonRetention ("" if the tombstone does not decode)
	Erasure uint64 `json:"erasure,omitempty"` // the ledger erasure's seq
	Device  string `json:"device,omitempty"`
}

// CheckLog checks, offline, the reading log in a gateway's directory (the
// gateway stopped) against the ledger: every entry's bytes against the leaf
// hash stored when it was appended (datalog.Check), its decoding, its
// signature with the key its signer had at the entry's authentication
// height (the anchor's for layout 1 entries), and the roots of the log as
// stored against every anchor of the gateway on the ledger. st is the
// ledger state whose anchors count (the caller proves them: AnchorList),
// and whose device histories say which key each signer held at any height
// (ledger.State.HistoryAt), so no past version of the state is needed. A
// log rewritten consistently (entries, tree and state together) is caught
// by the anchors and, unless the attacker holds the devices' keys, by the
// signatures.
func CheckLog(dir, gatewayID string, st *ledger.State) (*LogReport, error) {
	return CheckLogWith(context.Background(), dir, gatewayID, st, nil, nil)
}

// CheckLogWith is CheckLog that also fetches, with fetch (nil: none), the
// segments of the archived ranges, and checks them as reads do (their
// digest against the ledger, their leaf hashes against the log) and their
// entries as stored ones (decoding, signatures); segments are sealed to
// the gateway's key: without it (nil) only their digests are checked.
// Entries dropped as archived without a ledger record, and segments lost
// or altered, are findings.
func CheckLogWith(ctx context.Context, dir, gatewayID string, st *ledger.State, fetch SegmentFetch, key *identity.Key) (*LogReport, error) {
	rep := &LogReport{Gateway: gatewayID}
	var anchors []record.Anchor
	for next := uint64(0); ; {
		a, err := st.AnchorCovering(gatewayID, next)
		if errors.Is(err, ledger.ErrNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("gateway: check: anchors of %s: %w", gatewayID, err)
		}
		anchors = append(anchors, *a)
		next = a.Size
	}
	rep.Anchors, rep.AnchorList = len(anchors), anchors
	if len(anchors) > 0 {
		rep.Anchored = anchors[len(anchors)-1].Size
	}
	covering := func(i uint64) *record.Anchor {
		k := sort.Search(len(anchors), func(k int) bool { return anchors[k].Size > i })
		if k == len(anchors) {
			return nil
		}
		return &anchors[k]
	}
	keys := identity.NewDIDCache(1024)
	checkEntry := func(i uint64, raw []byte) (string, string) {
		e, err := reading.DecodeEntry(raw)
		if err != nil {
			return FindMalformed, fmt.Sprintf("entry %d does not decode: %v", i, err)
		}
		env := e.Envelope
		signer := env.Signer()
		at := e.AuthHeight
		a := covering(i)
		if a != nil && at >= a.Height {
			return FindSigner, fmt.Sprintf("entry %d says it was authenticated at height %d, not before its anchor at height %d", i, at, a.Height)
		}
		if at == 0 {
			if a == nil {
				return "", "" // layout 1, not anchored yet: no height to check the key at
			}
			at = a.Height
		}
		held, _, err := st.HistoryAt(signer, at)
		if err != nil {
			return FindSigner, fmt.Sprintf("entry %d: its signer %s is not registered: %v", i, signer, err)
		}
		key, err := record.SignerKeyAt(signer, at, held)
		if err != nil {
			return FindSigner, fmt.Sprintf("entry %d: %v", i, err)
		}
		pub, err := keys.Parse(key)
		if err != nil {
			return FindSigner, fmt.Sprintf("entry %d: its signer %s has an unreadable key: %v", i, signer, err)
		}
		if err := env.Verify(pub); err != nil {
			return FindSignature, fmt.Sprintf("entry %d: the signature of %s does not verify over the stored envelope (its payload or signature bytes were altered): %v", i, signer, err)
		}
		return "", ""
	}
	checkTomb := func(i uint64, raw []byte) (string, string) {
		t, err := DecodeTombstone(raw)
		if err != nil {
			rep.Erased = append(rep.Erased, ErasedEntry{Index: i})
			return datalog.FindTombstone, fmt.Sprintf("entry %d was replaced by a tombstone that does not decode: %v", i, err)
		}
		rep.Erased = append(rep.Erased, ErasedEntry{Index: i, Reason: t.Reason, Erasure: t.Erasure, Device: t.Device})
		if why := backed(st, t); why != "" {
			return datalog.FindTombstone, fmt.Sprintf("entry %d was removed with a tombstone of %s that nothing on the ledger backs: %s", i, t.Reason, why)
		}
		return "", ""
	}
	dr, err := datalog.Check(datalog.CheckConfig{Dir: filepath.Join(dir, "datalog"), Entry: checkEntry, Tombstone: checkTomb})
	if err != nil {
		return nil, fmt.Errorf("gateway: check: %w", err)
	}
	rep.Size = dr.Size
	for _, f := range dr.Findings {
		rep.Findings = append(rep.Findings, LogFinding{Index: f.Index, What: f.Kind, Level: f.Level, Detail: f.Detail})
	}
	for _, r := range dr.Archived {
		seg := ArchivedSegment{First: r.First, Count: r.Count, Status: SegmentNotFetched}
		rec, err := st.LogArchiveCovering(gatewayID, r.First)
		if err != nil || rec.First != r.First || rec.Count != r.Count {
			rep.Findings = append(rep.Findings, LogFinding{Index: r.First, What: FindArchive,
				Detail: fmt.Sprintf("entries %d..%d were dropped as archived, and the ledger records no segment of exactly them (%v)", r.First, r.End()-1, err)})
			seg.Status = "no ledger record"
			rep.Archived = append(rep.Archived, seg)
			continue
		}
		seg.CID = rec.CID
		if fetch != nil {
			s, err := fetchSegment(ctx, fetch, rec, dr.Leaf, key)
			switch {
			case errors.Is(err, ErrSealed):
				seg.Status = SegmentDigest
			case err != nil:
				seg.Status = err.Error()
				rep.Findings = append(rep.Findings, LogFinding{Index: r.First, What: FindSegment,
					Detail: fmt.Sprintf("the segment %s of entries %d..%d: %v", rec.CID, r.First, r.End()-1, err)})
			default:
				seg.Status = SegmentChecked
				for k, it := range s.Items {
					if it.Entry == nil {
						continue
					}
					if kind, detail := checkEntry(r.First+uint64(k), it.Entry); kind != "" {
						rep.Findings = append(rep.Findings, LogFinding{Index: r.First + uint64(k), What: kind, Detail: "in its segment " + rec.CID + ": " + detail})
					}
				}
			}
		}
		rep.Archived = append(rep.Archived, seg)
	}
	sizes := make([]uint64, len(anchors))
	for k, a := range anchors {
		sizes[k] = a.Size
	}
	roots := dr.Roots(sizes)
	prev := uint64(0)
	for k, a := range anchors {
		root, ok := roots[a.Size]
		switch {
		case !ok:
			rep.Findings = append(rep.Findings, LogFinding{Index: prev, What: datalog.FindMissing,
				Detail: fmt.Sprintf("the ledger anchored %d entries at height %d; the log holds %d", a.Size, a.Height, dr.Size)})
		case string(root[:]) != string(a.Root):
			rep.Findings = append(rep.Findings, LogFinding{Index: prev, What: FindAnchor,
				Detail: fmt.Sprintf("anchor %d (size %d, height %d): entries %d..%d as stored give root %x, the ledger has %x", k+1, a.Size, a.Height, prev, a.Size-1, root[:8], a.Root[:min(8, len(a.Root))])})
		default:
			prev = a.Size
			continue
		}
		rep.FirstBadAnchor = &anchors[k]
		break
	}
	sort.SliceStable(rep.Findings, func(x, y int) bool { return rep.Findings[x].Index < rep.Findings[y].Index })
	return rep, nil
}

// backed checks a tombstone against the ledger: "" if an erasure on the
// ledger covers its device and one of its readings' times, or its
// device's organisation had the retention it names and its newest reading
// had expired when it was dropped; else why not. The reading times are
// the tombstone's word (the values are gone): a forger could only claim
// an erasure for what the organisation did erase.
func backed(st *ledger.State, t *Tombstone) string {
	switch t.Reason {
	case ReasonErasure:
		e, err := st.Erasure(t.Erasure)
		if err != nil {
			return fmt.Sprintf("it names erasure %d, which the ledger does not hold (%v)", t.Erasure, err)
		}
		if e.Device != t.Device {
			return fmt.Sprintf("erasure %d is of device %s, not of %s", e.Seq, e.Device, t.Device)
		}
		if t.Last < e.From || (e.To != 0 && t.First >= e.To) {
			return fmt.Sprintf("erasure %d covers [%d, %d) ms; the entry's readings are timed %d..%d", e.Seq, e.From, e.To, t.First, t.Last)
		}
		return ""
	case ReasonRetention:
		d, err := st.Device(t.Device)
		if err != nil {
			return fmt.Sprintf("its device %s is not on the ledger (%v)", t.Device, err)
		}
		p, err := st.Policy(d.Org)
		if err != nil {
			return err.Error()
		}
		// A policy changed after the drop cannot be checked against the
		// one in force then (past states are pruned); the same one can.
		if p.Height <= t.PolicyHeight && p.Retention != t.Retention {
			return fmt.Sprintf("it names a retention of %d s by the policy of height %d; %s's policy (height %d) says %d s", t.Retention, t.PolicyHeight, d.Org, p.Height, p.Retention)
		}
		if t.PolicyHeight == 0 || t.PolicyHeight > p.Height {
			return fmt.Sprintf("%s has no policy of height %d (its policy is of height %d)", d.Org, t.PolicyHeight, p.Height)
		}
		if exp := t.Last + int64(t.Retention)*1000; exp > t.At {
			return fmt.Sprintf("its newest reading (%d ms) had not expired when it was dropped (%d ms) under a retention of %d s", t.Last, t.At, t.Retention)
		}
		return ""
	}
	return fmt.Sprintf("unknown reason %q", t.Reason)
}
