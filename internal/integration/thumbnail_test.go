package integration

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mediaslot/testserver"
)

// transparent is an image of any size that takes no memory: png.Encode
// writes it as 16-bit RGBA (its colour model is RGBA64) of zeros, which
// compress a thousandfold.
type transparent struct{ image.Rectangle }

func (transparent) ColorModel() color.Model { return color.RGBA64Model }
func (transparent) At(int, int) color.Color { return color.RGBA64{} }

// peakRSS returns the most memory a process has held, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM")
	return 0
}

// Issue 12: relayed messages pointing at a 500 KB PNG of 8000x8000 16-bit
// pixels took mediaslot from 34 MB to 553 MB each. They are relayed
// without a thumbnail now, and mediaslot stays under its ceiling
// (docs/OPERATIONS.md: 128 MiB of decoding on top of its own memory).
func TestRelayThumbnailBomb(t *testing.T) {
	srv := testserver.Prosody(t)
	m := startMediaslot(t, srv, "")
	testserver.WaitFor(t, 5*time.Second, "privileges", func() bool { return strings.Contains(m.log.String(), "server privileges") })
	path := filepath.Join(t.TempDir(), "bomb.png")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := png.Encode(f, transparent{image.Rect(0, 0, 8000, 8000)}); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	const n = 3
	var links []string
	for range n {
		links = append(links, slixUpload(t, srv, "alice", srv.ComponentJID(), path).GetURL)
	}
	before := peakRSS(t, m.cmd.Process.Pid)

	bobRecv := startSlixRelay(t, srv, "receive", "bob", strconv.Itoa(n), 30)
	testserver.WaitFor(t, 10*time.Second, "bob online", func() bool { return strings.Contains(m.log.String(), "presence from=bob@localhost/") })
	var senders []*slixRelay
	for i, link := range links {
		payload := `<body>` + link + `</body><x xmlns='jabber:x:oob'><url>` + link + `</url></x>`
		senders = append(senders, startSlixRelay(t, srv, "send", "alice", relayStanza(t, srv, fmt.Sprint("bomb", i), payload, "bob"), 1))
	}
	for _, s := range senders {
		if out := s.wait(t); out.Error != nil || len(out.Errors) > 0 {
			t.Errorf("alice: %+v", out)
		}
	}
	got := bobRecv.wait(t)
	if got.Error != nil || len(got.Messages) != n {
		t.Fatalf("bob: %+v", got)
	}
	for _, msg := range got.Messages {
		if strings.Contains(msg, "urn:xmpp:thumbs:1") || !strings.Contains(msg, "jabber:x:oob") {
			t.Errorf("bob's message: %.600s", msg)
		}
	}
	after := peakRSS(t, m.cmd.Process.Pid)
	t.Logf("mediaslot peak RSS: %d MiB before the messages, %d MiB after", before>>20, after>>20)
	if after > before+64<<20 {
		t.Errorf("peak RSS grew from %d MiB to %d MiB", before>>20, after>>20)
	}
}
