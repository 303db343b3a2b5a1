module mediaslot

go 1.26.8

require (
	github.com/pelletier/go-toml/v2 v2.4.3
	go.etcd.io/bbolt v1.4.3
)

require golang.org/x/sys v0.29.0 // indirect
