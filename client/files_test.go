package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/png"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mediaslot/client/aesgcm"
)

func encodePNG(t *testing.T, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Noise is the worst case for PNG compression: the thumbnail must still fit.
func TestThumbnailBounds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []image.Point{{1920, 1080}, {300, 2000}, {50, 40}, {1, 1}} {
		img := image.NewRGBA(image.Rect(0, 0, size.X, size.Y))
		for i := range img.Pix {
			img.Pix[i] = byte(rng.UintN(256))
		}
		th, err := MakeThumbnail(bytes.NewReader(encodePNG(t, img)))
		if err != nil {
			t.Fatalf("%v: %v", size, err)
		}
		if len(th.Data) > ThumbnailMaxBytes || th.Width > ThumbnailMaxSide || th.Height > ThumbnailMaxSide || th.Width < 1 || th.Height < 1 {
			t.Errorf("%v: thumbnail %dx%d, %d bytes", size, th.Width, th.Height, len(th.Data))
		}
		cfg, err := png.DecodeConfig(bytes.NewReader(th.Data))
		if err != nil || cfg.Width != th.Width || cfg.Height != th.Height {
			t.Errorf("%v: thumbnail is not the PNG it claims: %v %+v", size, err, cfg)
		}
		// aspect ratio kept (within rounding), never enlarged
		if size.X >= ThumbnailMaxSide && size.X >= size.Y && th.Width != ThumbnailMaxSide && len(th.Data) < ThumbnailMaxBytes/2 {
			t.Errorf("%v: shrank to %dx%d although small enough", size, th.Width, th.Height)
		}
		if size.X < ThumbnailMaxSide && (th.Width != size.X || th.Height != size.Y) {
			t.Errorf("%v: enlarged to %dx%d", size, th.Width, th.Height)
		}
	}
}

// A smooth picture keeps full colour at full size.
func TestThumbnailOfPhotoLikeImage(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for y := 0; y < 480; y++ {
		for x := 0; x < 640; x++ {
			img.Set(x, y, color.RGBA{uint8(x / 3), uint8(y / 2), 128, 255})
		}
	}
	th, err := MakeThumbnail(bytes.NewReader(encodePNG(t, img)))
	if err != nil {
		t.Fatal(err)
	}
	if th.Width != 96 || th.Height != 72 || len(th.Data) > ThumbnailMaxBytes {
		t.Fatalf("thumbnail %dx%d, %d bytes; want 96x72 within 8 KB", th.Width, th.Height, len(th.Data))
	}
	w, h, err := ImageSize(bytes.NewReader(encodePNG(t, img)))
	if err != nil || w != 640 || h != 480 {
		t.Fatalf("ImageSize %dx%d %v", w, h, err)
	}
}

