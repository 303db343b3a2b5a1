package s3

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Errors that Check wraps, so that mediaslot can tell an outage (retry)
// from a configuration error (fix and restart).
var (
	ErrUnreachable = errors.New("s3: endpoint unreachable")
	ErrCredentials = errors.New("s3: credentials rejected")
	ErrNoBucket    = errors.New("s3: bucket does not exist")
	ErrRegion      = errors.New("s3: wrong region")
)

// expecting finds the region a server names in its region mismatch
// message: "... the region 'us-east-1' is wrong; expecting 'eu-central-1'"
// (AWS, MinIO; versitygw quotes with ").
var expecting = regexp.MustCompile(`expecting ['"]([^'"]+)['"]`)

// Check reports whether the bucket is reachable and usable with the
// credentials, and if not, what is wrong, in words.
//
// It lists at most one key under Prefix instead of calling HeadBucket: a
// HEAD response has no error body, so HeadBucket cannot tell a missing
// bucket from an unknown access key (versitygw answers 404 to both) or a
// wrong secret from a missing permission (403); the listing's error codes
// can. Both need the same permission, s3:ListBucket.
//
// Check makes one attempt, without the SDK's retries, so that a refused
// connection is reported at once; give ctx a deadline for endpoints that
// drop packets.
func (s *Store) Check(ctx context.Context) error {
	creds, err := s.creds.Retrieve(ctx)
	if err != nil {
		return fmt.Errorf("%w: no usable credentials: %v", ErrCredentials, err)
	}
	_, err = s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket:  &s.bucket,
		Prefix:  &s.prefix,
		MaxKeys: aws.Int32(1),
	}, func(o *s3.Options) { o.RetryMaxAttempts = 1 })
	if err == nil {
		return nil
	}
	var send *smithyhttp.RequestSendError
	if errors.As(err, &send) {
		return fmt.Errorf("%w: %s: %v", ErrUnreachable, s.endpoint, send.Err)
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%w: %s did not answer in time", ErrUnreachable, s.endpoint)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		switch ae.ErrorCode() {
		case "NoSuchBucket":
			return fmt.Errorf("%w: no bucket %q at %s", ErrNoBucket, s.bucket, s.endpoint)
		case "InvalidAccessKeyId", "XAdminUserNotFound": // the latter is versitygw's
			return fmt.Errorf("%w: %s does not know access key %q", ErrCredentials, s.endpoint, creds.AccessKeyID)
		case "SignatureDoesNotMatch":
			return fmt.Errorf("%w: the secret key is wrong for access key %q", ErrCredentials, creds.AccessKeyID)
		case "ExpiredToken", "InvalidToken":
			return fmt.Errorf("%w: the session token of access key %q is invalid or expired", ErrCredentials, creds.AccessKeyID)
		case "AuthorizationHeaderMalformed", "PermanentRedirect", "IncorrectEndpoint":
			// Requests signed for another region than the bucket's.
			want := "the bucket's region"
			if m := expecting.FindStringSubmatch(ae.ErrorMessage()); m != nil {
				want = fmt.Sprintf("%q", m[1])
			}
			return fmt.Errorf("%w: requests are signed for region %q, but %s answers for %s: set store.s3.region to %s (%s: %s)",
				ErrRegion, s.region, s.endpoint, want, want, ae.ErrorCode(), ae.ErrorMessage())
		case "AccessDenied":
			return fmt.Errorf("%w: access key %q may not list bucket %q (mediaslot needs s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject)",
				ErrCredentials, creds.AccessKeyID, s.bucket)
		}
	}
	return fmt.Errorf("s3: checking bucket %q at %s: %w", s.bucket, s.endpoint, err)
}
