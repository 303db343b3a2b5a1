package client

import (
	"bytes"
	"errors"
	"fmt"
	"image"
	"image/color/palette"
	_ "image/gif" // decoders for image.Decode
	_ "image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/draw"
	_ "golang.org/x/image/webp"
)

const (
	// ThumbnailMaxSide bounds a thumbnail's width and height.
	ThumbnailMaxSide = 96
	// ThumbnailMaxBytes is XEP-0231's SHOULD for inline data: larger
	// stanzas risk the server's stanza size limit.
	ThumbnailMaxBytes = 8 << 10
	// maxPixels guards against decompression bombs: a tiny file can claim
	// enormous dimensions, and decoding allocates 4 bytes per pixel.
	maxPixels = 64 << 20
)

// ImageSize returns the dimensions of an image in a format Go decodes (PNG,
// JPEG, GIF, WebP) without decoding the pixels.
func ImageSize(r io.Reader) (width, height int, err error) {
	cfg, _, err := image.DecodeConfig(r)
	if err != nil {
		return 0, 0, err
	}
	return cfg.Width, cfg.Height, nil
}

// MakeThumbnail decodes an image and returns a PNG preview at most
// ThumbnailMaxSide pixels on each side and ThumbnailMaxBytes long. Photos
// rarely fit 8 KB as full-colour PNG at 96 px, so it falls back to a
// 256-colour palette and then to smaller sides until the PNG fits.
func MakeThumbnail(r io.Reader) (Thumbnail, error) {
	var buf bytes.Buffer
	cfg, _, err := image.DecodeConfig(io.TeeReader(r, &buf))
	if err != nil {
		return Thumbnail{}, err
	}
	if cfg.Width <= 0 || cfg.Height <= 0 || int64(cfg.Width)*int64(cfg.Height) > maxPixels {
		return Thumbnail{}, fmt.Errorf("image of %dx%d pixels: not making a thumbnail", cfg.Width, cfg.Height)
	}
	src, _, err := image.Decode(io.MultiReader(&buf, r))
	if err != nil {
		return Thumbnail{}, err
	}
	for side := ThumbnailMaxSide; side >= 8; side = side * 3 / 4 {
		scaled := scale(src, side)
		for _, img := range []image.Image{scaled, toPalette(scaled)} {
			var out bytes.Buffer
			enc := png.Encoder{CompressionLevel: png.BestCompression}
			if err := enc.Encode(&out, img); err != nil {
				return Thumbnail{}, err
			}
			if out.Len() <= ThumbnailMaxBytes {
				b := img.Bounds()
				return Thumbnail{Data: out.Bytes(), MediaType: "image/png", Width: b.Dx(), Height: b.Dy()}, nil
			}
		}
	}
	return Thumbnail{}, errors.New("no thumbnail fits in 8 KB") // unreachable: 8x8 paletted is < 1 KB
}

// scale fits src into side×side, keeping its aspect ratio, never enlarging.
func scale(src image.Image, side int) *image.RGBA {
	b := src.Bounds()
	w, h := b.Dx(), b.Dy()
	if w > side || h > side {
		if w >= h {
			w, h = side, max(1, h*side/w)
		} else {
			w, h = max(1, w*side/h), side
		}
	}
	dst := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.CatmullRom.Scale(dst, dst.Bounds(), src, b, draw.Src, nil)
	return dst
}

// toPalette maps img to the 216-colour web-safe palette:
// one byte per pixel instead of four, with no dithering noise to hurt the
// compression.
func toPalette(img *image.RGBA) *image.Paletted {
	p := image.NewPaletted(img.Bounds(), palette.WebSafe)
	draw.Draw(p, p.Bounds(), img, img.Bounds().Min, draw.Src)
	return p
}
