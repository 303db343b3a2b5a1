package s3

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/encoding/httpbinding"

	"mediaslot/store"
)

// incomingDir holds, under the prefix, the objects that presigned PUT URLs
// write. No key under it is a store key (those have no '/'), so what a
// replayed URL writes never reaches a sealed object, and a bucket lifecycle
// rule on <prefix>incoming/ can clear what late PUTs leave behind. (On
// servers that keep objects as files, a store key "incoming" would clash
// with the directory; slot ids are 32 hex digits.)
const incomingDir = "incoming/"

// incomingKey is the key in the bucket that key's presigned PUT URL writes.
func (s *Store) incomingKey(key string) string { return s.prefix + incomingDir + key }

// ErrChanged means the upload was replaced while Seal copied it: nothing
// was sealed, and a later Seal looks at the new upload.
var ErrChanged = errors.New("s3: the upload changed while it was being sealed")

// Seal implements store.Presigner: it copies the incoming object to key on
// the server (CopyObject, conditional on the ETag whose size it checked)
// and deletes the incoming one. Seal looks at key first, so a key sealed
// before, or uploaded to directly by a URL presigned before incoming
// objects existed, is checked and returned as it is.
func (s *Store) Seal(ctx context.Context, key string, size int64) (store.Info, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return store.Info{}, err
	}
	in := s.incomingKey(key)
	from := k
	head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: k})
	if isNotFound(err) {
		from = &in
		head, err = s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: from})
	}
	if err != nil {
		return store.Info{}, s.opError("stat", key, err)
	}
	info := store.Info{Size: aws.ToInt64(head.ContentLength), ContentType: aws.ToString(head.ContentType)}
	if info.Size != size {
		if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: from}); err != nil {
			return info, s.opError("delete", key, err)
		}
		return info, store.ErrSize
	}
	if from == k {
		return info, nil
	}
	_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            &s.bucket,
		Key:               k,
		CopySource:        aws.String(httpbinding.EscapePath(s.bucket+"/"+in, false)),
		CopySourceIfMatch: head.ETag,
	})
	var ae smithy.APIError
	if errors.As(err, &ae) && ae.ErrorCode() == "PreconditionFailed" {
		return info, fmt.Errorf("%w: %s", ErrChanged, key)
	}
	if err != nil {
		return info, s.opError("seal", key, err)
	}
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &in}); err != nil {
		// Sealed all the same: the next Seal finds key.
		return info, s.opError("delete incoming", key, err)
	}
	return info, nil
}

// PublicURL implements store.Presigner: base joined with the object's key
// in the bucket, prefix included, escaped as in a presigned URL's path.
func (s *Store) PublicURL(base, key string) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(base, "/") + "/" + httpbinding.EscapePath(*k, false), nil
}
