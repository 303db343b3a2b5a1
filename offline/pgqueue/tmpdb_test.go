package pgqueue

import (
	"context"
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
)

var dbs atomic.Int32

type cluster struct{ port string }

// startCluster stands in for testserver.StartPostgres until it is merged:
// a cluster started by hand on the port in QPG_PORT.
func startCluster(t testing.TB) *cluster {
	if os.Getenv("QPG_PORT") == "" {
		t.Skip("QPG_PORT not set")
	}
	return &cluster{port: os.Getenv("QPG_PORT")}
}

func (c *cluster) newDB(t testing.TB) string {
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbs.Add(1))
	admin := "postgres://postgres@127.0.0.1:" + c.port + "/postgres?sslmode=disable"
	p, err := pgxpool.New(context.Background(), admin)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if _, err := p.Exec(context.Background(), "CREATE DATABASE "+name); err != nil {
		t.Fatal(err)
	}
	dsn := "postgres://postgres@127.0.0.1:" + c.port + "/" + name + "?sslmode=disable"
	sql, _ := os.ReadFile("../../internal/pgdb/migrations/0002_relay.sql")
	p2, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	if _, err := p2.Exec(context.Background(), string(sql)); err != nil {
		t.Fatal(err)
	}
	return dsn
}

func openPool(t testing.TB, dsn string) *pgxpool.Pool {
	p, err := pgxpool.New(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func (c *cluster) serverPID(t testing.TB) int {
	b, err := os.ReadFile(os.Getenv("QPG_DIR") + "/data/postmaster.pid")
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	fmt.Sscan(string(b), &pid)
	return pid
}
