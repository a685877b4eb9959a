package mesh

import "github.com/libp2p/go-libp2p/core/routing"

// Routing is the node's Kademlia DHT as a content and peer router (files
// announce and find providers with it), or nil when the node runs without
// a DHT (Config.DHT false).
func (n *Node) Routing() routing.Routing {
	if n.dht == nil {
		return nil
	}
	return n.dht
}
