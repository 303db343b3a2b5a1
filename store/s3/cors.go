package s3

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// ErrCORSUnsupported: the server does not implement PutBucketCors (MinIO
// and rclone answer 501); its CORS is set on the server, not per bucket.
var ErrCORSUnsupported = errors.New("s3: the server does not implement bucket CORS (PutBucketCors)")

// SetCORS replaces the bucket's CORS rules with one that lets browsers on
// origins PUT to presigned URLs and GET objects, the rule web clients
// (Converse.js, Movim) need. Operators who manage the bucket's CORS
// themselves leave origins empty and never call it.
func (s *Store) SetCORS(ctx context.Context, origins []string) error {
	_, err := s.client.PutBucketCors(ctx, &s3.PutBucketCorsInput{
		Bucket: &s.bucket,
		CORSConfiguration: &types.CORSConfiguration{CORSRules: []types.CORSRule{{
			AllowedOrigins: origins,
			AllowedMethods: []string{"PUT", "GET", "HEAD"},
			AllowedHeaders: []string{"Content-Type", "Content-Length"},
			ExposeHeaders:  []string{"ETag", "Content-Length", "Content-Range"},
			MaxAgeSeconds:  aws.Int32(86400),
		}}},
	})
	var ae smithy.APIError
	var re *awshttp.ResponseError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotImplemented:
		return fmt.Errorf("%w: allow the origins on the server instead (MinIO allows every origin "+
			"unless its api cors_allow_origin setting says otherwise), or leave cors_origins empty: %v", ErrCORSUnsupported, err)
	case errors.As(err, &ae) && ae.ErrorCode() == "AccessDenied":
		return fmt.Errorf("s3: setting bucket CORS: the credentials need s3:PutBucketCORS on bucket %q, "+
			"or set the rule yourself and leave cors_origins empty: %w", s.bucket, err)
	}
	return fmt.Errorf("s3: setting bucket CORS: %w", err)
}

// KeepCORS sets the bucket's CORS rule (SetCORS) once S3 can be reached:
// it tries again every retry while the server is unreachable or answers
// with a server error, so that a bucket whose server was down when
// mediaslot started gets its rule when the server comes back. It returns
// nil once the rule is set, the error that retrying cannot mend
// (ErrCORSUnsupported, missing permissions), or ctx's error.
func (s *Store) KeepCORS(ctx context.Context, origins []string, retry time.Duration) error {
	return s.keepCORS(ctx, origins, retry, func() {})
}

// keepCORS is KeepCORS, calling retrying after each attempt that failed
// for a reason that may pass (the tests wait for one).
func (s *Store) keepCORS(ctx context.Context, origins []string, retry time.Duration, retrying func()) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := s.SetCORS(actx, origins)
		cancel()
		if err == nil || ctx.Err() != nil || !transient(err) {
			return err
		}
		retrying()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(retry):
		}
	}
}

// transient reports whether a request may succeed later unchanged: the
// server could not be reached, did not answer in time, or answered with a
// server error other than 501 Not Implemented.
func transient(err error) bool {
	var send *smithyhttp.RequestSendError
	var re *awshttp.ResponseError
	switch {
	case errors.As(err, &send), errors.Is(err, context.DeadlineExceeded):
		return true
	case errors.As(err, &re):
		return re.HTTPStatusCode() >= 500 && re.HTTPStatusCode() != http.StatusNotImplemented
	}
	return false
}
