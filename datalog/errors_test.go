package datalog

import (
	"bytes"
	"errors"
	"testing"
)

func TestAppendRejectsBadInput(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, 3)
	big := bytes.Repeat([]byte{'x'}, MaxEntrySize+1)
	largest := bytes.Repeat([]byte{'x'}, MaxEntrySize)
	tooMany := make([][]byte, MaxAppendBytes/MaxEntrySize+1)
	for i := range tooMany {
		tooMany[i] = largest
	}
	tests := []struct {
		name    string
		entries [][]byte
		want    error
	}{
		{"nil batch", nil, ErrInvalidEntry},
		{"empty batch", [][]byte{}, ErrInvalidEntry},
		{"empty entry", [][]byte{[]byte("a"), {}}, ErrInvalidEntry},
		{"nil entry", [][]byte{nil}, ErrInvalidEntry},
		{"oversize entry", [][]byte{[]byte("a"), big}, ErrTooLarge},
		{"oversize batch", tooMany, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			first, err := l.Append(tc.entries)
			if !errors.Is(err, tc.want) || first != 0 {
				t.Errorf("Append(%s) = %d, %v; want 0, error wrapping %v", tc.name, first, err, tc.want)
			}
			if got := l.Size(); got != 3 {
				t.Errorf("Size() after failed Append = %d; want 3", got)
			}
		})
	}
	// The largest entry is accepted.
	if first, err := l.Append([][]byte{largest}); err != nil || first != 3 {
		t.Errorf("Append(%d-byte entry) = %d, %v; want 3, nil", MaxEntrySize, first, err)
	}
	if got, err := l.Entry(3); err != nil || !bytes.Equal(got, largest) {
		t.Errorf("Entry(3) = %d bytes, %v; want %d bytes, nil", len(got), err, MaxEntrySize)
	}
}

func TestReadsRejectBadInput(t *testing.T) {
	l, _ := openTest(t)
	mustAppend(t, l, 10)
	call := map[string]func(a, b uint64) error{
		"Entry":  func(a, _ uint64) error { _, err := l.Entry(a); return err },
		"RootAt": func(a, _ uint64) error { _, err := l.RootAt(a); return err },
		"InclusionProof": func(a, b uint64) error {
			_, err := l.InclusionProof(a, b)
			return err
		},
		"ConsistencyProof": func(a, b uint64) error {
			_, err := l.ConsistencyProof(a, b)
			return err
		},
	}
	tests := []struct {
		fn   string
		a, b uint64
		want error
	}{
		{"Entry", 10, 0, ErrNotFound},
		{"Entry", 1 << 63, 0, ErrNotFound},
		{"RootAt", 11, 0, ErrOutOfRange},
		{"InclusionProof", 5, 5, ErrOutOfRange},
		{"InclusionProof", 6, 5, ErrOutOfRange},
		{"InclusionProof", 0, 0, ErrOutOfRange},
		{"InclusionProof", 0, 11, ErrOutOfRange},
		{"InclusionProof", 10, 10, ErrOutOfRange},
		{"ConsistencyProof", 6, 5, ErrOutOfRange},
		{"ConsistencyProof", 5, 11, ErrOutOfRange},
		{"ConsistencyProof", 11, 10, ErrOutOfRange},
		{"ConsistencyProof", 12, 11, ErrOutOfRange},
	}
	for _, tc := range tests {
		if err := call[tc.fn](tc.a, tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s(%d, %d) = %v; want error wrapping %v", tc.fn, tc.a, tc.b, err, tc.want)
		}
	}
	// Edge cases that are valid.
	valid := []struct {
		fn   string
		a, b uint64
	}{
		{"Entry", 0, 0}, {"Entry", 9, 0}, {"RootAt", 0, 0}, {"RootAt", 10, 0},
		{"InclusionProof", 0, 1}, {"InclusionProof", 9, 10},
		{"ConsistencyProof", 0, 0}, {"ConsistencyProof", 0, 10}, {"ConsistencyProof", 10, 10},
	}
	for _, tc := range valid {
		if err := call[tc.fn](tc.a, tc.b); err != nil {
			t.Errorf("%s(%d, %d) = %v; want nil", tc.fn, tc.a, tc.b, err)
		}
	}
}

func TestOpenRejectsEmptyDir(t *testing.T) {
	if l, err := Open(Config{}); err == nil {
		l.Close()
		t.Fatalf("Open(Config{}) = nil error; want an error")
	}
}

func TestEmptyLog(t *testing.T) {
	l, _ := openTest(t)
	size, root := l.Root()
	if want := emptyRoot(); size != 0 || root != want {
		t.Errorf("Root() = %d, %x; want 0, %x", size, root, want)
	}
	// SHA-256 of the empty string.
	if got := root; got[0] != 0xe3 || got[31] != 0x55 {
		t.Errorf("Root() = %x; want e3b0c442...7852b855", got)
	}
	if _, err := l.Entry(0); !errors.Is(err, ErrNotFound) {
		t.Errorf("Entry(0) = %v; want error wrapping ErrNotFound", err)
	}
}
