package upload

import (
	"context"
	"net/url"
	"strings"

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
	// previewMaxFile bounds the files opened for a preview: decoding is
	// the relay's most expensive work.
	previewMaxFile = 32 << 20
)

// previewTypes are the image formats previews are made of.
var previewTypes = map[string]bool{"image/jpeg": true, "image/png": true, "image/gif": true, "image/webp": true}

// Preview makes a thumbnail of the image behind a download URL of this
// service. ok is false for anything else: other hosts, unknown or
// incomplete slots, other types, files too large, images that do not
// decode. Only plain http(s) download URLs are looked at, so files shared
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
	rec, err := s.lookup(id)
	if err != nil || !rec.Complete || !previewTypes[normalType(rec.StoredType)] || rec.Size > previewMaxFile {
		return Preview{}, false
	}
	f, err := s.opt.Store.Open(ctx, id)
	if err != nil {
		return Preview{}, false
	}
	defer f.Close()
	th, err := thumbnail.Make(f, PreviewMaxSide)
	if err != nil {
		s.log.Debug("no preview", "slot", id, "err", err)
		return Preview{}, false
	}
	return Preview{Thumbnail: th, Name: rec.Filename, Size: rec.Size, MediaType: normalType(rec.StoredType)}, true
}
