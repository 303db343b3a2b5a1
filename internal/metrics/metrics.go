// Package metrics exposes mediaslot's Prometheus metrics. Metrics
// implements upload.Observer and xmpp.Observer, so those packages stay free
// of Prometheus, and reads the offline queue's and the store's state when
// it is scraped. Everything lives in one registry of its own, not the
// global default one, served by Handler.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"mediaslot/internal/connlimit"
	"mediaslot/offline"
	"mediaslot/refusal"
	"mediaslot/upload"
	"mediaslot/xmpp"
)

const namespace = "mediaslot"

// Metrics holds mediaslot's metrics. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	slotsIssued  prometheus.Counter
	slotsRefused *prometheus.CounterVec

	uploads        prometheus.Counter
	uploadBytes    prometheus.Counter
	uploadDuration prometheus.Histogram
	downloads      prometheus.Counter
	downloadBytes  prometheus.Counter

	linkUp     prometheus.Gauge
	reconnects prometheus.Counter
	linkMu     sync.Mutex
	connected  bool // the link came up at least once; under linkMu

	relayDelivered *prometheus.CounterVec
	relayQueued    prometheus.Counter
	relayRefused   *prometheus.CounterVec
}

var (
	_ upload.Observer = (*Metrics)(nil)
	_ xmpp.Observer   = (*Metrics)(nil)
)

// slotRefusalReasons are the reasons whose series exist from the start, at 0.
var slotRefusalReasons = []string{
	refusal.BadRequest.String(), refusal.TooLarge.String(), refusal.Forbidden.String(),
	refusal.Unavailable.String(), refusal.OverQuota.String(), refusal.Unsupported.String(), refusal.Internal.String(),
}

// New returns the metrics of one mediaslot process, with build information
// and the Go runtime's and the process's metrics.
func New(version, commit string) *Metrics {
	reg := prometheus.NewRegistry()
	f := promauto.With(reg)
	m := &Metrics{
		reg: reg,
		slotsIssued: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "slots_issued_total",
			Help: "Upload slots issued."}),
		slotsRefused: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "slots_refused_total",
			Help: "Slot requests refused, by reason (bad_request, too_large, forbidden, unavailable, quota, unsupported, internal)."}, []string{"reason"}),
		uploads: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "uploads_total",
			Help: "Files uploaded completely: PUTs through mediaslot and confirmed direct uploads to S3."}),
		uploadBytes: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "upload_bytes_total",
			Help: "Bytes of the files counted in mediaslot_uploads_total."}),
		uploadDuration: f.NewHistogram(prometheus.HistogramOpts{Namespace: namespace, Name: "upload_duration_seconds",
			Help:    "Duration of complete PUTs through mediaslot's HTTP front (the disk store; S3 uploads bypass mediaslot).",
			Buckets: prometheus.ExponentialBuckets(0.01, 4, 9)}),
		downloads: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "downloads_total",
			Help: "GETs of files answered with the file or a redirect to the store."}),
		downloadBytes: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "download_bytes_total",
			Help: "Body bytes mediaslot sent for downloads (redirected downloads send none)."}),
		linkUp: f.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "component_connected",
			Help: "1 while the XEP-0114 link to the XMPP server is up, else 0."}),
		reconnects: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "component_reconnects_total",
			Help: "Times the link to the XMPP server came up again after the first time."}),
		relayDelivered: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "relay_delivered_total",
			Help: "Relay message copies handed to the XMPP server, by path: direct (recipient online) or queue (delivered on their return)."}, []string{"path"}),
		relayQueued: f.NewCounter(prometheus.CounterOpts{Namespace: namespace, Name: "relay_queued_total",
			Help: "Relay message copies stored for recipients who were offline."}),
		relayRefused: f.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "relay_refused_total",
			Help: "Relay messages refused, by the stanza error condition sent back."}, []string{"condition"}),
	}
	for _, r := range slotRefusalReasons {
		m.slotsRefused.WithLabelValues(r)
	}
	m.relayDelivered.WithLabelValues("direct")
	m.relayDelivered.WithLabelValues("queue")
	info := f.NewGaugeVec(prometheus.GaugeOpts{Namespace: namespace, Name: "build_info",
		Help: "Always 1; the labels say which mediaslot this is."}, []string{"version", "commit"})
	info.WithLabelValues(version, commit).Set(1)
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Handler serves the metrics in the Prometheus text format (or OpenMetrics,
// if the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError})
}

