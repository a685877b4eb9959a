package lightclient

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzStateUnmarshal decodes arbitrary device state files (the trusted
// header and validator set a device keeps across restarts): anything but a
// consistent signed header is ErrBadState, and a state that decodes encodes
// back to the same bytes.
func FuzzStateUnmarshal(f *testing.F) {
	src := synthChain(f, "fuzz-state", 3, 4)
	lb := src.blocks[3]
	good, err := (&State{ChainID: "fuzz-state", Header: lb.SignedHeader, Validators: lb.ValidatorSet}).MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add([]byte{stateVersion})
	f.Fuzz(func(t *testing.T, b []byte) {
		var st State
		if err := st.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrBadState) {
				t.Fatalf("error %v does not wrap ErrBadState", err)
			}
			return
		}
		again, err := st.MarshalBinary()
		if err != nil {
			t.Fatalf("a decoded state does not encode: %v", err)
		}
		var st2 State
		if err := st2.UnmarshalBinary(again); err != nil {
			t.Fatalf("a re-encoded state does not decode: %v", err)
		}
		if !bytes.Equal(st2.Header.Hash(), st.Header.Hash()) || !bytes.Equal(st2.Validators.Hash(), st.Validators.Hash()) {
			t.Fatal("the re-encoded state holds another header or validator set")
		}
	})
}
