package device

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/thingnet/thingnet/internal/atomicfile"
	"github.com/thingnet/thingnet/record"
)

// Firmware is an image a device runs: what the no-rollback check compares
// an offer with, and what it reports.
type Firmware struct {
	Vendor  string `json:"vendor,omitempty"`
	Version string `json:"version"`
	Seq     uint64 `json:"seq"` // 0: the factory image (any release is newer)
	Digest  []byte `json:"digest,omitempty"`
	Size    uint64 `json:"size,omitempty"`
}

// Installer puts firmware on the device: a new image goes to the slot
// that is not running (Stage, then write), Install switches to it and
// keeps the previous one for Rollback. What runs, with its sequence
// number, survives restarts, so the no-rollback check holds across them.
type Installer interface {
	// Running is the firmware the device runs now.
	Running() (Firmware, error)
	// Stage prepares the inactive slot for the image of m. Nothing
	// changes for the running image until Install.
	Stage(m *record.FirmwareManifest) (StagedImage, error)
	// Rollback switches back to the previous image, if one is kept.
	Rollback() error
}

// StagedImage is an image being written to the inactive slot.
type StagedImage interface {
	ImageWriter
	// Install switches to the staged image, once the whole image was
	// written and checked; the image that ran is kept for Rollback.
	Install() error
	// Abort discards the staged image; the running one is untouched.
	Abort() error
}

// SlotInstaller is an Installer of two image files (slots "a" and "b")
// and a state file in a directory (by default "firmware" in the device's
// state directory). The state file says which slot runs, with what
// firmware, and which slot holds the previous image; it is replaced
// atomically (write, fsync, rename), so a switch either happened or did
// not, whenever power goes.
type SlotInstaller struct {
	dir string
	mu  sync.Mutex
	st  slotState
}

// SlotStateFile is the name of a SlotInstaller's state file.
const SlotStateFile = "slots.json"

type slotState struct {
	Active   string    `json:"active"` // "a" or "b"
	Running  Firmware  `json:"running"`
	Previous *Firmware `json:"previous,omitempty"` // in the other slot; nil: none kept
}

// OpenSlots opens (or, the first time, creates) the slots in dir. factory
// is the firmware the device was made with (its Seq usually 0); it is
// used only when dir holds no state yet. The running slot's size is
// checked against the state (a full digest check: VerifyRunning).
func OpenSlots(dir string, factory Firmware) (*SlotInstaller, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("device: firmware slots: %w", err)
	}
	s := &SlotInstaller{dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, SlotStateFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
		s.st = slotState{Active: "a", Running: factory}
		if err := s.save(); err != nil {
			return nil, err
		}
		return s, nil
	case err != nil:
		return nil, fmt.Errorf("device: firmware slots: %w", err)
	}
	if s.st, err = parseSlotState(b); err != nil {
		return nil, fmt.Errorf("device: firmware slots: %s: %w", filepath.Join(dir, SlotStateFile), err)
	}
	if s.st.Running.Seq > 0 {
		fi, err := os.Stat(s.slotPath(s.st.Active))
		if err != nil {
			return nil, fmt.Errorf("device: firmware slots: the running image: %w", err)
		}
		if uint64(fi.Size()) != s.st.Running.Size {
			return nil, fmt.Errorf("device: firmware slots: the running image %s is %d bytes; the state says %d", s.slotPath(s.st.Active), fi.Size(), s.st.Running.Size)
		}
	}
	return s, nil
}

// parseSlotState decodes and checks a slots state file.
func parseSlotState(b []byte) (slotState, error) {
	var st slotState
	if err := json.Unmarshal(b, &st); err != nil {
		return slotState{}, err
	}
	if st.Active != "a" && st.Active != "b" {
		return slotState{}, fmt.Errorf("it names slot %q as running; want a or b", st.Active)
	}
	if err := st.Running.check(); err != nil {
		return slotState{}, fmt.Errorf("the running firmware: %w", err)
	}
	if st.Previous != nil {
		if err := st.Previous.check(); err != nil {
			return slotState{}, fmt.Errorf("the previous firmware: %w", err)
		}
	}
	return st, nil
}

// check: an installed release (Seq > 0) has its digest and size.
func (f Firmware) check() error {
	if f.Seq == 0 {
		return nil
	}
	if len(f.Digest) != sha256.Size || f.Size == 0 {
		return fmt.Errorf("release #%d has a %d-byte digest and size %d; want a SHA-256 and a size", f.Seq, len(f.Digest), f.Size)
	}
	return nil
}

func other(slot string) string {
	if slot == "a" {
		return "b"
	}
	return "a"
}

func (s *SlotInstaller) slotPath(slot string) string {
	return filepath.Join(s.dir, "slot-"+slot+".img")
}

