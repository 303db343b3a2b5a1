package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// queueCollector reports the relay queue from offline.Queue.Stats, which
// reads totals the queue keeps up to date: cheap at every scrape.
type queueCollector struct {
	q   QueueStats
	now func() time.Time
}

var (
	queueEntries = prometheus.NewDesc(namespace+"_relay_queue_entries",
		"Queued relay message copies, one per recipient and message.", nil, nil)
	queueMessages = prometheus.NewDesc(namespace+"_relay_queue_messages",
		"Queued relay messages, each stored once for all its recipients.", nil, nil)
	queueBytes = prometheus.NewDesc(namespace+"_relay_queue_bytes",
		"Bytes of the queued relay messages, each counted once.", nil, nil)
	queueRecipients = prometheus.NewDesc(namespace+"_relay_queue_recipients",
		"Recipients with at least one queued message.", nil, nil)
	queueOldest = prometheus.NewDesc(namespace+"_relay_queue_oldest_age_seconds",
		"Age of the oldest queued message; 0 when the queue is empty.", nil, nil)
)

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueEntries, queueMessages, queueBytes, queueRecipients, queueOldest} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	s, err := c.q.Stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueEntries, err)
		return
	}
	age := 0.0
	if !s.Oldest.IsZero() {
		age = max(0, c.now().Sub(s.Oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(queueEntries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(s.Stanzas))
	ch <- prometheus.MustNewConstMetric(queueBytes, prometheus.GaugeValue, float64(s.Bytes))
	ch <- prometheus.MustNewConstMetric(queueRecipients, prometheus.GaugeValue, float64(s.Recipients))
	ch <- prometheus.MustNewConstMetric(queueOldest, prometheus.GaugeValue, age)
}

// storeCollector reports the store's health and the stored bytes from
// upload.Service at every scrape.
type storeCollector struct{ s Store }

var (
	storeUp = prometheus.NewDesc(namespace+"_store_available",
		"1 when the file store passed its last probe, else 0: slot requests are refused meanwhile.", nil, nil)
	storedBytes = prometheus.NewDesc(namespace+"_stored_bytes",
		"Bytes of the complete files mediaslot keeps, from its usage accounting.", nil, nil)
)

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeUp
	ch <- storedBytes
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	up := 1.0
	if c.s.StoreErr() != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(storeUp, prometheus.GaugeValue, up)
	if n, err := c.s.StoredBytes(); err != nil {
		ch <- prometheus.NewInvalidMetric(storedBytes, err)
	} else {
		ch <- prometheus.MustNewConstMetric(storedBytes, prometheus.GaugeValue, float64(n))
	}
}

// httpCollector reports the HTTP front's listener from its counters.
type httpCollector struct{ l HTTPListener }

var (
	httpOpen = prometheus.NewDesc(namespace+"_http_connections",
		"Connections open on the HTTP front.", nil, nil)
	httpRefused = prometheus.NewDesc(namespace+"_http_connections_refused_total",
		"Connections refused (503) by bound: total (http.max_connections) or per_address (http.max_connections_per_address).", []string{"bound"}, nil)
	httpAcceptErrors = prometheus.NewDesc(namespace+"_http_accept_errors_total",
		"Failed accepts on the HTTP front, such as \"accept4: too many open files\".", nil, nil)
	httpAcceptFailing = prometheus.NewDesc(namespace+"_http_accept_failing",
		"1 while accepting connections fails (the last accept failed), else 0.", nil, nil)
)

func (c *httpCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{httpOpen, httpRefused, httpAcceptErrors, httpAcceptFailing} {
		ch <- d
	}
}

func (c *httpCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.l.Stats()
	failing := 0.0
	if s.AcceptFailing != nil {
		failing = 1
	}
	ch <- prometheus.MustNewConstMetric(httpOpen, prometheus.GaugeValue, float64(s.Open))
	ch <- prometheus.MustNewConstMetric(httpRefused, prometheus.CounterValue, float64(s.RefusedTotal), "total")
	ch <- prometheus.MustNewConstMetric(httpRefused, prometheus.CounterValue, float64(s.RefusedPerAddr), "per_address")
	ch <- prometheus.MustNewConstMetric(httpAcceptErrors, prometheus.CounterValue, float64(s.AcceptErrors))
	ch <- prometheus.MustNewConstMetric(httpAcceptFailing, prometheus.GaugeValue, failing)
}