func TestThumbnailRefusesBombsAndJunk(t *testing.T) {
	if _, err := MakeThumbnail(strings.NewReader("not an image")); err == nil {
		t.Error("thumbnail of junk")
	}
	// a PNG header claiming 100000x100000 pixels
	hdr := encodePNG(t, image.NewGray(image.Rect(0, 0, 1, 1)))
	copy(hdr[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	binary.BigEndian.PutUint32(hdr[29:33], crc32.ChecksumIEEE(hdr[12:29]))
	if _, err := MakeThumbnail(bytes.NewReader(hdr)); err == nil || !strings.Contains(err.Error(), "100000x100000") {
		t.Errorf("decompression bomb: %v", err)
	}
}

func TestSafeName(t *testing.T) {
	long := strings.Repeat("é", 200) + ".jpeg"
	for in, want := range map[string]string{
		"photo.jpg":               "photo.jpg",
		"photo été.jpg":           "photo été.jpg",
		"../../etc/passwd":        "passwd",
		`..\..\windows\evil.exe`:  "evil.exe",
		"..":                      "fallback",
		".":                       "fallback",
		"":                        "fallback",
		"/":                       "fallback",
		".bashrc":                 "bashrc",
		"a\x00b\nc.txt":           "a_b_c.txt",
		"inv\u202egpj.exe":        "invgpj.exe",
		"x:y*z?.txt":              "x_y_z_.txt",
		"trailing. . ":            "trailing",
		"bad\xffutf8.bin":         "bad_utf8.bin",
		"  spaced  ":              "spaced",
		"dir/sub/../file.tar.gz":  "file.tar.gz",
		"C:\\Users\\x\\file.docx": "file.docx",
	} {
		if got := SafeName(in, "fallback"); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
	got := SafeName(long, "x")
	if len(got) > maxNameBytes || !strings.HasSuffix(got, "é.jpeg") {
		t.Errorf("long name: %d bytes, %q", len(got), got[len(got)-12:])
	}
}

func TestNameFromURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://h/file/01/photo%20%C3%A9t%C3%A9.jpg": "photo été.jpg",
		"https://h/a/b/?x=1":                          "b",
		"aesgcm://h/f/x.png#abcd":                     "x.png",
		"https://h":                                   "",
	} {
		if got := NameFromURL(in); got != want {
			t.Errorf("NameFromURL(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSaveUniqueNeverOverwrites(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 3 {
		tmp := filepath.Join(dir, "tmp")
		if err := os.WriteFile(tmp, []byte{byte(i)}, 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := SaveUnique(tmp, dir, "a.txt")
		if err != nil {
			t.Fatal(err)
		}
		paths = append(paths, filepath.Base(p))
		if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("temporary file left behind")
		}
	}
	if strings.Join(paths, ",") != "a.txt,a (1).txt,a (2).txt" {
		t.Fatalf("names %v", paths)
	}
	for i, p := range paths {
		if b, _ := os.ReadFile(filepath.Join(dir, p)); len(b) != 1 || b[0] != byte(i) {
			t.Errorf("%s holds %v, want [%d]", p, b, i)
		}
	}
}

// newHTTPClient is a Client with only the HTTP half, for upload and download tests.
func newHTTPClient(aesgcmOverHTTP bool) *Client {
	return &Client{http: http.DefaultClient, aesgcmOverHTTP: aesgcmOverHTTP}
}

func TestUploadSendsWhatTheSlotSays(t *testing.T) {
	var got *http.Request
	var body []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r
		body, _ = io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
	}))
	defer srv.Close()
	slot := Slot{PutURL: srv.URL + "/put/x?t=secret", GetURL: srv.URL + "/get/x", Headers: []Header{
		{"Authorization", "Bearer abc"}, {"cookie", "c=1"}, {"Expires", "tomorrow"},
		{"X-Evil", "1"}, {"Content-Length", "5"}, {"Authorization", "Bearer\r\nX-Injected: 1"},
	}}
	data := bytes.Repeat([]byte("x"), 100_000)
	var last int64
	status, err := newHTTPClient(false).Upload(context.Background(), slot, bytes.NewReader(data), int64(len(data)), "text/plain", func(n int64) { last = n })
	if err != nil || status != 201 {
		t.Fatalf("Upload: %d %v", status, err)
	}
	if got.Method != http.MethodPut || got.URL.RawQuery != "t=secret" || got.ContentLength != int64(len(data)) || !bytes.Equal(body, data) {
		t.Errorf("PUT %s %s length %d, %d bytes", got.Method, got.URL, got.ContentLength, len(body))
	}
	if got.Header.Get("Authorization") != "Bearer abc" || got.Header.Get("Cookie") != "c=1" || got.Header.Get("Expires") != "tomorrow" || got.Header.Get("Content-Type") != "text/plain" {
		t.Errorf("headers %v", got.Header)
	}
	if got.Header.Get("X-Evil") != "" || got.Header.Get("X-Injected") != "" || len(got.Header.Values("Authorization")) != 1 {
		t.Errorf("disallowed headers sent: %v", got.Header)
	}
	if last != int64(len(data)) {
		t.Errorf("progress ended at %d", last)
	}
}

func TestUploadRefused(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "Content-Length is larger than the size in the slot request", http.StatusRequestEntityTooLarge)
	}))
	defer srv.Close()
	_, err := newHTTPClient(false).Upload(context.Background(), Slot{PutURL: srv.URL + "/p?t=secret"}, strings.NewReader("abc"), 3, "", nil)
	var he *HTTPError
	if !errors.As(err, &he) || he.Status != 413 || !strings.Contains(he.Text, "larger") || strings.Contains(err.Error(), "secret") {
		t.Fatalf("error %v", err)
	}
}

func TestDownload(t *testing.T) {
	plain := bytes.Repeat([]byte("media "), 5000)
	key, err := aesgcm.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := key.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/plain":
			_, _ = w.Write(plain)
		case "/sealed":
			_, _ = w.Write(sealed)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := newHTTPClient(true)

	var buf bytes.Buffer
	if n, err := c.Download(ctx, srv.URL+"/plain", &buf, int64(len(plain))); err != nil || n != int64(len(plain)) || !bytes.Equal(buf.Bytes(), plain) {
		t.Fatalf("plain: %d %v", n, err)
	}
	if _, err := c.Download(ctx, srv.URL+"/plain", io.Discard, int64(len(plain))-1); !errors.Is(err, ErrDownloadTooLarge) {
		t.Errorf("over the limit: %v", err)
	}
	link, err := key.URL(srv.URL+"/sealed", true)
	if err != nil {
		t.Fatal(err)
	}
	buf.Reset()
	if n, err := c.Download(ctx, link, &buf, int64(len(plain))); err != nil || n != int64(len(plain)) || !bytes.Equal(buf.Bytes(), plain) {
		t.Fatalf("aesgcm: %d %v", n, err)
	}
	if _, err := c.Download(ctx, link, io.Discard, int64(len(plain))-1); !errors.Is(err, ErrDownloadTooLarge) {
		t.Errorf("aesgcm over the limit: %v", err)
	}
	other, _ := aesgcm.NewKey()
	wrong, _ := other.URL(srv.URL+"/sealed", true)
	if _, err := c.Download(ctx, wrong, io.Discard, int64(len(plain))); !errors.Is(err, aesgcm.ErrAuth) {
		t.Errorf("wrong key: %v", err)
	}
	if _, err := c.Download(ctx, srv.URL+"/missing", io.Discard, 10); err == nil {
		t.Error("404 downloaded")
	}
	if _, err := c.Download(ctx, "file:///etc/passwd", io.Discard, 10); err == nil {
		t.Error("file: URL downloaded")
	}
}
