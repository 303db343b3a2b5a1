package s3

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

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
	if err != nil {
		return fmt.Errorf("s3: setting bucket CORS: %w", err)
	}
	return nil
}
