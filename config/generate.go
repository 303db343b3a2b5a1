package config

// docs/CONFIG.md is the configuration reference rendered from
// mediaslot.example.toml; TestConfigReference fails when it is stale.
//go:generate go test -run TestConfigReference -args -update
