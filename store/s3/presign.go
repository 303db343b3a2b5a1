package s3

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mediaslot/store"
)

// PresignPut implements store.Presigner. The URL signs host, content-length
// and, when contentType is not empty, content-type: S3 then refuses a body of
// another length or type. It signs nothing else, because XMPP clients send
// only the headers of the slot, and many not even those: no x-amz-acl, no
// checksum headers (see New). The returned headers hold the Content-Type to
// send, or nothing.
//
// S3 accepts the URL again until it expires and then overwrites the object
// (If-None-Match cannot be required of clients): keep ttl short, and keys
// unique.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, contentType string, ttl time.Duration) (string, http.Header, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", nil, err
	}
	if size < 0 {
		return "", nil, store.ErrSize
	}
	in := &s3.PutObjectInput{Bucket: &s.bucket, Key: k, ContentLength: aws.Int64(size)}
	headers := http.Header{}
	if contentType != "" {
		in.ContentType = aws.String(contentType)
		headers.Set("Content-Type", contentType)
	}
	req, err := s.presign.PresignPutObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", nil, fmt.Errorf("s3: presign put %s: %w", key, err)
	}
	return req.URL, headers, nil
}

// PresignGet implements store.Presigner. The URL is bound to GET (HEAD is
// refused) and expires: never hand it out as a slot's stable GET URL. The
// type and disposition travel as S3's response-content-* overrides, which
// are part of the signature.
func (s *Store) PresignGet(ctx context.Context, key string, ttl time.Duration, contentType, disposition string) (string, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return "", err
	}
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: k}
	if contentType != "" {
		in.ResponseContentType = aws.String(contentType)
	}
	if disposition != "" {
		in.ResponseContentDisposition = aws.String(disposition)
	}
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3: presign get %s: %w", key, err)
	}
	return req.URL, nil
}
