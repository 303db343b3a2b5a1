package client

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxNameBytes keeps names under the usual file system limit of 255 bytes
// (ext4, APFS) with room for the " (n)" SaveUnique may add.
const maxNameBytes = 240

// SafeName turns a name chosen by a sender into a plain file name: no
// directory part, no separators, no control characters, no leading dots
// (no "..", no hidden files), at most 240 bytes with the extension kept.
// The sender cannot make the result point anywhere but a new entry of the
// directory it is joined to. An unusable name becomes fallback.
func SafeName(name, fallback string) string {
	name = strings.ToValidUTF8(name, "_")
	// Only the last element counts, whatever separator the sender used.
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r), r == unicode.ReplacementChar:
			return '_'
		case unicode.Is(unicode.Cf, r): // bidi overrides and the like disguise extensions
			return -1
		case strings.ContainsRune(`<>:"|?*`, r): // forbidden on Windows and FAT
			return '_'
		}
		return r
	}, name)
	name = strings.TrimLeft(strings.TrimSpace(name), ".")
	name = strings.TrimRight(name, ". ") // Windows drops these, and with them the extension
	if name == "" {
		return fallback
	}
	if windowsDevice(name) {
		name = "_" + name
	}
	if len(name) > maxNameBytes {
		ext := path.Ext(name)
		if len(ext) > 16 || !utf8.ValidString(ext) {
			ext = ""
		}
		stem := name[:maxNameBytes-len(ext)]
		for !utf8.ValidString(stem) { // do not cut a character in half
			stem = stem[:len(stem)-1]
		}
		name = stem + ext
	}
	return name
}

// windowsDevice reports whether Windows takes name for a device (CON,
// NUL, COM1, …), whatever its case and extension: opening it reaches the
// device, not a file.
func windowsDevice(name string) bool {
	stem, _, _ := strings.Cut(name, ".")
	stem = strings.TrimRight(stem, " ")
	switch strings.ToUpper(stem) {
	case "CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$":
		return true
	}
	if len(stem) < 4 {
		return false
	}
	prefix, digit := strings.ToUpper(stem[:3]), stem[3:]
	return (prefix == "COM" || prefix == "LPT") && (len(digit) == 1 && '0' <= digit[0] && digit[0] <= '9' || digit == "¹" || digit == "²" || digit == "³")
}

// NameFromURL is the file name a URL's last path segment suggests ("" if none).
func NameFromURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	name := path.Base(strings.TrimRight(u.Path, "/"))
	if name == "." || name == "/" {
		return ""
	}
	return name
}

// SaveUnique moves the finished file tmp into dir under name, or under
// "stem (1).ext", "stem (2).ext", … if that exists: it never overwrites. A
// hard link is the atomic "create if absent", so a concurrent writer cannot
// race it. It returns the path used.
func SaveUnique(tmp, dir, name string) (string, error) {
	stem, ext := name, filepath.Ext(name)
	stem = strings.TrimSuffix(stem, ext)
	for i := 0; i < 10000; i++ {
		candidate := name
		if i > 0 {
			candidate = fmt.Sprintf("%s (%d)%s", stem, i, ext)
		}
		p := filepath.Join(dir, candidate)
		err := os.Link(tmp, p)
		if err == nil {
			return p, os.Remove(tmp)
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s: too many files named like %s", dir, name)
}
