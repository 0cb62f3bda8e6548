package ingest

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics are the receiver's Prometheus metrics, in a registry of their own (served on
// /metrics). docs/INGEST.md lists them.
type Metrics struct {
	reg *prometheus.Registry

	received     *prometheus.CounterVec // events accepted from requests, by source
	rejected     *prometheus.CounterVec // rows or requests rejected, by reason
	written      prometheus.Counter
	archived     prometheus.Counter
	writeErrors  prometheus.Counter
	writeSeconds prometheus.Histogram
	commitWait   prometheus.Histogram
	requests     *prometheus.HistogramVec
	queueEvents  prometheus.Gauge
	queueBytes   prometheus.Gauge
	eventLag     prometheus.Gauge
	lastCommit   prometheus.Gauge
	compactions  *prometheus.CounterVec
	retention    prometheus.Counter
	unflushed    prometheus.Gauge
	flushSeconds prometheus.Histogram
	flushErrors  prometheus.Counter
	replayed     prometheus.Counter
}

// NewMetrics registers the metrics (and the Go and process collectors) in a new registry.
func NewMetrics() *Metrics {
	reg := prometheus.NewRegistry()
	f := func(c prometheus.Collector) { reg.MustRegister(c) }
	m := &Metrics{reg: reg,
		received: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "blueticks_ingest_received_events_total",
			Help: "Events accepted from requests (before deduplication), by source (webhook, api)."}, []string{"source"}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "blueticks_ingest_rejected_total",
			Help: "Rejected rows or requests, by reason."}, []string{"reason"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{Name: "blueticks_ingest_written_events_total",
			Help: "Events written to published segments (after deduplication within a segment)."}),
		archived: prometheus.NewCounter(prometheus.CounterOpts{Name: "blueticks_ingest_raw_archived_total",
			Help: "Webhook items that map to no event, kept in the raw archive."}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "blueticks_ingest_write_errors_total",
			Help: "Failed commits (their requests were answered 503)."}),
		writeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "blueticks_ingest_write_seconds",
			Help: "Time to make one group commit durable (WAL records written and fsynced; with direct segments: segment written, fsynced, published).", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		commitWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "blueticks_ingest_commit_wait_seconds",
			Help: "Time a request waited from queueing until its events were durable.", Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16)}),
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "blueticks_ingest_request_seconds",
			Help: "HTTP request latency by route and status code.", Buckets: prometheus.ExponentialBuckets(0.001, 2, 14)}, []string{"route", "code"}),
		queueEvents: prometheus.NewGauge(prometheus.GaugeOpts{Name: "blueticks_ingest_queue_events",
			Help: "Events waiting for a commit."}),
		queueBytes: prometheus.NewGauge(prometheus.GaugeOpts{Name: "blueticks_ingest_queue_bytes",
			Help: "Estimated bytes waiting for a commit."}),
		eventLag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "blueticks_ingest_lag_seconds",
			Help: "At the last commit: commit time minus the newest event's ts (how far the stored data trails real time)."}),
		lastCommit: prometheus.NewGauge(prometheus.GaugeOpts{Name: "blueticks_ingest_last_commit_timestamp_seconds",
			Help: "Unix time of the last successful commit."}),
		compactions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "blueticks_ingest_compactions_total",
			Help: "Compaction runs by result (merged, nothing, skipped, error)."}, []string{"result"}),
		retention: prometheus.NewCounter(prometheus.CounterOpts{Name: "blueticks_ingest_retention_dropped_events_total",
			Help: "Events deleted by the retention setting."}),
		unflushed: prometheus.NewGauge(prometheus.GaugeOpts{Name: "blueticks_ingest_unflushed_events",
			Help: "Acknowledged events durable in the WAL but not yet in a published segment (not yet visible to queries)."}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "blueticks_ingest_flush_seconds",
			Help: "Time to cut one segment from the WAL (written, fsynced, published).", Buckets: prometheus.ExponentialBuckets(0.002, 2, 14)}),
		flushErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "blueticks_ingest_flush_errors_total",
			Help: "Failed attempts to cut a segment from the WAL (retried; the events stay durable in the WAL)."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "blueticks_ingest_wal_replayed_events_total",
			Help: "Events replayed from WAL files of stopped receivers (before deduplication)."}),
	}
	for _, c := range []prometheus.Collector{m.received, m.rejected, m.written, m.archived, m.writeErrors,
		m.writeSeconds, m.commitWait, m.requests, m.queueEvents, m.queueBytes, m.eventLag, m.lastCommit,
		m.compactions, m.retention, m.unflushed, m.flushSeconds, m.flushErrors, m.replayed,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})} {
		f(c)
	}
	return m
}

// Handler serves the metrics in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Registry is the registry behind Handler (for tests).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }
