package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"mediaslot/store"
	"mediaslot/store/storetest"
	"mediaslot/testserver"
)

// A presigned PUT URL stays valid until it expires, and every server takes
// a second PUT to it: once sealed, what the key serves must not change.
func TestSealOutOfReachOfTheURL(t *testing.T) {
	t.Parallel()
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) {
		s := newStore(t, gw)
		ctx := t.Context()
		good, evil := []byte("the picture Alice sent"), []byte("a picture somebody else")
		u, h, err := s.PresignPut(ctx, "k", int64(len(good)), "image/jpeg", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if code := do(t, http.MethodPut, u, h.Get("Content-Type"), good); code != http.StatusOK {
			t.Fatalf("PUT: %d", code)
		}
		if info, err := s.Seal(ctx, "k", int64(len(good))); err != nil || info.Size != int64(len(good)) || info.ContentType != "image/jpeg" {
			t.Fatalf("Seal = %+v, %v", info, err)
		}
		for range 2 {
			if code := do(t, http.MethodPut, u, h.Get("Content-Type"), evil[:len(good)]); code != http.StatusOK {
				t.Fatalf("second PUT: %d (the server refuses replays: tell docs/S3.md)", code)
			}
		}
		if got := storetest.ReadAll(t, s, "k"); !bytes.Equal(got, good) {
			t.Errorf("after a replayed PUT Open reads %q", got)
		}
		g, err := s.PresignGet(ctx, "k", time.Minute, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if got := httpGet(t, g); !bytes.Equal(got, good) {
			t.Errorf("after a replayed PUT the presigned GET reads %q", got)
		}
		// Sealing again changes nothing either, and Delete takes what the
		// replays left under the incoming key too.
		if info, err := s.Seal(ctx, "k", int64(len(good))); err != nil || info.Size != int64(len(good)) {
			t.Fatalf("second Seal = %+v, %v", info, err)
		}
		if got := storetest.ReadAll(t, s, "k"); !bytes.Equal(got, good) {
			t.Errorf("after a second Seal Open reads %q", got)
		}
		if err := s.Delete(ctx, "k"); err != nil {
			t.Fatal(err)
		}
		if n := countKeys(t, gw, s.prefix); n != 0 {
			t.Errorf("Delete left %d objects under %s", n, s.prefix)
		}
	})
}

// An upload of the wrong size (a server that kept a truncated body) is
// deleted, so that the client can try again; nothing is sealed.
func TestSealWrongSize(t *testing.T) {
	t.Parallel()
	gw := testserver.VersityGW(t)
	s := newStore(t, gw)
	ctx := t.Context()
	if _, err := gw.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: &gw.Bucket, Key: aws.String(s.incomingKey("k")), Body: strings.NewReader("trunc"),
	}); err != nil {
		t.Fatal(err)
	}
	if info, err := s.Seal(ctx, "k", 100); !errors.Is(err, store.ErrSize) || info.Size != 5 {
		t.Fatalf("Seal of a truncated upload = %+v, %v", info, err)
	}
	if _, err := s.Seal(ctx, "k", 100); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after a wrong upload Seal = %v, want ErrNotFound", err)
	}
	if n := countKeys(t, gw, s.prefix); n != 0 {
		t.Errorf("%d objects left under %s", n, s.prefix)
	}
}

// The public URL is the object's: prefix and key, escaped.
func TestPublicURL(t *testing.T) {
	s := mustNew(t, Options{Endpoint: "http://127.0.0.1:1", Region: "us-east-1", Bucket: "b", AccessKeyID: "ak", SecretAccessKey: "sk", Prefix: "chat media/"})
	for base, want := range map[string]string{
		"https://cdn.example.net/media/": "https://cdn.example.net/media/chat%20media/0123abc",
		"https://cdn.example.net":        "https://cdn.example.net/chat%20media/0123abc",
	} {
		if got, err := s.PublicURL(base, "0123abc"); err != nil || got != want {
			t.Errorf("PublicURL(%q) = %q, %v, want %q", base, got, err, want)
		}
	}
	if _, err := s.PublicURL("https://cdn.example.net", "../x"); !errors.Is(err, store.ErrKey) {
		t.Errorf("PublicURL of an invalid key: %v", err)
	}
}

// KeepCORS sets the rule once a server that was down at start comes back;
// a server without bucket CORS (MinIO, rclone) gets a warning that says
// what to do.
func TestKeepCORS(t *testing.T) {
	t.Parallel()
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) {
		s := newStore(t, gw)
		gw.Stop()
		origins := []string{"https://web.example.net"}
		done := make(chan error, 1)
		attempts := make(chan struct{}, 1)
		ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
		defer cancel()
		go func() {
			done <- s.keepCORS(ctx, origins, 10*time.Millisecond, func() {
				select {
				case attempts <- struct{}{}:
				default:
				}
			})
		}()
		<-attempts // one attempt failed on the stopped server
		gw.Start()
		err := <-done
		if !gw.BucketCORS {
			if !errors.Is(err, ErrCORSUnsupported) || !strings.Contains(err.Error(), "cors_allow_origin") {
				t.Fatalf("KeepCORS on %s = %v", gw.Name, err)
			}
			t.Log(err)
			return
		}
		if err != nil {
			t.Fatalf("KeepCORS = %v", err)
		}
		out, err := gw.Client().GetBucketCors(t.Context(), &s3.GetBucketCorsInput{Bucket: &gw.Bucket})
		if err != nil || len(out.CORSRules) != 1 || out.CORSRules[0].AllowedOrigins[0] != origins[0] {
			t.Fatalf("bucket CORS after KeepCORS: %+v, %v", out, err)
		}
	})
}

func httpGet(t *testing.T, u string) []byte {
	t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET: %s, %v", resp.Status, err)
	}
	return b
}

func countKeys(t *testing.T, gw *testserver.S3, prefix string) int {
	t.Helper()
	out, err := gw.Client().ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: &gw.Bucket, Prefix: &prefix})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Contents)
}

// Seal relies on the server refusing a copy whose source no longer has the
// ETag that Seal checked the size of (x-amz-copy-source-if-match).
func TestServerRefusesCopyOfChangedSource(t *testing.T) {
	t.Parallel()
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) {
		s := newStore(t, gw)
		ctx := t.Context()
		c := gw.Client()
		src := s.incomingKey("k")
		put := func(body string) *string {
			t.Helper()
			out, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: &gw.Bucket, Key: &src, Body: strings.NewReader(body)})
			if err != nil {
				t.Fatal(err)
			}
			return out.ETag
		}
		old := put("first")
		put("later")
		_, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket: &s.bucket, Key: aws.String(s.prefix + "k"),
			CopySource: aws.String(gw.Bucket + "/" + src), CopySourceIfMatch: old,
		})
		var ae smithy.APIError
		if !errors.As(err, &ae) || ae.ErrorCode() != "PreconditionFailed" {
			t.Fatalf("copy of a changed source = %v, want PreconditionFailed", err)
		}
		if _, err := s.Stat(ctx, "k"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("the refused copy left an object: %v", err)
		}
	})
}