// SlotIssued implements xmpp.Observer.
func (m *Metrics) SlotIssued() { m.slotsIssued.Inc() }

// SlotRefused implements xmpp.Observer.
func (m *Metrics) SlotRefused(reason string) { m.slotsRefused.WithLabelValues(reason).Inc() }

// LinkChanged implements xmpp.Observer.
func (m *Metrics) LinkChanged(up bool) {
	m.linkMu.Lock()
	defer m.linkMu.Unlock()
	if !up {
		m.linkUp.Set(0)
		return
	}
	m.linkUp.Set(1)
	if m.connected {
		m.reconnects.Inc()
	}
	m.connected = true
}

// RelayAccepted implements xmpp.Observer.
func (m *Metrics) RelayAccepted(delivered, queued int) {
	m.relayDelivered.WithLabelValues("direct").Add(float64(delivered))
	m.relayQueued.Add(float64(queued))
}

// RelayDrained implements xmpp.Observer.
func (m *Metrics) RelayDrained(delivered int) {
	m.relayDelivered.WithLabelValues("queue").Add(float64(delivered))
}

// RelayRefused implements xmpp.Observer.
func (m *Metrics) RelayRefused(condition string) {
	m.relayRefused.WithLabelValues(condition).Inc()
}

// Uploaded implements upload.Observer.
func (m *Metrics) Uploaded(size int64, took time.Duration) {
	m.uploads.Inc()
	m.uploadBytes.Add(float64(size))
	if took > 0 {
		m.uploadDuration.Observe(took.Seconds())
	}
}

// Downloaded implements upload.Observer.
func (m *Metrics) Downloaded(bytes int64) {
	m.downloads.Inc()
	m.downloadBytes.Add(float64(bytes))
}

// QueueStats is what WatchQueue reads: offline.Queue.
type QueueStats interface {
	Stats() (offline.Stats, error)
}

// WatchQueue adds the relay queue's size, read from q at every scrape.
func (m *Metrics) WatchQueue(q QueueStats) {
	m.reg.MustRegister(&queueCollector{q: q, now: time.Now})
}

// HTTPListener is what WatchHTTP reads: the HTTP front's connlimit.Listener.
type HTTPListener interface {
	Stats() connlimit.Stats
}

// WatchHTTP adds the HTTP front's connections, refusals and accept errors,
// read from l at every scrape.
func (m *Metrics) WatchHTTP(l HTTPListener) {
	m.reg.MustRegister(&httpCollector{l: l})
}

// WatchLease adds mediaslot_lease_held{lease=name}: 1 while this instance
// holds the cluster-wide lease of name (and runs its work), else 0. Summed
// over a cluster's instances it is 1, or 0 for a moment after a holder died.
func (m *Metrics) WatchLease(name string, held func() bool) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: namespace, Name: "lease_held",
		Help:        "1 while this instance holds the cluster-wide lease of background work named by lease, else 0.",
		ConstLabels: prometheus.Labels{"lease": name},
	}, func() float64 {
		if held() {
			return 1
		}
		return 0
	}))
}

// Store is what WatchStore reads: upload.Service.
type Store interface {
	StoreErr() error
	StoredBytes() (int64, error)
}

// WatchStore adds the store's availability and the bytes of stored files,
// read from s at every scrape.
func (m *Metrics) WatchStore(s Store) {
	m.reg.MustRegister(&storeCollector{s: s})
}
