package ledger

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/thingnet/thingnet/record"
)

// Exchange returns an anchored exchange by its root.
func (s *State) Exchange(root []byte) (*record.Exchange, error) {
	var e record.Exchange
	ok, err := s.get(record.ExchangeKey(root), &e)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("exchange %x: %w", root, ErrNotFound)
	}
	return &e, nil
}

func (x *txExec) exchangeAnchor(m *record.ExchangeAnchor) error {
	if x.device == nil {
		return record.Errf(record.CodeUnauthorized, "only a device anchors an exchange it took part in")
	}
	if m.Peer == x.device.ID {
		return record.Errf(record.CodeInvalid, "an exchange is between two devices; the peer is the signer")
	}
	if _, err := x.st.Device(m.Peer); err != nil {
		return notFound(err)
	}
	if _, err := x.st.Exchange(m.Root); err == nil {
		return record.Errf(record.CodeConflict, "exchange %x is anchored already", m.Root)
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	x.buf.set(record.ExchangeKey(m.Root), &record.Exchange{By: x.device.ID, Peer: m.Peer, Root: m.Root, Count: m.Count, Height: x.height})
	x.emit("exchange", "by", x.device.ID, "peer", m.Peer, "root", fmt.Sprintf("%X", m.Root), "count", strconv.FormatUint(m.Count, 10))
	return nil
}
