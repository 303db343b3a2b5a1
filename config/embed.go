package config

import _ "embed"

// Example is the documented example configuration, every key at its default.
//
//go:embed mediaslot.example.toml
var Example []byte
