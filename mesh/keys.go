package mesh

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"fmt"

	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/identity"
)

// libp2pKey returns the libp2p form of a device's ledger key, so that the
// host's peer id is the device's key.
func libp2pKey(k *identity.Key) (lcrypto.PrivKey, error) {
	switch s := k.Signer().(type) {
	case ed25519.PrivateKey:
		priv, _, err := lcrypto.KeyPairFromStdKey(&s)
		return priv, err
	case *ecdsa.PrivateKey:
		priv, _, err := lcrypto.KeyPairFromStdKey(s)
		return priv, err
	}
	return nil, fmt.Errorf("mesh: the host needs its key in memory (a %T cannot be used by libp2p)", k.Signer())
}

// PeerID is the libp2p peer id of a ledger key.
func PeerID(pub identity.PublicKey) (peer.ID, error) {
	var lk lcrypto.PubKey
	var err error
	switch pub.Alg {
	case identity.Ed25519:
		lk, err = lcrypto.UnmarshalEd25519PublicKey(pub.Bytes)
	default:
		std, ok := pub.CryptoPublicKey().(*ecdsa.PublicKey)
		if !ok {
			return "", fmt.Errorf("mesh: no libp2p form of a %v key", pub.Alg)
		}
		lk, err = lcrypto.ECDSAPublicKeyFromPubKey(*std)
	}
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(lk)
}

// peerKey returns the ledger form of a peer's public key: from the
// peerstore (learnt in the secure handshake), or from the peer id itself
// (Ed25519 ids embed the key; P-256 ids are only its hash).
func (n *Node) peerKey(p peer.ID) (identity.PublicKey, error) {
	lk := n.host.Peerstore().PubKey(p)
	if lk == nil {
		var err error
		if lk, err = p.ExtractPublicKey(); err != nil {
			return identity.PublicKey{}, fmt.Errorf("mesh: peer %s: key unknown: %w", p, err)
		}
	}
	return ledgerKey(lk)
}

func ledgerKey(lk lcrypto.PubKey) (identity.PublicKey, error) {
	std, err := lcrypto.PubKeyToStdKey(lk)
	if err != nil {
		return identity.PublicKey{}, err
	}
	if e, ok := std.(*ed25519.PublicKey); ok {
		std = *e
	}
	return identity.PublicKeyOf(std)
}
