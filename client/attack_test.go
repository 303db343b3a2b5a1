package client

import "testing"

// Names Windows keeps for devices (CON, NUL, COM1, … with any extension,
// in any case) would write to the device, not a file, where receive runs
// on Windows: they get an underscore in front.
func TestSafeNameWindowsDevices(t *testing.T) {
	for in, want := range map[string]string{
		"CON":         "_CON",
		"con.txt":     "_con.txt",
		"Nul.tar.gz":  "_Nul.tar.gz",
		"COM1.jpg":    "_COM1.jpg",
		"lpt9":        "_lpt9",
		"COM¹.png":    "_COM¹.png",
		"AUX .txt":    "_AUX .txt",
		"CONSOLE.txt": "CONSOLE.txt",
		"COM10":       "COM10",
		"icon.png":    "icon.png",
		"..CON":       "_CON",
	} {
		if got := SafeName(in, "fallback"); got != want {
			t.Errorf("SafeName(%q) = %q, want %q", in, got, want)
		}
	}
}
