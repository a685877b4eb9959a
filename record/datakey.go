package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
)

// Sharing a data key with a grantee (docs/privacy.md "Confidential
// readings"). An organisation's devices seal confidential readings to its
// data key (org.datakey); its admins hold the private half. To let a
// reader open them (a holder of a read grant, a new admin, an auditor)
// without re-encrypting any reading, an admin wraps the data private key
// of one version to the reader's ledger key with HPKE and publishes the
// wrapped key: the ledger holds only ciphertext that the reader alone
// opens, and the log does not change.
const (
	KindOrgDataKeyShare = "org.datakey.share"

	PrefixDataKeyShare = "os/" // os/<org>/<version u64 BE>/<grantee> -> DataKeyShare

	// MaxDataKeyShare bounds a wrapped data key: the encapsulated key of
	// the grantee's suite and the sealed private key (a PKCS #8 key of at
	// most 138 bytes, with its tag).
	MaxDataKeyShare = 512
)

func init() { msgTypes[KindOrgDataKeyShare] = func() Msg { return new(OrgDataKeyShare) } }

// DataKeyShareKey is the state key of a grantee's share of one version of
// an organisation's data key.
func DataKeyShareKey(org string, version uint64, grantee string) []byte {
	b := binary.BigEndian.AppendUint64([]byte(PrefixDataKeyShare+org+"/"), version)
	return append(append(b, '/'), grantee...)
}

// DataKeyShareInfo is the HPKE info of a share: it binds the wrapped key
// to the chain, the organisation, the version and the grantee, so that a
// share cannot be replayed for another of them.
func DataKeyShareInfo(chainID, org string, version uint64, grantee string) []byte {
	return []byte("thingnet/datakey-share/v1\x00" + chainID + "\x00" + org + "\x00" + strconv.FormatUint(version, 10) + "\x00" + grantee)
}

// DataKeyShare is one version of an organisation's data private key,
// wrapped to a grantee's ledger key: Sealed is identity.Seal(Suite,
// grantee's encryption key, DataKeyShareInfo, PKCS #8 private key).
type DataKeyShare struct {
	Org     string `cbor:"1,keyasint" json:"org"`
	Version uint64 `cbor:"2,keyasint" json:"version"`
	Grantee string `cbor:"3,keyasint" json:"grantee"`
	Suite   uint8  `cbor:"4,keyasint" json:"suite"`
	Sealed  []byte `cbor:"5,keyasint" json:"sealed"`
	Height  int64  `cbor:"6,keyasint" json:"height"`
	Signer  string `cbor:"7,keyasint" json:"signer"`
}

// OrgDataKeyShare publishes a grantee's share of a version of the
// organisation's data key (an admin's tx); an empty Sealed withdraws it
// (the grantee may have kept the key: rotate the data key to shut a
// reader out of future readings).
type OrgDataKeyShare struct {
	Org     string `cbor:"1,keyasint"`
	Version uint64 `cbor:"2,keyasint"`
	Grantee string `cbor:"3,keyasint"`
	Suite   uint8  `cbor:"4,keyasint,omitempty"`
	Sealed  []byte `cbor:"5,keyasint,omitempty"`
}

func (*OrgDataKeyShare) Kind() string { return KindOrgDataKeyShare }

func (m *OrgDataKeyShare) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if m.Version == 0 {
		return errors.New("data key share: version is 0")
	}
	if err := checkDIDSyntax(m.Grantee); err != nil {
		return fmt.Errorf("data key share: grantee: %w", err)
	}
	if len(m.Sealed) > MaxDataKeyShare {
		return fmt.Errorf("data key share is %d bytes, at most %d", len(m.Sealed), MaxDataKeyShare)
	}
	if len(m.Sealed) != 0 && m.Suite == 0 {
		return errors.New("data key share: suite is missing")
	}
	return nil
}
