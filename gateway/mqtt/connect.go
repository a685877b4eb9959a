package mqtt

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/thingnet/thingnet/gateway/edge"
)

// maxDeviceID bounds a username before anything looks it up (a did:key id is
// at most 256 bytes).
const maxDeviceID = 256

// refusal is why a CONNECT is refused.
type refusal int

const (
	refuseBadCredentials refusal = iota
	refuseNotAuthorized
	refuseRateLimited
	refuseClientID
	refuseUnavailable
)

// codes returns r's Refused* reason and its CONNACK reason code (v5) and
// return code (v3.1.1).
func (r refusal) codes() (reason string, v5, v3 byte) {
	switch r {
	case refuseBadCredentials:
		return RefusedBadCredentials, 0x86, 0x04 // bad user name or password
	case refuseNotAuthorized:
		return RefusedNotAuthorized, 0x87, 0x05 // not authorized
	case refuseRateLimited:
		return RefusedRateLimited, 0x97, 0x05 // quota exceeded / not authorized
	case refuseClientID:
		return RefusedClientID, 0x85, 0x02 // client identifier not valid / identifier rejected
	default:
		return RefusedUnavailable, 0x88, 0x03 // server unavailable
	}
}

// OnConnect admits or refuses a CONNECT, cheapest checks first: the source
// address's connection rate, the username and client id, the device id's
// connection rate, and only then the token's signature (Authenticate). A
// refusal writes its own CONNACK and returns an error, on which mochi closes
// the connection without writing another.
func (h *hook) OnConnect(cl *mochi.Client, pk packets.Packet) error {
	ip, addrKey := edge.Source(cl.Net.Remote)
	if !h.cfg.Limits.AllowConnect(addrKey) {
		h.stats.rateLimited.Add(LimitConnectSource)
		return h.refuse(cl, refuseRateLimited, "too many connections from "+ip+"; retry later")
	}
	dev := string(pk.Connect.Username)
	if err := checkDeviceID(dev); err != nil {
		return h.refuse(cl, refuseBadCredentials, err.Error())
	}
	if id := pk.Connect.ClientIdentifier; id != "" && id != dev {
		return h.refuse(cl, refuseClientID, fmt.Sprintf("client id %.64q must be empty or the device id (the username)", id))
	}
	if !h.cfg.Limits.AllowConnect(edge.DeviceKey(dev)) {
		h.stats.rateLimited.Add(LimitConnectDevice)
		return h.refuse(cl, refuseRateLimited, "too many connections for this device; retry later")
	}
	token, err := decodeToken(pk.Connect.Password)
	if err != nil {
		return h.refuse(cl, refuseBadCredentials, err.Error())
	}
	ctx, cancel := context.WithTimeout(h.ctx, h.cfg.ConnectTimeout)
	err = h.cfg.Auth.Authenticate(ctx, dev, token)
	cancel()
	switch {
	case err == nil:
	case errors.Is(err, edge.ErrBadToken):
		return h.refuse(cl, refuseBadCredentials, err.Error())
	case errors.Is(err, edge.ErrUnknownDevice), errors.Is(err, edge.ErrInactiveDevice):
		return h.refuse(cl, refuseNotAuthorized, err.Error())
	case h.ctx.Err() != nil:
		return h.refuse(cl, refuseUnavailable, "the gateway is shutting down")
	default:
		h.log.Warn("mqtt: cannot authenticate a device", "device", dev, "remote", cl.Net.Remote, "error", err)
		return h.refuse(cl, refuseUnavailable, "cannot check the token now; retry later")
	}
	h.admit(cl, dev)
	return nil
}

// admit sets up the session of an authenticated device.
func (h *hook) admit(cl *mochi.Client, dev string) {
	// The session is keyed by the device id, so a device can take over only
	// its own session, never another device's.
	cl.ID = dev
	if cl.Properties.Props.AssignedClientID != "" { // v5 with an empty client id: tell it its id
		cl.Properties.Props.AssignedClientID = dev
	}
	// A will is published without passing Ingest or the publish ACL, so it
	// could carry an unverified "reading" or target another topic: drop it.
	if cl.Properties.Will.Flag != 0 {
		h.log.Debug("mqtt: will message ignored", "device", dev, "topic", cl.Properties.Will.TopicName)
		cl.Properties.Will = mochi.Will{}
	}
	// Cap the keepalive (0 means none) so an idle connection ends; mochi
	// tells a v5 client the server's keepalive in the CONNACK.
	maxKA := uint16(h.cfg.MaxKeepalive / time.Second)
	if ka := cl.State.Keepalive; ka == 0 || ka > maxKA {
		cl.State.Keepalive = maxKA
		cl.State.ServerKeepalive = true
	}
}

// refuse writes a CONNACK refusing cl for r and returns the error that makes
// mochi close the connection. detail goes to the log and, for v5 clients,
// into the CONNACK's reason string.
func (h *hook) refuse(cl *mochi.Client, r refusal, detail string) error {
	reason, v5, v3 := r.codes()
	h.stats.connRefused.Add(reason)
	ack := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ReasonCode: v3}
	if isV5(cl) {
		ack.ReasonCode = v5
		ack.Properties.ReasonString = truncate(detail, 200)
	}
	if err := cl.WritePacket(ack); err != nil {
		h.log.Debug("mqtt: writing a refusing CONNACK failed", "remote", cl.Net.Remote, "error", err)
	}
	h.log.Debug("mqtt: connection refused", "remote", cl.Net.Remote, "reason", reason,
		"username", truncate(string(cl.Properties.Username), maxDeviceID), "detail", detail)
	return fmt.Errorf("mqtt: connection from %s refused (%s): %s", cl.Net.Remote, reason, detail)
}

// checkDeviceID does the checks on a username that need no lookup: a device
// id is a short string that can stand in a topic level.
func checkDeviceID(id string) error {
	switch {
	case id == "":
		return errors.New("username must be the device id")
	case len(id) > maxDeviceID:
		return fmt.Errorf("username of %d bytes is too long for a device id", len(id))
	case !utf8.ValidString(id) || strings.ContainsAny(id, "/+#\x00"):
		return errors.New("username is not a device id (it must not contain / + # or NUL)")
	}
	return nil
}

// maxPassword bounds a CONNECT password before it is decoded (a CWT is a
// few hundred bytes).
const maxPassword = 4096

// decodeToken returns the CWT in a CONNECT password: either its bytes, as a
// library client sends them, or their base64url text without padding (RFC
// 4648 §5, the form identity.EncodeCWTPassword makes), as command-line
// clients must. A CWT is a CBOR tag or array, whose first byte is at least
// 0x80, and base64url text is ASCII, so the two forms cannot be confused.
func decodeToken(password []byte) ([]byte, error) {
	switch {
	case len(password) == 0:
		return nil, errors.New("password must be a CWT signed by the device key")
	case len(password) > maxPassword:
		return nil, fmt.Errorf("password of %d bytes is too long for a CWT", len(password))
	case password[0] >= 0x80:
		return password, nil
	case bytes.ContainsAny(password, "\r\n"): // the decoder would skip them
		return nil, errors.New("password is neither a CWT nor its base64url text: it has a line break")
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(string(password))
	if err != nil {
		return nil, errors.New("password is neither a CWT nor its base64url text (without padding)")
	}
	return b, nil
}

// truncate returns s as valid UTF-8 (MQTT strings must be) cut to at most
// about n bytes on a character boundary.
func truncate(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
