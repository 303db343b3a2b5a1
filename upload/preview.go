package upload

import (
	"context"
	"errors"
	"io"
	"net/url"
	"strings"
	"time"

	"mediaslot/internal/thumbnail"
)

// Preview is a thumbnail of a file uploaded through this service, with the
// facts a media message's XEP-0446 metadata carries.
type Preview struct {
	thumbnail.Thumbnail
	Name      string
	Size      int64
	MediaType string
}

const (
	// PreviewMaxSide bounds the thumbnails the relay adds.
	PreviewMaxSide = 128
	// previewMaxFile bounds the files opened for a preview, and the bytes
	// read of them.
	previewMaxFile = 32 << 20
	// previewsKept is how many slots' thumbnails (or refusals) are kept:
	// at most 8 KiB each, so about 8 MiB.
	previewsKept = 1024
	// previewWait bounds how long a relayed message waits for its
	// thumbnail; it goes without one past that. A 12 MP JPEG takes 0.35 s
	// on one core, so a loaded machine still makes photos' thumbnails.
	previewWait = 3 * time.Second
)

// previewTypes are the image formats previews are made of.
var previewTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// Preview makes a thumbnail of the image behind a download URL of this
// service. ok is false for anything else: other hosts, unknown or
// incomplete slots, other types, files too large, images that do not
// decode or would take too much memory to decode (thumbnail.MaxDecodeBytes),
// and whenever the thumbnail is not ready within previewWait or other
// previews hold the decoding budget. Each slot's file is decoded once.
// Only plain http(s) download URLs are looked at, so files shared
// encrypted (XEP-0454 aesgcm:// links) are never opened.
func (s *Service) Preview(ctx context.Context, link string) (Preview, bool) {
	rest, ok := strings.CutPrefix(link, s.base+"/file/")
	if !ok {
		return Preview{}, false
	}
	id, _, _ := strings.Cut(rest, "/")
	if _, err := url.PathUnescape(rest); err != nil || !validID(id) {
		return Preview{}, false
	}
	rec, err := s.lookup(ctx, id)
	if err != nil || !rec.Complete || !previewTypes[normalType(rec.StoredType)] || rec.Size > previewMaxFile {
		return Preview{}, false
	}
	th, err := s.previews.Make(ctx, id, func(ctx context.Context) (io.ReadSeekCloser, error) {
		f, err := s.opt.Store.Open(ctx, id)
		if err != nil {
			return nil, err
		}
		// The header is read twice, a JPEG's markers once, and the whole
		// file once to decode it.
		return &readBound{ReadSeekCloser: f, left: 3 * previewMaxFile}, nil
	})
	if err != nil {
		s.log.Debug("no preview", "slot", id, "err", err)
		return Preview{}, false
	}
	return Preview{Thumbnail: th, Name: rec.Filename, Size: rec.Size, MediaType: normalType(rec.StoredType)}, true
}

// readBound fails reads past left bytes in all, however often the reader
// seeks back: a file larger than its record says, or a decoder that
// rereads, cannot make a preview read without end.
type readBound struct {
	io.ReadSeekCloser
	left int64
}

func (r *readBound) Read(p []byte) (int, error) {
	if r.left <= 0 {
		return 0, errors.New("preview read bound reached")
	}
	n, err := r.ReadSeekCloser.Read(p[:min(int64(len(p)), r.left)])
	r.left -= int64(n)
	return n, err
}
