package record

import "encoding/binary"

// Key layout of the state tree. Every record a device or auditor may need to
// check lives under one key, so it has an inclusion (or absence) proof
// against the app hash. docs/protocol.md lists the same layout.
const (
	PrefixOrg       = "o/" // o/<org> -> Org
	PrefixAdmin     = "a/" // a/<admin did>/<org> -> marker (orgs an admin administers)
	PrefixDevice    = "d/" // d/<device did> -> Device
	PrefixHistory   = "h/" // h/<device did>/<seq u64 BE> -> Event
	PrefixGrant     = "g/" // g/<id u64 BE> -> Grant
	PrefixGrantIdx  = "s/" // s/<subject>\x00<action>\x00<resource>\x00<id u64 BE> -> marker (grants in force)
	prefixNonce     = "n/" // n/<signer> -> u64 BE last nonce
	PrefixValidator = "v/" // v/<hex pubkey> -> Validator
	prefixAnchor    = "l/" // l/<gateway did> -> Anchor (latest)
	PrefixAnchorAt  = "L/" // L/<gateway did>/<size u64 BE> -> Anchor (every anchor)
	KeyChainID      = "m/chain"
	KeyGrantSeq     = "m/grantseq"
	KeyValSeq       = "m/valseq"
)

// OrgKey and the functions below return state keys, for proofs.
func OrgKey(id string) []byte { return []byte(PrefixOrg + id) }

func DeviceKey(id string) []byte { return []byte(PrefixDevice + id) }

func GrantKey(id uint64) []byte { return binary.BigEndian.AppendUint64([]byte(PrefixGrant), id) }

func NonceKey(signer string) []byte { return []byte(prefixNonce + signer) }

func HistoryKey(device string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixHistory+device+"/"), seq)
}

func AnchorKey(gateway string) []byte { return []byte(prefixAnchor + gateway) }

func AnchorAtKey(gateway string, size uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(PrefixAnchorAt+gateway+"/"), size)
}
