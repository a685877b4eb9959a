package files

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
)

// AddPrivate encrypts r under key (Encrypt) and adds the ciphertext. The
// CID and size are the ciphertext's: what providers hold and the manifest
// names. progress counts plaintext bytes.
func (s *Service) AddPrivate(ctx context.Context, r io.Reader, key []byte, progress Progress) (Added, error) {
	if _, err := newGCM(key); err != nil {
		return Added{}, err
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := Encrypt(pw, &countReader{r: r, progress: progress}, key)
		pw.CloseWithError(err)
	}()
	a, err := s.Add(ctx, pr, nil)
	pr.CloseWithError(errors.New("files: add stopped"))
	return a, err
}

// GetPrivate fetches the ciphertext root and writes its plaintext under key
// to w. Nothing is written past a segment that does not open.
func (s *Service) GetPrivate(ctx context.Context, root cid.Cid, key []byte, w io.Writer, o GetOptions) (int64, error) {
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	cw := &countWriter{w: w, progress: o.Progress}
	go func() {
		d, err := NewDecrypter(pr, key)
		if err != nil {
			pr.CloseWithError(err)
			errc <- err
			return
		}
		_, err = io.Copy(cw, d)
		pr.CloseWithError(err)
		errc <- err
	}()
	o.Progress = nil
	_, gerr := s.Get(ctx, root, pw, o)
	pw.CloseWithError(gerr)
	derr := <-errc
	if derr != nil {
		return cw.n, fmt.Errorf("files: decrypting %s: %w", root, derr)
	}
	if gerr != nil {
		return cw.n, gerr
	}
	return cw.n, nil
}
