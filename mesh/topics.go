package mesh

import (
	"context"
	"fmt"
	"strings"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	lcrypto "github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"github.com/thingnet/thingnet/identity"
	"github.com/thingnet/thingnet/mesh/message"
)

// Topics belong to organisations: a topic is named "<org>/<name>" and its
// ledger resource is "org:<org>/topic/<name>". Grant actions are
// "publish" (KindPublish) and "subscribe".
const ActionSubscribe = "subscribe"

// TopicResource is the ledger resource of a topic "<org>/<name>".
func TopicResource(topic string) string {
	org, name, _ := strings.Cut(topic, "/")
	return "org:" + org + "/topic/" + name
}

type topicState struct {
	t      *pubsub.Topic
	sub    *pubsub.Subscription
	cancel context.CancelFunc
}

func (n *Node) pubsubTopic(name string) string {
	return "thingnet/" + n.auth.ChainID() + "/" + name
}

func checkTopic(name string) error {
	org, rest, ok := strings.Cut(name, "/")
	if !ok || org == "" || rest == "" || len(name) > message.MaxIDLen || strings.ContainsAny(name, " \t\n*") || strings.Contains(rest, "/") {
		return fmt.Errorf("mesh: topic %q must be <org>/<name>, at most %d characters, without spaces", name, message.MaxIDLen)
	}
	return nil
}

// join joins a topic once, with its validator.
func (n *Node) join(name string) (*topicState, error) {
	if n.ps == nil {
		return nil, fmt.Errorf("mesh: pub/sub is off on this node")
	}
	if err := checkTopic(name); err != nil {
		return nil, err
	}
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	if ts, ok := n.topics[name]; ok {
		return ts, nil
	}
	pt := n.pubsubTopic(name)
	if err := n.ps.RegisterTopicValidator(pt, func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		return n.validateTopic(name, m)
	}); err != nil {
		return nil, fmt.Errorf("mesh: topic %s: %w", name, err)
	}
	t, err := n.ps.Join(pt)
	if err != nil {
		return nil, fmt.Errorf("mesh: joining topic %s: %w", name, err)
	}
	ts := &topicState{t: t}
	n.topics[name] = ts
	return ts, nil
}

// validateTopic runs before a topic message is delivered or forwarded:
// a message that fails is dropped here and the peer that forwarded it is
// penalized, so an unauthorized publisher's messages stop at the first
// honest peer.
func (n *Node) validateTopic(name string, m *pubsub.Message) pubsub.ValidationResult {
	n.stats.received.Add(1)
	env, err := message.Decode(m.Data)
	if err == nil && (env.Topic != name || env.Chain != n.auth.ChainID()) {
		err = fmt.Errorf("%w: message for topic %q on %s arrived on %q", message.ErrWrongReceiver, env.Topic, env.Chain, name)
	}
	var sender *message.Device
	if err == nil {
		sender, err = n.checkSender(env)
	}
	if err == nil {
		// The original publisher (signed by libp2p under StrictSign) must
		// be the sender.
		pub, perr := n.publisherKey(m)
		if perr != nil || !pub.Equal(sender.Key) {
			err = fmt.Errorf("%w: topic message from %s published by another key", message.ErrPeerMismatch, env.From)
		}
	}
	if err == nil {
		var ok bool
		ok, err = n.auth.Granted(sender, message.KindPublish, TopicResource(name))
		if err == nil && !ok {
			err = fmt.Errorf("%w: %s may not publish on %s", message.ErrNotGranted, env.From, name)
		}
	}
	if err == nil {
		err = env.Verify(sender.Key)
	}
	if err == nil {
		var fresh bool
		fresh, err = n.replay.Accept("topic\x00"+name+"\x00"+env.From, env.Seq)
		if err == nil && !fresh {
			err = fmt.Errorf("%w: %d from %s on %s", message.ErrReplay, env.Seq, env.From, name)
		}
	}
	if err != nil {
		n.stats.refused[message.StatusOf(err)].Add(1)
		n.log.Debug("mesh: topic message refused", "topic", name, "err", err)
		return pubsub.ValidationReject
	}
	m.ValidatorData = &Delivery{Envelope: env, Sender: sender, Plaintext: env.Body, Peer: m.ReceivedFrom, Via: "topic"}
	return pubsub.ValidationAccept
}

