package record

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/thingnet/thingnet/identity"
)

// Tx kinds. They are part of the wire protocol.
const (
	KindOrgCreate       = "org.create"
	KindOrgAdminAdd     = "org.admin.add"
	KindOrgAdminRemove  = "org.admin.remove"
	KindDeviceRegister  = "device.register"
	KindDeviceRotate    = "device.rotate"
	KindDeviceSuspend   = "device.suspend"
	KindDeviceResume    = "device.resume"
	KindDeviceRevoke    = "device.revoke"
	KindDeviceUpdate    = "device.update"
	KindGrantAdd        = "grant.add"
	KindGrantRevoke     = "grant.revoke"
	KindValidatorUpdate = "validator.update"
	KindDataAnchor      = "data.anchor"
)

// Msg is the kind-specific part of a transaction.
type Msg interface {
	Kind() string
	// ValidateBasic checks the fields without looking at state.
	ValidateBasic() error
}

// msgTypes makes an empty message of each kind, for decoding.
var msgTypes = map[string]func() Msg{
	KindOrgCreate:       func() Msg { return new(OrgCreate) },
	KindOrgAdminAdd:     func() Msg { return &OrgAdmin{add: true} },
	KindOrgAdminRemove:  func() Msg { return &OrgAdmin{} },
	KindOrgAdminRotate:  func() Msg { return new(OrgAdminRotate) }, // governance.go
	KindDeviceRegister:  func() Msg { return new(DeviceRegister) },
	KindDeviceRotate:    func() Msg { return new(DeviceRotate) },
	KindDeviceSuspend:   func() Msg { return &DeviceStatus{To: StatusSuspended} },
	KindDeviceResume:    func() Msg { return &DeviceStatus{To: StatusActive} },
	KindDeviceRevoke:    func() Msg { return &DeviceStatus{To: StatusRevoked} },
	KindDeviceUpdate:    func() Msg { return new(DeviceUpdate) },
	KindGrantAdd:        func() Msg { return new(GrantAdd) },
	KindGrantRevoke:     func() Msg { return new(GrantRevoke) },
	KindValidatorUpdate: func() Msg { return new(ValidatorUpdate) },
	KindDataAnchor:      func() Msg { return new(DataAnchor) },
	KindExchangeAnchor:  func() Msg { return new(ExchangeAnchor) },
	KindFilePublish:     func() Msg { return new(FilePublish) }, // files.go
	KindFileShare:       func() Msg { return new(FileShare) },
	KindFileRevoke:      func() Msg { return new(FileRevoke) },
	KindFileRekey:       func() Msg { return new(FileRekey) },
	KindFilePin:         func() Msg { return new(FilePinMsg) },
	KindFirmwareRelease: func() Msg { return new(FirmwareRelease) }, // firmware.go
	KindFirmwareApprove: func() Msg { return new(FirmwareApprove) },
	KindFirmwareReport:  func() Msg { return new(FirmwareReport) },
	KindFirmwareRollout: func() Msg { return new(FirmwareRollout) },
	// agreements.go, credits.go
	KindAgreementDeploy: func() Msg { return new(AgreementDeploy) },
	KindAgreementAccept: func() Msg { return new(AgreementAccept) },
	KindAgreementCall:   func() Msg { return new(AgreementCall) },
	KindCreditTransfer:  func() Msg { return new(CreditTransfer) },
	KindCreditMint:      func() Msg { return new(CreditMint) },
	// privacy.go
	KindOrgPolicy:  func() Msg { return new(OrgPolicy) },
	KindOrgDataKey: func() Msg { return new(OrgDataKey) },
	KindDataErase:  func() Msg { return new(DataErase) },
	// upgrade.go
	KindUpgradePlan: func() Msg { return new(UpgradePlan) },
	// config.go
	KindConfigSet: func() Msg { return new(ConfigSet) },
	// archive.go
	KindLogArchive: func() Msg { return new(LogArchiveMsg) },
	// jobs.go
	KindJobCreate: func() Msg { return new(JobCreate) },
	KindJobCancel: func() Msg { return new(JobCancel) },
	KindJobReport: func() Msg { return new(JobReport) },
}

