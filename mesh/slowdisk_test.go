package mesh

import (
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/thingnet/thingnet/mesh/message"
)

// slowDisk is Pebble's in-memory file system whose fsyncs take a set time
// (a disk of known speed, where the shared disk's are noise) or wait until
// the test lets them go (held).
type slowDisk struct {
	vfs.FS
	mu      sync.Mutex
	delay   time.Duration
	held    chan struct{} // fsyncs wait until it is closed; nil: none held
	syncing chan struct{} // gets a value when an fsync starts waiting on held
}

func newSlowDisk(delay time.Duration) *slowDisk {
	return &slowDisk{FS: vfs.NewMem(), delay: delay, syncing: make(chan struct{}, 64)}
}

// hold makes the next fsyncs wait until the returned release is called.
func (d *slowDisk) hold() (release func()) {
	ch := make(chan struct{})
	d.mu.Lock()
	d.held = ch
	d.mu.Unlock()
	return func() {
		d.mu.Lock()
		d.held = nil
		d.mu.Unlock()
		close(ch)
	}
}

func (d *slowDisk) sync() {
	d.mu.Lock()
	held, delay := d.held, d.delay
	d.mu.Unlock()
	if held != nil {
		select {
		case d.syncing <- struct{}{}:
		default:
		}
		<-held
	}
	time.Sleep(delay) // the disk's speed
}

func (d *slowDisk) wrap(f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return slowFile{f, d}, nil
}

func (d *slowDisk) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return d.wrap(d.FS.Create(name, c))
}

func (d *slowDisk) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	return d.wrap(d.FS.ReuseForWrite(old, name, c))
}

func (d *slowDisk) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	return d.wrap(d.FS.OpenReadWrite(name, c, opts...))
}

type slowFile struct {
	vfs.File
	d *slowDisk
}

func (f slowFile) Sync() error     { f.d.sync(); return f.File.Sync() }
func (f slowFile) SyncData() error { f.d.sync(); return f.File.SyncData() }
func (f slowFile) SyncTo(n int64) (bool, error) {
	f.d.sync()
	return f.File.SyncTo(n)
}

// TestMailboxSlowFsync: while a deposit's fsync hangs, the mailbox keeps
// answering (its counters, a device's pull, another sender's checks): the
// fsync is waited for outside the mailbox's lock. The deposit is
// acknowledged only once its fsync is done.
func TestMailboxSlowFsync(t *testing.T) {
	disk := newSlowDisk(0)
	s := newMailboxSetup(t, MailboxConfig{fs: disk})
	ctx := ctxT(t)
	a := startNode(t, s.l, s.aKey, nil)
	connect(t, a, s.g)
	env, _ := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("first")})
	if res, err := a.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Err() != nil {
		t.Fatalf("deposit: %v %v", err, res)
	}

	release := disk.hold()
	defer func() {
		if release != nil {
			release()
		}
	}()
	acked := make(chan error, 1)
	go func() {
		env, _ := a.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("second")})
		res, err := a.Deposit(ctx, s.gKey.ID(), env)
		if err == nil {
			err = res.Err()
		}
		acked <- err
	}()
	select {
	case <-disk.syncing:
	case <-time.After(10 * time.Second):
		t.Fatal("the deposit's fsync never started")
	}
	// Its fsync hangs; the mailbox does not.
	answered := make(chan struct{})
	go func() {
		defer close(answered)
		if st := s.g.Stats(); st.MailboxDepth != 2 {
			t.Errorf("depth %d while the second deposit syncs; want 2 (applied, not yet durable)", st.MailboxDepth)
		}
		if b, err := s.g.mailbox.list(s.bKey.ID(), 64); err != nil || len(b.Items) != 2 {
			t.Errorf("a pull's batch while a deposit syncs: %v %v", b, err)
		}
		c := startNode(t, s.l, s.cKey, nil) // no grant: refused by the checks, which need the lock
		connect(t, c, s.g)
		env, _ := c.Compose(message.Outgoing{To: s.bKey.ID(), Body: []byte("spam")})
		if res, err := c.Deposit(ctx, s.gKey.ID(), env); err != nil || res.Status != message.StatusNotGranted {
			t.Errorf("another sender's deposit while one syncs: %v %v", err, res)
		}
	}()
	select {
	case <-answered:
	case <-time.After(10 * time.Second):
		t.Fatal("the mailbox stopped answering while a deposit's fsync hung")
	}
	select {
	case err := <-acked:
		t.Fatalf("a deposit was answered (%v) before its fsync was done", err)
	default:
	}
	release()
	release = nil
	select {
	case err := <-acked:
		if err != nil {
			t.Fatalf("deposit after its fsync: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the deposit was not acknowledged after its fsync")
	}
}
