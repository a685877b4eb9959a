package device

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"

	"github.com/thingnet/thingnet/internal/atomicfile"
	"github.com/thingnet/thingnet/record"
)

// CommandsFile holds the id of the last command the device executed (8
// bytes, big-endian) in the state directory.
const CommandsFile = "commands"

// Commands returns the commands the ledger records for this device (an
// agreement's effects) after the last one acknowledged with AckCommand,
// oldest first, each proved against a header the light client verified.
// A gateway can withhold commands (they come later, from another
// gateway), never forge or alter one.
func (d *Device) Commands(ctx context.Context) ([]record.Command, error) {
	after, err := d.lastCommand()
	if err != nil {
		return nil, err
	}
	var out []record.Command
	err = d.verified(ctx, "fetching commands", func(gw Gateway) error {
		out = nil
		c := d.apiClient(gw)
		var page struct {
			Height int64            `json:"height"`
			Items  []record.Command `json:"items"`
		}
		if err := c.Get(ctx, "/v1/devices/"+url.PathEscape(d.id)+"/commands?after="+strconv.FormatUint(after, 10), &page); err != nil {
			return err
		}
		for _, cand := range page.Items {
			key := record.CommandKey(d.id, cand.ID)
			var p record.Proof
			q := url.Values{"key": {hex.EncodeToString(key)}, "height": {strconv.FormatInt(page.Height, 10)}}
			if err := c.Get(ctx, "/v1/proofs?"+q.Encode(), &p); err != nil {
				return fmt.Errorf("proof of command %d: %w", cand.ID, err)
			}
			if err := d.verifyProof(ctx, &p, key); err != nil {
				return fmt.Errorf("command %d: %w", cand.ID, err)
			}
			if p.Value == nil {
				return fmt.Errorf("command %d is listed, but proved absent", cand.ID)
			}
			var cmd record.Command
			if err := record.Unmarshal(p.Value, &cmd); err != nil {
				return fmt.Errorf("command %d: %w", cand.ID, err)
			}
			if cmd.ID != cand.ID || cmd.Device != d.id || cmd.ID <= after {
				return fmt.Errorf("the record under command %d is command %d of %s", cand.ID, cmd.ID, cmd.Device)
			}
			out = append(out, cmd)
		}
		return nil
	})
	return out, err
}

// AckCommand records that the command id was executed: Commands returns
// only later ones from now on, across restarts.
func (d *Device) AckCommand(id uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if id <= d.acked {
		return nil
	}
	if d.cfg.stateDir != "" {
		if err := atomicfile.WriteFile(filepath.Join(d.cfg.stateDir, CommandsFile), binary.BigEndian.AppendUint64(nil, id)); err != nil {
			return fmt.Errorf("device: saving the last command: %w", err)
		}
	}
	d.acked = id
	return nil
}

func (d *Device) lastCommand() (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ackLoaded || d.cfg.stateDir == "" {
		return d.acked, nil
	}
	b, err := os.ReadFile(filepath.Join(d.cfg.stateDir, CommandsFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return 0, fmt.Errorf("device: reading the last command: %w", err)
	case len(b) != 8:
		return 0, fmt.Errorf("device: %s is %d bytes, want 8", CommandsFile, len(b))
	default:
		d.acked = binary.BigEndian.Uint64(b)
	}
	d.ackLoaded = true
	return d.acked, nil
}
