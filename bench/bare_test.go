package bench

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
)

const benchFileSize = 64 << 20

func bareServer(b *testing.B) (*httptest.Server, *http.Client) {
	b.Helper()
	h, err := NewBareHandler(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(h)
	b.Cleanup(srv.Close)
	return srv, &http.Client{Transport: &http.Transport{WriteBufferSize: 64 << 10, ReadBufferSize: 64 << 10}}
}

func barePut(b *testing.B, c *http.Client, u string, size int64) {
	req, err := http.NewRequest(http.MethodPut, u, Body(size))
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		b.Fatalf("PUT: %s", resp.Status)
	}
}

// BenchmarkBarePut is upload's BenchmarkPut against BareHandler: the same
// 64 MiB over loopback TCP, the same fsyncs, nothing else.
func BenchmarkBarePut(b *testing.B) {
	srv, c := bareServer(b)
	b.SetBytes(benchFileSize)
	for i := range b.N {
		name := srv.URL + "/f" + strconv.Itoa(i)
		barePut(b, c, name, benchFileSize)
		b.StopTimer()
		bareDelete(b, c, name)
		b.StartTimer()
	}
}

// BenchmarkBareGet is upload's BenchmarkGet against BareHandler.
func BenchmarkBareGet(b *testing.B) {
	srv, c := bareServer(b)
	barePut(b, c, srv.URL+"/f", benchFileSize)
	b.SetBytes(benchFileSize)
	b.ResetTimer()
	for range b.N {
		resp, err := c.Get(srv.URL + "/f")
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if n != benchFileSize {
			b.Fatalf("GET: %d bytes", n)
		}
	}
}

func bareDelete(b *testing.B, c *http.Client, u string) {
	req, err := http.NewRequest(http.MethodDelete, u, nil)
	if err != nil {
		b.Fatal(err)
	}
	resp, err := c.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	resp.Body.Close()
}
