package meshnode

import (
	"context"
	"io"
	"time"

	"github.com/ipfs/go-cid"

	"github.com/thingnet/thingnet/device"
	"github.com/thingnet/thingnet/files"
	"github.com/thingnet/thingnet/mesh"
)

// Options configure the device's mesh node.
type Options struct {
	Listen    []string // default: TCP and QUIC on all interfaces
	Bootstrap []string // gateways' mesh addresses (Device.GatewayMeshAddr)
	MDNS      bool
	TTL       time.Duration // how long proved answers are kept; default one minute
	Handler   func(context.Context, *mesh.Delivery) error
}

// Start starts d's node on the mesh: its libp2p key is the device key,
// its ledger answers are proved by the light client (Device.MeshAuthority),
// and its replay windows are kept in the state directory
// (Device.ReplayStore), so a restarted device refuses messages it took
// before.
func Start(d *device.Device, o Options) (*mesh.Node, error) {
	ws, err := d.ReplayStore()
	if err != nil {
		return nil, err
	}
	return mesh.New(mesh.Config{
		Key: d.Key(), ID: d.ID(), Authority: d.MeshAuthority(o.TTL), Listen: o.Listen, Bootstrap: o.Bootstrap,
		MDNS: o.MDNS, Handler: o.Handler, Replay: ws, Logger: d.Logger(),
	})
}

// Files is s as the device's file source (Device.UseFiles), for firmware
// images over bitswap.
func Files(s *files.Service) device.FileSource { return fileSource{s} }

type fileSource struct{ s *files.Service }

func (f fileSource) Stat(ctx context.Context, root cid.Cid) (uint64, error) {
	return f.s.Stat(ctx, root)
}

func (f fileSource) Get(ctx context.Context, root cid.Cid, w io.Writer) error {
	_, err := f.s.Get(ctx, root, w, files.GetOptions{})
	return err
}
