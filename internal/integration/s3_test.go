package integration

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"mediaslot/testserver"
)

// Real clients through the S3 store: slixmpp PUTs straight to the S3 server
// with the presigned URL and downloads through mediaslot's stable URL
// (HEAD from the record, GET redirected or proxied, Range included);
// go-sendxmpp does the same on its own.
func TestS3WithRealClients(t *testing.T) {
	srv := testserver.Prosody(t)
	testserver.EachS3(t, func(t *testing.T, gw *testserver.S3) { testS3WithRealClients(t, srv, gw) })
}

func testS3WithRealClients(t *testing.T, srv *testserver.Server, gw *testserver.S3) {
	for _, mode := range []string{"redirect", "proxy"} {
		t.Run(mode, func(t *testing.T) {
			m := startMediaslot(t, srv, gw.StoreConfig(mode))
			file, data := writeRandomFile(t, "s3 photo é.jpg", 200_000)
			res := slixUpload(t, srv, "alice", srv.ComponentJID(), file)
			checkSlixFlow(t, res, data, "image/jpeg", 200)
			if !strings.HasPrefix(res.PutURL, gw.Endpoint+"/") || !strings.HasPrefix(res.GetURL, m.HTTP+"/file/") {
				t.Errorf("PUT %s should go to S3 (%s), GET %s to mediaslot (%s)", res.PutURL, gw.Endpoint, res.GetURL, m.HTTP)
			}
			if strings.Contains(res.PutURL, "x-amz-acl") || strings.Contains(strings.ToLower(res.PutURL), "checksum") {
				t.Errorf("presigned PUT signs headers clients do not send: %s", res.PutURL)
			}
			goSendxmpp(t, srv, m, "bob", "carol")
			if !gw.BucketCORS { // the warning says what to do
				testserver.WaitFor(t, 10*time.Second, "the CORS warning", func() bool {
					return strings.Contains(m.log.String(), "bucket CORS not set") && strings.Contains(m.log.String(), "cors_allow_origin")
				})
			}
		})
	}
}

// S3 down or misconfigured: slot requests get wait/service-unavailable with a
// text a person understands, at once, and the cause is logged once, not per
// request.
func TestS3Unavailable(t *testing.T) {
	gw := testserver.VersityGW(t)
	srv := testserver.Prosody(t)
	for _, c := range []struct{ name, conf, logged string }{
		{"missing bucket", strings.Replace(gw.StoreConfig("redirect"), fmt.Sprintf("bucket = %q", gw.Bucket), `bucket = "no-such-bucket"`, 1), "bucket does not exist"},
		{"wrong secret", strings.Replace(gw.StoreConfig("redirect"), fmt.Sprintf("secret_access_key = %q", gw.SecretKey), `secret_access_key = "wrong-secret-key"`, 1), "credentials rejected"},
		{"unreachable", strings.Replace(gw.StoreConfig("redirect"), gw.Endpoint, "http://127.0.0.1:1", 1), "unreachable"},
		{"wrong region", strings.Replace(gw.StoreConfig("redirect"), fmt.Sprintf("region = %q", gw.Region), `region = "eu-central-1"`, 1), `set store.s3.region to \"us-east-1\"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			m := startMediaslot(t, srv, c.conf)
			testserver.WaitFor(t, 10*time.Second, "the store check", func() bool { return strings.Contains(m.log.String(), "file store unavailable") })
			file, _ := writeRandomFile(t, "x.bin", 100)
			for range 3 {
				res := slixTry(t, srv, "alice", srv.ComponentJID(), file)
				if res.Error == nil || !strings.Contains(*res.Error, "wait/service-unavailable") || !strings.Contains(*res.Error, "file store is unavailable") {
					t.Fatalf("slot request with S3 %s: %v", c.name, res.Error)
				}
			}
			if n := strings.Count(m.log.String(), "file store unavailable"); n != 1 || !strings.Contains(m.log.String(), c.logged) {
				t.Errorf("cause logged %d times (want once, naming %q):\n%s", n, c.logged, m.log.String())
			}
		})
	}
}

// S3 is down when mediaslot starts: the bucket's CORS rule is written as
// soon as S3 answers, not never.
func TestS3CORSAfterOutage(t *testing.T) {
	gw := testserver.VersityGW(t)
	srv := testserver.Prosody(t)
	gw.Stop()
	conf := strings.Replace(gw.StoreConfig("redirect"), "type = \"s3\"\n", "type = \"s3\"\ncheck_interval = \"200ms\"\n", 1)
	m := startMediaslot(t, srv, conf)
	testserver.WaitFor(t, 10*time.Second, "the store check", func() bool { return strings.Contains(m.log.String(), "file store unavailable") })
	gw.Start()
	testserver.WaitFor(t, 10*time.Second, "the bucket's CORS rule", func() bool {
		out, err := gw.Client().GetBucketCors(t.Context(), &s3.GetBucketCorsInput{Bucket: &gw.Bucket})
		return err == nil && len(out.CORSRules) == 1 && out.CORSRules[0].AllowedOrigins[0] == "*"
	})
	if strings.Contains(m.log.String(), "bucket CORS not set") {
		t.Errorf("warned although the rule was set:\n%s", m.log.String())
	}
}