// save writes the state atomically. The caller holds mu (or owns s).
func (s *SlotInstaller) save() error {
	b, err := json.MarshalIndent(&s.st, "", "  ")
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(filepath.Join(s.dir, SlotStateFile), b); err != nil {
		return fmt.Errorf("device: firmware slots: saving the state: %w", err)
	}
	return nil
}

// Running is the firmware in the running slot.
func (s *SlotInstaller) Running() (Firmware, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.st.Running, nil
}

// Previous is the firmware kept for Rollback, if any.
func (s *SlotInstaller) Previous() (Firmware, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Previous == nil {
		return Firmware{}, false
	}
	return *s.st.Previous, true
}

// RunningImage is the path of the running slot's image (what a boot
// loader would boot).
func (s *SlotInstaller) RunningImage() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.slotPath(s.st.Active)
}

// VerifyRunning reads the running image and checks it against the
// recorded digest and size.
func (s *SlotInstaller) VerifyRunning() error {
	s.mu.Lock()
	run, path := s.st.Running, s.slotPath(s.st.Active)
	s.mu.Unlock()
	if run.Seq == 0 && len(run.Digest) == 0 {
		return nil // the factory image, not recorded
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return err
	}
	if uint64(n) != run.Size || subtle.ConstantTimeCompare(h.Sum(nil), run.Digest) != 1 {
		return fmt.Errorf("device: the running image %s does not match firmware %s #%d", path, run.Version, run.Seq)
	}
	return nil
}

// Stage truncates the inactive slot for the image of m. The previous
// image kept there is given up first (the state says so before its bytes
// are overwritten), so a crash while writing leaves no rollback pointing
// at half an image.
func (s *SlotInstaller) Stage(m *record.FirmwareManifest) (StagedImage, error) {
	if err := m.Validate(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Previous != nil {
		prev := s.st.Previous
		s.st.Previous = nil
		if err := s.save(); err != nil {
			s.st.Previous = prev
			return nil, err
		}
	}
	slot := other(s.st.Active)
	f, err := os.OpenFile(s.slotPath(slot), os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("device: firmware slot %s: %w", slot, err)
	}
	return &stagedSlot{s: s, slot: slot, f: f, fw: Firmware{Vendor: m.Vendor, Version: m.Version, Seq: m.Seq,
		Digest: append([]byte(nil), m.Digest...), Size: m.Size}}, nil
}

// Rollback switches to the previous image; the image that ran is no
// longer kept (a rollback is not undone).
func (s *SlotInstaller) Rollback() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Previous == nil {
		return errors.New("device: no previous firmware to roll back to")
	}
	old := s.st
	s.st = slotState{Active: other(s.st.Active), Running: *s.st.Previous}
	if err := s.save(); err != nil {
		s.st = old
		return err
	}
	return nil
}

type stagedSlot struct {
	s    *SlotInstaller
	slot string
	f    *os.File
	fw   Firmware
	n    uint64
}

func (g *stagedSlot) Write(p []byte) (int, error) {
	if g.f == nil {
		return 0, errors.New("device: the staged image is closed")
	}
	if g.n+uint64(len(p)) > g.fw.Size {
		return 0, fmt.Errorf("device: the image is longer than the release's %d bytes", g.fw.Size)
	}
	n, err := g.f.Write(p)
	g.n += uint64(n)
	return n, err
}

func (g *stagedSlot) Reset() error {
	if g.f == nil {
		return errors.New("device: the staged image is closed")
	}
	g.n = 0
	if err := g.f.Truncate(0); err != nil {
		return err
	}
	_, err := g.f.Seek(0, io.SeekStart)
	return err
}

// Install syncs the image and switches the running slot to it, keeping
// the image that ran for Rollback.
func (g *stagedSlot) Install() error {
	if g.f == nil {
		return errors.New("device: the staged image is closed")
	}
	if g.n != g.fw.Size {
		g.Abort()
		return fmt.Errorf("device: the staged image is %d bytes of %d", g.n, g.fw.Size)
	}
	err := g.f.Sync()
	if cerr := g.f.Close(); err == nil {
		err = cerr
	}
	g.f = nil
	if err != nil {
		return fmt.Errorf("device: writing firmware slot %s: %w", g.slot, err)
	}
	s := g.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.Active == g.slot {
		return errors.New("device: the staged slot became the running one (two installs at once?)")
	}
	old := s.st
	prev := s.st.Running
	s.st = slotState{Active: g.slot, Running: g.fw, Previous: &prev}
	if err := s.save(); err != nil {
		s.st = old
		return err
	}
	return nil
}

func (g *stagedSlot) Abort() error {
	if g.f == nil {
		return nil
	}
	err := g.f.Truncate(0)
	if cerr := g.f.Close(); err == nil {
		err = cerr
	}
	g.f = nil
	return err
}