// topicPeerFilter: topic messages go only to peers whose device may
// subscribe to the topic (or publish on it).
func (n *Node) topicPeerFilter(p peer.ID, topic string) bool {
	prefix := "thingnet/" + n.auth.ChainID() + "/"
	name, ok := strings.CutPrefix(topic, prefix)
	if !ok {
		return false
	}
	d, err := n.peerDevice(p)
	if err != nil || !d.Active {
		return false
	}
	for _, act := range []string{ActionSubscribe, message.KindPublish} {
		if ok, err := n.auth.Granted(d, act, TopicResource(name)); err == nil && ok {
			return true
		}
	}
	return false
}

// peerDevice is the active device a peer is: the device whose id is the
// did:key of the peer's key, or the one it proved it is.
func (n *Node) peerDevice(p peer.ID) (*message.Device, error) {
	pub, err := n.peerKey(p)
	if err != nil {
		return nil, err
	}
	return n.keyDevice(p, pub)
}

// keyDevice is the device whose current key is pub, peer p's key.
func (n *Node) keyDevice(p peer.ID, pub identity.PublicKey) (*message.Device, error) {
	d, err := n.auth.Device(pub.DID())
	if err != nil {
		if d, err = n.knownPeerDevice(p); err != nil {
			return nil, err
		}
	}
	if !d.Key.Equal(pub) {
		return nil, fmt.Errorf("%w: peer %s is not %s's current key", message.ErrPeerMismatch, p, d.ID)
	}
	return d, nil
}

// Subscribe joins a topic this device may subscribe to; its messages go to
// the Handler (Via "topic").
func (n *Node) Subscribe(name string) error {
	me, err := n.auth.Device(n.id)
	if err != nil {
		return err
	}
	if ok, err := n.auth.Granted(me, ActionSubscribe, TopicResource(name)); err != nil {
		return err
	} else if !ok {
		return fmt.Errorf("%w: %s may not subscribe to %s (grant %q on %s)", message.ErrNotGranted, n.id, name, ActionSubscribe, TopicResource(name))
	}
	ts, err := n.join(name)
	if err != nil {
		return err
	}
	n.topicsMu.Lock()
	defer n.topicsMu.Unlock()
	if ts.sub != nil {
		return nil
	}
	sub, err := ts.t.Subscribe()
	if err != nil {
		return fmt.Errorf("mesh: subscribing to %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(n.ctx)
	ts.sub, ts.cancel = sub, cancel
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer sub.Cancel()
		for {
			m, err := sub.Next(ctx)
			if err != nil {
				return
			}
			d, ok := m.ValidatorData.(*Delivery)
			if !ok || n.cfg.Handler == nil {
				continue
			}
			if err := n.cfg.Handler(ctx, d); err == nil {
				n.stats.delivered.Add(1)
			}
		}
	}()
	return nil
}

// Publish signs body as a message on the topic and publishes it.
func (n *Node) Publish(ctx context.Context, name, typ string, body []byte) error {
	ts, err := n.join(name)
	if err != nil {
		return err
	}
	env, err := n.Compose(message.Outgoing{Topic: name, Type: typ, Body: body})
	if err != nil {
		return err
	}
	if err := ts.t.Publish(ctx, env); err != nil {
		return fmt.Errorf("mesh: publishing on %s: %w", name, err)
	}
	n.stats.sent.Add(1)
	return nil
}

// publisherKey is the original publisher's key: carried in the message
// when the peer id does not embed it (P-256), else from the peer id.
func (n *Node) publisherKey(m *pubsub.Message) (identity.PublicKey, error) {
	if len(m.Key) > 0 {
		lk, err := lcrypto.UnmarshalPublicKey(m.Key)
		if err != nil {
			return identity.PublicKey{}, err
		}
		return ledgerKey(lk)
	}
	return n.peerKey(m.GetFrom())
}