// Kinds lists the known tx kinds, sorted.
func Kinds() []string {
	ks := make([]string, 0, len(msgTypes))
	for k := range msgTypes {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// OrgCreate creates an organisation (a tenant); the signer becomes its first
// admin. What else it needs depends on the network's governance (its
// genesis, governance.go): nothing where creation is open, approvals of
// validators holding more than 2/3 of the power over
// OrgCreateMessage(chain, ID, signer), or a deposit of credits paid from an
// account the signer acts for.
type OrgCreate struct {
	ID        string     `cbor:"1,keyasint"`
	Name      string     `cbor:"2,keyasint,omitempty"`
	Approvals []Approval `cbor:"3,keyasint,omitempty"`
	// DepositFrom is the account ("org:ID" or "device:DID") that pays the
	// deposit where governance asks for one.
	DepositFrom string `cbor:"4,keyasint,omitempty"`
}

func (*OrgCreate) Kind() string { return KindOrgCreate }

func (m *OrgCreate) ValidateBasic() error {
	if err := validateOrgID(m.ID); err != nil {
		return err
	}
	if err := ValidateApprovals(m.Approvals, false); err != nil {
		return err
	}
	if m.DepositFrom != "" {
		if err := CheckAccount(m.DepositFrom); err != nil {
			return fmt.Errorf("deposit_from: %w", err)
		}
	}
	return validateText("name", m.Name, 128)
}

// OrgAdmin adds or removes an admin (a did:key) of an organisation.
type OrgAdmin struct {
	Org   string `cbor:"1,keyasint"`
	Admin string `cbor:"2,keyasint"`
	add   bool
}

// NewOrgAdminAdd and NewOrgAdminRemove build admin changes.
func NewOrgAdminAdd(org, admin string) *OrgAdmin { return &OrgAdmin{Org: org, Admin: admin, add: true} }

func NewOrgAdminRemove(org, admin string) *OrgAdmin { return &OrgAdmin{Org: org, Admin: admin} }

func (m *OrgAdmin) Kind() string {
	if m.add {
		return KindOrgAdminAdd
	}
	return KindOrgAdminRemove
}

func (m *OrgAdmin) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if _, err := identity.ParseDID(m.Admin); err != nil {
		return fmt.Errorf("admin: %w", err)
	}
	return nil
}

// DeviceRegister registers a device in an organisation. Proof is the
// device key's signature over PossessionMessage(chainID, org, device): the
// device holds the private key of the id it is registered under.
type DeviceRegister struct {
	Org      string            `cbor:"1,keyasint"`
	Device   string            `cbor:"2,keyasint"` // did:key of the device key; the device's id for life
	Class    string            `cbor:"3,keyasint,omitempty"`
	Firmware string            `cbor:"4,keyasint,omitempty"`
	Labels   map[string]string `cbor:"5,keyasint,omitempty"`
	Proof    []byte            `cbor:"6,keyasint"`
	// AttestedBy names a gateway (a device of class "gateway" in the same
	// organisation) that signs readings on behalf of a device too weak to sign.
	AttestedBy string `cbor:"7,keyasint,omitempty"`
}

func (*DeviceRegister) Kind() string { return KindDeviceRegister }

func (m *DeviceRegister) ValidateBasic() error {
	if err := validateOrgID(m.Org); err != nil {
		return err
	}
	if _, err := identity.ParseDID(m.Device); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if err := ValidateMeta(m.Class, m.Firmware, m.Labels); err != nil {
		return err
	}
	if len(m.Proof) == 0 {
		return errors.New("proof of possession is missing")
	}
	if m.AttestedBy != "" {
		if err := checkDIDSyntax(m.AttestedBy); err != nil {
			return fmt.Errorf("attested_by: %w", err)
		}
	}
	return nil
}

// DeviceRotate replaces a device's key; the id stays. Proof is the new key's
// signature over RotationMessage(chainID, device, newKey).
type DeviceRotate struct {
	Device string `cbor:"1,keyasint"`
	NewKey string `cbor:"2,keyasint"` // did:key
	Proof  []byte `cbor:"3,keyasint"`
}

func (*DeviceRotate) Kind() string { return KindDeviceRotate }

func (m *DeviceRotate) ValidateBasic() error {
	if err := checkDIDSyntax(m.Device); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if _, err := identity.ParseDID(m.NewKey); err != nil {
		return fmt.Errorf("new key: %w", err)
	}
	if len(m.Proof) == 0 {
		return errors.New("proof of possession of the new key is missing")
	}
	return nil
}

// DeviceStatus suspends, resumes or revokes a device (the kind decides which).
type DeviceStatus struct {
	Device string `cbor:"1,keyasint"`
	Reason string `cbor:"2,keyasint,omitempty"`
	To     Status `cbor:"-"`
}

// NewDeviceStatus builds a status change to the given status.
func NewDeviceStatus(device string, to Status, reason string) *DeviceStatus {
	return &DeviceStatus{Device: device, Reason: reason, To: to}
}

func (m *DeviceStatus) Kind() string {
	switch m.To {
	case StatusSuspended:
		return KindDeviceSuspend
	case StatusRevoked:
		return KindDeviceRevoke
	default:
		return KindDeviceResume
	}
}

func (m *DeviceStatus) ValidateBasic() error {
	if err := checkDIDSyntax(m.Device); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	return validateText("reason", m.Reason, 256)
}

// DeviceUpdate changes a device's metadata. Empty Class/Firmware leave them
// unchanged; Labels are set, RemoveLabels removed.
type DeviceUpdate struct {
	Device       string            `cbor:"1,keyasint"`
	Class        string            `cbor:"2,keyasint,omitempty"`
	Firmware     string            `cbor:"3,keyasint,omitempty"`
	Labels       map[string]string `cbor:"4,keyasint,omitempty"`
	RemoveLabels []string          `cbor:"5,keyasint,omitempty"`
}

func (*DeviceUpdate) Kind() string { return KindDeviceUpdate }

func (m *DeviceUpdate) ValidateBasic() error {
	if err := checkDIDSyntax(m.Device); err != nil {
		return fmt.Errorf("device: %w", err)
	}
	if m.Class == "" && m.Firmware == "" && len(m.Labels) == 0 && len(m.RemoveLabels) == 0 {
		return errors.New("nothing to update")
	}
	for _, k := range m.RemoveLabels {
		if err := validateLabelKey(k); err != nil {
			return err
		}
	}
	return ValidateMeta(m.Class, m.Firmware, m.Labels)
}

// GrantAdd lets Subject perform Action on Resource. Grantor is "org:<id>"
// (signed by an admin of that org) or "device:<id>" (signed by that device);
// the resource must belong to the grantor.
type GrantAdd struct {
	Grantor  string `cbor:"1,keyasint"`
	Subject  string `cbor:"2,keyasint"`
	Action   string `cbor:"3,keyasint"`
	Resource string `cbor:"4,keyasint"`
	Expiry   int64  `cbor:"5,keyasint,omitempty"` // last height at which the grant holds; 0 = no expiry
	Quota    uint64 `cbor:"6,keyasint,omitempty"` // uses per day enforced at the edge; 0 = unlimited
}

func (*GrantAdd) Kind() string { return KindGrantAdd }

func (m *GrantAdd) ValidateBasic() error {
	if _, err := ParsePrincipal(m.Grantor); err != nil {
		return fmt.Errorf("grantor: %w", err)
	}
	if _, err := ParsePrincipal(m.Subject); err != nil {
		return fmt.Errorf("subject: %w", err)
	}
	if err := ValidateAction(m.Action); err != nil {
		return err
	}
	if _, err := ParseResource(m.Resource); err != nil {
		return err
	}
	if m.Expiry < 0 {
		return errors.New("expiry must not be negative")
	}
	return nil
}

// GrantRevoke revokes a grant by id.
type GrantRevoke struct {
	ID uint64 `cbor:"1,keyasint"`
}

func (*GrantRevoke) Kind() string { return KindGrantRevoke }

func (m *GrantRevoke) ValidateBasic() error {
	if m.ID == 0 {
		return errors.New("grant id is missing")
	}
	return nil
}

// ValidatorUpdate sets a validator's power (0 removes it). It is accepted
// when validators holding more than 2/3 of the current power have signed
// ValidatorUpdateMessage(chainID, Seq, PubKey, Power) with their consensus keys.
type ValidatorUpdate struct {
	PubKey    []byte     `cbor:"1,keyasint"` // Ed25519 consensus key, 32 bytes
	Power     int64      `cbor:"2,keyasint"`
	Seq       uint64     `cbor:"3,keyasint"` // must equal the ledger's next validator-update sequence
	Approvals []Approval `cbor:"4,keyasint"`
}

// Approval is one validator's signature of a ValidatorUpdate.
type Approval struct {
	Validator []byte `cbor:"1,keyasint"` // Ed25519 consensus public key, 32 bytes
	Signature []byte `cbor:"2,keyasint"`
}

func (*ValidatorUpdate) Kind() string { return KindValidatorUpdate }

func (m *ValidatorUpdate) ValidateBasic() error {
	if len(m.PubKey) != 32 {
		return fmt.Errorf("validator key is %d bytes; want a 32-byte Ed25519 key", len(m.PubKey))
	}
	if m.Power < 0 || m.Power > maxValidatorPower {
		return fmt.Errorf("power %d is out of range 0..%d", m.Power, maxValidatorPower)
	}
	return ValidateApprovals(m.Approvals, true)
}

const maxValidatorPower int64 = 1 << 40

// PossessionMessage is what a device key signs to prove possession when it is registered.
func PossessionMessage(chainID, org, device string) []byte {
	return MustMarshal([]string{"thingnet/register/v1", chainID, org, device})
}

// RotationMessage is what a device's new key signs when it replaces the old one.
func RotationMessage(chainID, device, newKey string) []byte {
	return MustMarshal([]string{"thingnet/rotate/v1", chainID, device, newKey})
}

// ValidatorUpdateMessage is what each approving validator signs.
func ValidatorUpdateMessage(chainID string, seq uint64, pubKey []byte, power int64) []byte {
	return MustMarshal([]any{"thingnet/validator-update/v1", chainID, seq, pubKey, power})
}

// Principal is who can hold grants: an organisation or a device.
type Principal struct {
	Type string // "org" or "device"
	ID   string
}

func (p Principal) String() string { return p.Type + ":" + p.ID }

// ParsePrincipal parses "org:<id>" or "device:<did>".
func ParsePrincipal(s string) (Principal, error) {
	typ, id, ok := strings.Cut(s, ":")
	if !ok {
		return Principal{}, fmt.Errorf("%q is not org:<id> or device:<did>", s)
	}
	switch typ {
	case "org":
		if err := validateOrgID(id); err != nil {
			return Principal{}, err
		}
	case "device":
		if err := checkDIDSyntax(id); err != nil {
			return Principal{}, fmt.Errorf("%q: %w", s, err)
		}
	case "agreement": // an agreement holds grants (e.g. "manage" to quarantine a device)
		if n, err := strconv.ParseUint(id, 10, 64); err != nil || n == 0 || strconv.FormatUint(n, 10) != id {
			return Principal{}, fmt.Errorf("%q: agreement id %q is not a number from 1", s, id)
		}
	default:
		return Principal{}, fmt.Errorf("%q: type %q is not org, device or agreement", s, typ)
	}
	return Principal{Type: typ, ID: id}, nil
}

// Resource is what a grant is about: an organisation's or a device's
// resource, optionally narrowed by a path ("device:<did>/readings").
type Resource struct {
	Owner Principal
	Path  string
}

func (r Resource) String() string {
	if r.Path == "" {
		return r.Owner.String()
	}
	return r.Owner.String() + "/" + r.Path
}

// ParseResource parses "org:<id>[/path]" or "device:<did>[/path]".
func ParseResource(s string) (Resource, error) {
	if len(s) > 512 {
		return Resource{}, errors.New("resource is longer than 512 bytes")
	}
	owner, path, slash := strings.Cut(s, "/")
	p, err := ParsePrincipal(owner)
	if err != nil {
		return Resource{}, fmt.Errorf("resource: %w", err)
	}
	if slash && path == "" { // one spelling per resource: "org:x", not also "org:x/"
		return Resource{}, fmt.Errorf("resource %q ends with '/': leave the slash out or name a path", s)
	}
	for _, seg := range strings.Split(path, "/") {
		if path != "" && seg == "" {
			return Resource{}, fmt.Errorf("resource %q has an empty path segment", s)
		}
		if err := validatePathSegment(seg); err != nil {
			return Resource{}, fmt.Errorf("resource %q: %w", s, err)
		}
	}
	return Resource{Owner: p, Path: path}, nil
}

func validateOrgID(id string) error {
	if len(id) < 2 || len(id) > 63 {
		return fmt.Errorf("organisation id %q must be 2 to 63 characters", id)
	}
	for i, c := range id {
		ok := c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' && i > 0
		if !ok {
			return fmt.Errorf("organisation id %q may hold only a-z, 0-9 and '-' (not first)", id)
		}
	}
	return nil
}

func ValidateAction(a string) error {
	if a == "" || len(a) > 32 {
		return fmt.Errorf("action %q must be 1 to 32 characters", a)
	}
	for _, c := range a {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("action %q may hold only a-z, 0-9, '.', '-' and '_'", a)
		}
	}
	return nil
}

