package bench

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mediaslot/internal/dbfile/dbfiletest"
	"mediaslot/store/disk"
	"mediaslot/upload"
	"mediaslot/upload/slotstore/boltslots"
)

// BenchmarkPutVsBare alternates a 64 MiB PUT through mediaslot's HTTP
// handler into the disk store with the same PUT to BareHandler on the same
// disk, so that both see the same disk weather; each iteration does one of
// each after a sync(2). It reports both throughputs and their ratio.
func BenchmarkPutVsBare(b *testing.B) {
	db, w := dbfiletest.New(b)
	st, err := disk.New(filepath.Join(b.TempDir(), "files"))
	if err != nil {
		b.Fatal(err)
	}
	rs, err := boltslots.Open(db, w, boltslots.Options{})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := upload.New(upload.Options{
		Policy:  upload.Policy{MaxFileSize: 1 << 30, SlotLifetime: 5 * time.Minute, AllowedDomains: []string{"example.net"}},
		Records: rs, Store: st, Key: []byte("0123456789abcdef0123456789abcdef"), PublicURL: "http://mediaslot",
	})
	if err != nil {
		b.Fatal(err)
	}
	ms := httptest.NewServer(svc.Handler())
	defer ms.Close()
	bare, c := bareServer(b)
	var msTime, bareTime time.Duration
	ctx := context.Background()
	for i := range b.N {
		b.StopTimer()
		slot, err := svc.Issue(ctx, upload.Request{Owner: "a@example.net", Domain: "example.net", Filename: "v.mp4", Size: benchFileSize, ContentType: "video/mp4"})
		if err != nil {
			b.Fatal(err)
		}
		u := strings.Replace(slot.PutURL, "http://mediaslot", ms.URL, 1)
		syscall.Sync()
		b.StartTimer()
		t0 := time.Now()
		req, _ := http.NewRequest(http.MethodPut, u, Body(benchFileSize))
		req.ContentLength = benchFileSize
		req.Header.Set("Content-Type", "video/mp4")
		resp, err := c.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			b.Fatalf("PUT: %s", resp.Status)
		}
		msTime += time.Since(t0)
		b.StopTimer()
		_ = st.Delete(ctx, slot.ID)
		syscall.Sync()
		b.StartTimer()
		name := bare.URL + "/f" + strconv.Itoa(i)
		t0 = time.Now()
		barePut(b, c, name, benchFileSize)
		bareTime += time.Since(t0)
		b.StopTimer()
		bareDelete(b, c, name)
		b.StartTimer()
	}
	b.SetBytes(2 * benchFileSize)
	mbps := func(d time.Duration) float64 { return float64(b.N) * benchFileSize / 1e6 / d.Seconds() }
	b.ReportMetric(mbps(msTime), "mediaslot-MB/s")
	b.ReportMetric(mbps(bareTime), "bare-MB/s")
	b.ReportMetric(bareTime.Seconds()/msTime.Seconds(), "mediaslot/bare")
}
