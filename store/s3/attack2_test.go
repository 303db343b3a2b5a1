package s3

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mediaslot/store"
	"mediaslot/testserver"
)

// A Delete cut off between its two deletions (the sealed object gone, the
// incoming one that a replayed PUT wrote still there) is retried by the
// sweeper: the retry must take the incoming object too, not stop at
// "not found" and leave it in the bucket for ever.
func TestDeleteRetriedAfterHalfDelete(t *testing.T) {
	t.Parallel()
	gw := testserver.VersityGW(t)
	s := newStore(t, gw)
	ctx := t.Context()
	body := []byte("the picture Alice sent")
	u, h, err := s.PresignPut(ctx, "k", int64(len(body)), "image/jpeg", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code := do(t, http.MethodPut, u, h.Get("Content-Type"), body); code != http.StatusOK {
		t.Fatalf("PUT: %d", code)
	}
	if _, err := s.Seal(ctx, "k", int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if code := do(t, http.MethodPut, u, h.Get("Content-Type"), body); code != http.StatusOK {
		t.Fatalf("replayed PUT: %d", code)
	}
	// the first half of a Delete: the sealed object only
	k, _ := s.objectKey("k")
	if _, err := gw.Client().DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &gw.Bucket, Key: aws.String(*k)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "k"); err != nil && !errors.Is(err, store.ErrNotFound) {
		t.Fatal(err)
	}
	if n := countKeys(t, gw, s.prefix); n != 0 {
		t.Errorf("a retried Delete left %d objects under %s", n, s.prefix)
	}
}