func validatePathSegment(s string) error {
	for _, c := range s {
		if c < 0x21 || c > 0x7e || c == '*' {
			return fmt.Errorf("path segment %q has a character that is not printable ASCII (or is '*')", s)
		}
	}
	return nil
}

func validateText(field, s string, max int) error {
	if len(s) > max {
		return fmt.Errorf("%s is longer than %d bytes", field, max)
	}
	for _, c := range s {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s holds a control character", field)
		}
	}
	return nil
}

func validateLabelKey(k string) error {
	if k == "" || len(k) > 64 {
		return fmt.Errorf("label key %q must be 1 to 64 characters", k)
	}
	return validateText("label key", k, 64)
}

func ValidateMeta(class, firmware string, labels map[string]string) error {
	if err := validateText("class", class, 64); err != nil {
		return err
	}
	if err := validateText("firmware", firmware, 128); err != nil {
		return err
	}
	if len(labels) > 32 {
		return fmt.Errorf("%d labels; at most 32", len(labels))
	}
	for _, k := range sortedKeys(labels) {
		if err := validateLabelKey(k); err != nil {
			return err
		}
		if err := validateText("label "+k, labels[k], 256); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// checkDIDSyntax checks that s looks like a did:key, without decoding the
// key: enough for a reference to a device, which must exist in state anyway
// (a malformed id is simply not found). Keys that enter the state (a device
// registered, a key rotated in, an admin added) are parsed in full.
func checkDIDSyntax(s string) error {
	rest, ok := strings.CutPrefix(s, "did:key:z")
	if !ok || len(rest) < 40 || len(s) > 256 {
		return fmt.Errorf("%q is not a did:key", s)
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !(c >= '1' && c <= '9' || c >= 'A' && c <= 'Z' && c != 'I' && c != 'O' || c >= 'a' && c <= 'z' && c != 'l') {
			return fmt.Errorf("%q is not a did:key: %q is not base58", s, c)
		}
	}
	return nil
}

// ClassGateway is the device class of gateways: devices that bring other
// devices in, attest readings for devices too weak to sign, and anchor their
// verifiable data log on the ledger.
const ClassGateway = "gateway"

// DataAnchor records the size and RFC 6962 root of the signing gateway's
// data log. Consistency proves that the log of the previous anchor is a
// prefix of this one (empty for the first anchor), so the ledger itself
// refuses a gateway that rewrites its history.
type DataAnchor struct {
	Size        uint64   `cbor:"1,keyasint"`
	Root        []byte   `cbor:"2,keyasint"` // 32 bytes
	Consistency [][]byte `cbor:"3,keyasint,omitempty"`
}

// MaxConsistencyProof bounds the hashes of an anchor's consistency proof
// (a log of 2^64 entries needs at most 2*64).
const MaxConsistencyProof = 128

func (*DataAnchor) Kind() string { return KindDataAnchor }

func (m *DataAnchor) ValidateBasic() error {
	if m.Size == 0 {
		return errors.New("anchored log size must be 1 or more")
	}
	if len(m.Root) != 32 {
		return fmt.Errorf("root is %d bytes; want a 32-byte SHA-256 hash", len(m.Root))
	}
	if len(m.Consistency) > MaxConsistencyProof {
		return fmt.Errorf("consistency proof has %d hashes; at most %d", len(m.Consistency), MaxConsistencyProof)
	}
	for i, h := range m.Consistency {
		if len(h) != 32 {
			return fmt.Errorf("consistency proof hash %d is %d bytes; want 32", i, len(h))
		}
	}
	return nil
}

// NewMsg returns an empty message of kind, to decode into; false if the
// kind is unknown.
func NewMsg(kind string) (Msg, bool) {
	f, ok := msgTypes[kind]
	if !ok {
		return nil, false
	}
	return f(), true
}
