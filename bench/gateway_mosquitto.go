package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FindMosquitto returns the mosquitto broker binary: bin if set, else
// "mosquitto" on PATH, else /usr/sbin/mosquitto (Debian's, which is not on
// a normal user's PATH). The error says how to install it.
func FindMosquitto(bin string) (string, error) {
	if bin != "" {
		p, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("%w: %s: %v", errNoMosquitto, bin, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p, nil
	}
	if p, err := exec.LookPath("/usr/sbin/mosquitto"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%w (on PATH or in /usr/sbin); install the broker with `apt-get install mosquitto`", errNoMosquitto)
}

// mosquittoVersion is the first line of `mosquitto -h`, e.g. "mosquitto version 2.0.11".
func mosquittoVersion(bin string) string {
	out, _ := exec.Command(bin, "-h").CombinedOutput() // exits 3 after printing its help
	line, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(line)
}

// mosquittoBroker is a mosquitto process started for one run.
type mosquittoBroker struct {
	cmd    *exec.Cmd
	addr   string
	dir    string
	stderr *bytes.Buffer
	exited chan struct{}
}

// startMosquitto starts bin on a free 127.0.0.1 port with a minimal
// configuration: anonymous clients allowed, no authentication, and
// persistence off (or on, saved every second, in a directory of its own).
// Nothing else is set: mosquitto's defaults hold.
func startMosquitto(ctx context.Context, dir, bin string, persistence bool) (*mosquittoBroker, error) {
	home, err := os.MkdirTemp(dir, "mosquitto-")
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	// Debian's mosquitto, started as root, drops to the "mosquitto" user:
	// let it write its persistence file.
	_ = os.Chmod(home, 0o777)
	port, err := gwFreePort()
	if err != nil {
		os.RemoveAll(home)
		return nil, err
	}
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\n", port)
	if persistence {
		conf += fmt.Sprintf("persistence true\npersistence_location %s/\nautosave_interval 1\n", home)
	} else {
		conf += "persistence false\n"
	}
	conf += "log_dest stderr\nlog_type error\nlog_type warning\n"
	confPath := filepath.Join(home, "mosquitto.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		os.RemoveAll(home)
		return nil, fmt.Errorf("bench: %w", err)
	}
	b := &mosquittoBroker{addr: fmt.Sprintf("127.0.0.1:%d", port), dir: home, stderr: &bytes.Buffer{}, exited: make(chan struct{})}
	b.cmd = exec.Command(bin, "-c", confPath)
	b.cmd.Stdout = b.stderr
	b.cmd.Stderr = b.stderr
	b.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	if err := b.cmd.Start(); err != nil {
		os.RemoveAll(home)
		return nil, fmt.Errorf("bench: starting %s: %w", bin, err)
	}
	go func() {
		_ = b.cmd.Wait()
		close(b.exited)
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.addr, time.Second)
		if err == nil {
			c.Close()
			return b, nil
		}
		select {
		case <-b.exited:
			os.RemoveAll(home)
			return nil, fmt.Errorf("bench: mosquitto exited at start: %s", strings.TrimSpace(b.stderr.String()))
		case <-ctx.Done():
			b.stop()
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.stop()
			return nil, fmt.Errorf("bench: mosquitto does not accept connections on %s: %s", b.addr, strings.TrimSpace(b.stderr.String()))
		}
	}
}

// stop ends the broker (SIGTERM, then SIGKILL after 5 s) and removes its directory.
func (b *mosquittoBroker) stop() error {
	defer os.RemoveAll(b.dir)
	_ = b.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		return nil
	case <-time.After(5 * time.Second):
		_ = b.cmd.Process.Kill()
		<-b.exited
		return errors.New("bench: mosquitto did not stop on SIGTERM; killed")
	}
}

func gwFreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("bench: finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// runMosquittoLoad runs the client load against a fresh mosquitto. The
// broker does not look at the payloads, so a device that has published all
// its envelopes starts them over.
func runMosquittoLoad(ctx context.Context, dir, bin string, persistence bool, w *gatewayWorkload, pool [][][]byte, batch int, cfg GatewayBenchConfig) (LoadRun, error) {
	var b *mosquittoBroker
	var err error
	for range 3 { // the free port may be taken before mosquitto binds it
		if b, err = startMosquitto(ctx, dir, bin, persistence); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return LoadRun{}, err
	}
	l := &clientLoad{addr: b.addr, w: w, pool: pool, batch: batch, cfg: cfg, cycle: true, brokerPID: b.cmd.Process.Pid}
	res, err := l.run(ctx)
	return res, errors.Join(err, b.stop())
}
