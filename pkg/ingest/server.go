// Package ingest is the receiver behind `blueticks serve`: WhatsApp Cloud API webhooks and
// the events API turned into SPEC events, made durable by group commit (one fsynced
// write-ahead log append per commit) before a request is answered 2xx, and published as
// Parquet segments of the store about every second. See docs/INGEST.md.
package ingest

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// Routes (fixed interface, README "Ingest").
const (
	RouteWebhook = "/webhook/whatsapp"
	RouteEvents  = "/v1/events"
	RouteHealth  = "/healthz"
	RouteMetrics = "/metrics"
)

// Config configures a Server. The secrets come from the environment in `blueticks serve`;
// none of them is ever logged.
type Config struct {
	StoreDir string
	// AppSecret checks X-Hub-Signature-256 on webhooks; VerifyToken answers the
	// subscription handshake. Without both the webhook route answers 404.
	AppSecret   string
	VerifyToken string
	// APIToken is the bearer token of the events API; without it the route answers 404.
	APIToken string
	// Hasher pseudonymises phone numbers (required).
	Hasher *pseudo.Hasher
	Logger *slog.Logger

	Commit CommitOptions
	// MaxWebhookBytes and MaxEventsBytes bound request bodies (defaults 1 MiB and 8 MiB);
	// MaxRows bounds the rows of one events API request (default 20000).
	MaxWebhookBytes int64
	MaxEventsBytes  int64
	MaxRows         int
	// MaxInFlight bounds requests being read or waiting for their commit (default 64);
	// beyond it requests are answered 429 at once. Memory stays below about
	// MaxInFlight × body limit + Commit.MaxQueueBytes.
	MaxInFlight int

	// CompactEvery is the period of background compaction (default 1 min; negative: off).
	CompactEvery time.Duration
	Compact      store.CompactOptions
	// RetentionDays deletes the events of the UTC days before the last RetentionDays (0:
	// keep forever): an event is kept at least that many days and less than one day more.
	// Checked every RetentionEvery (default 1 h) and at start; the rows go once a day.
	RetentionDays  int
	RetentionEvery time.Duration

	// MaintenanceMemoryMB bounds the DuckDB memory of compaction, retention and WAL replay
	// (default 256; beyond it they spill to a private temporary directory).
	MaintenanceMemoryMB int

	// NumberIDs maps display phone numbers (digits) to phone_number_ids (see Mapper).
	NumberIDs map[string]string
}

// Server is the receiver. Create it with New, serve Handler, stop it with Close.
type Server struct {
	cfg      Config
	log      *slog.Logger
	metrics  *Metrics
	w        *store.Writer // the committer's
	maint    *store.Writer // compaction and retention (its own DuckDB: never blocks commits)
	spill    string        // maint's DuckDB spill directory, removed by Close
	spillLk  *os.File      // locked while this process lives (tells other receivers it is in use)
	commit   *Committer
	mapper   *Mapper
	inflight chan struct{}
	appMAC   []byte
	macs     sync.Pool // of HMAC-SHA256 states keyed with appMAC
	verify   [32]byte
	api      [32]byte

	webhookEvents prometheus.Counter // received{source="webhook"}

	stop     chan struct{}
	bg       sync.WaitGroup
	closeOne sync.Once
}

// New opens the store and starts the writer and the maintenance loop.
func New(cfg Config) (*Server, error) {
	if cfg.StoreDir == "" {
		return nil, errors.New("a store directory is required")
	}
	if cfg.Hasher == nil {
		return nil, pseudo.ErrNoKey
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if cfg.MaxWebhookBytes <= 0 {
		cfg.MaxWebhookBytes = 1 << 20
	}
	if cfg.MaxEventsBytes <= 0 {
		cfg.MaxEventsBytes = 8 << 20
	}
	if cfg.MaxRows <= 0 {
		cfg.MaxRows = 20_000
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	if cfg.CompactEvery == 0 {
		cfg.CompactEvery = time.Minute
	}
	if cfg.RetentionEvery <= 0 {
		cfg.RetentionEvery = time.Hour
	}
	if cfg.MaintenanceMemoryMB <= 0 {
		cfg.MaintenanceMemoryMB = 256
	}
	if cfg.RetentionDays < 0 {
		return nil, errors.New("retention days must be 0 (keep forever) or more")
	}
	w, err := store.OpenWriter(cfg.StoreDir)
	if err != nil {
		return nil, err
	}
	maint, err := store.OpenWriter(cfg.StoreDir)
	if err != nil {
		w.Close()
		return nil, err
	}
	// Segment cuts, compaction and retention run in the background: one DuckDB thread each,
	// so requests always have the other CPUs (two threads would stall every request for the
	// length of a cut, once a second). Compaction and retention read many segments at once:
	// their memory is bounded and they spill to a private directory beyond it.
	spill, spillLock, err := newSpillDir()
	if err == nil {
		err = errors.Join(w.SetThreads(1), maint.SetThreads(1), maint.SetMemoryLimit(cfg.MaintenanceMemoryMB, spill))
	}
	if err != nil {
		w.Close()
		maint.Close()
		if spill != "" {
			spillLock.Close()
			os.RemoveAll(spill)
		}
		return nil, err
	}
	m := NewMetrics()
	// Events acknowledged by a receiver that died before they reached a segment.
	if res, err := ReplayWALs(context.Background(), maint, cfg.Logger); err != nil {
		cfg.Logger.Error("replaying WAL files of stopped receivers failed (retried every minute)", "err", err.Error())
	} else {
		m.replayed.Add(float64(res.Events))
	}
	s := &Server{cfg: cfg, log: cfg.Logger, metrics: m, w: w, maint: maint, spill: spill, spillLk: spillLock,
		commit:   NewCommitter(w, cfg.Commit, cfg.Logger, m),
		mapper:   &Mapper{Hasher: cfg.Hasher, NumberIDs: cfg.NumberIDs},
		inflight: make(chan struct{}, cfg.MaxInFlight),
		appMAC:   []byte(cfg.AppSecret),
		verify:   sha256.Sum256([]byte(cfg.VerifyToken)),
		api:      sha256.Sum256([]byte(cfg.APIToken)),
		stop:     make(chan struct{}),
	}
	s.webhookEvents = m.received.WithLabelValues("webhook")
	s.macs.New = func() any { return hmac.New(sha256.New, s.appMAC) }
	s.bg.Add(1)
	go s.maintain()
	return s, nil
}

// spillPrefix names the maintenance DuckDB's spill directories in the system's temporary
// directory.
const spillPrefix = "blueticks-serve-spill-"

// newSpillDir makes a private spill directory holding a lock file that stays locked while
// this process lives, and removes the directories of receivers that are gone (their lock
// is free; without a lock file, once they are an hour old).
func newSpillDir() (string, *os.File, error) {
	if walSupported { // flock is available
		dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), spillPrefix+"*"))
		for _, d := range dirs {
			f, err := os.Open(filepath.Join(d, ".lock"))
			if err != nil {
				if info, serr := os.Stat(d); serr == nil && time.Since(info.ModTime()) > time.Hour {
					os.RemoveAll(d)
				}
				continue
			}
			if ok, err := tryLockFile(f); err == nil && ok {
				os.RemoveAll(d)
			}
			f.Close()
		}
	}
	dir, err := os.MkdirTemp("", spillPrefix)
	if err != nil {
		return "", nil, err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		os.RemoveAll(dir)
		return "", nil, err
	}
	if walSupported {
		if ok, err := tryLockFile(lock); err != nil || !ok {
			lock.Close()
			os.RemoveAll(dir)
			return "", nil, fmt.Errorf("lock the spill directory: %v", err)
		}
	}
	return dir, lock, nil
}

// Flush cuts a segment from every event acknowledged so far and waits until it is
// published (tests and tools; the receiver does it every Commit.FlushInterval).
func (s *Server) Flush(ctx context.Context) error { return s.commit.Flush(ctx) }

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Close stops maintenance, commits everything queued and closes the store. Call it after
// http.Server.Shutdown, so no handler is still waiting.
func (s *Server) Close() error {
	var err error
	s.closeOne.Do(func() {
		close(s.stop)
		s.bg.Wait()
		s.commit.Close()
		err = errors.Join(s.w.Close(), s.maint.Close())
		s.spillLk.Close()
		os.RemoveAll(s.spill)
	})
	return err
}

// Handler routes the fixed interface.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+RouteWebhook, s.instrument("webhook_verify", s.handleVerify))
	mux.HandleFunc("POST "+RouteWebhook, s.instrument("webhook", s.handleWebhook))
	mux.HandleFunc("POST "+RouteEvents, s.instrument("events", s.handleEvents))
	mux.HandleFunc("GET "+RouteHealth, s.handleHealth)
	mux.Handle("GET "+RouteMetrics, s.metrics.Handler())
	return mux
}

// statusWriter records the status code for logs and metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

func (s *Server) instrument(route string, h http.HandlerFunc) http.HandlerFunc {
	ok200 := s.metrics.requests.WithLabelValues(route, "200")
	return func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h(sw, r)
		el := time.Since(start)
		if sw.code == http.StatusOK {
			ok200.Observe(el.Seconds())
		} else {
			s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Observe(el.Seconds())
		}
		level := slog.LevelDebug
		if sw.code >= 400 {
			level = slog.LevelWarn
		}
		if s.log.Enabled(r.Context(), level) {
			s.log.Log(r.Context(), level, "request", "route", route, "status", sw.code,
				"duration_ms", float64(el.Microseconds())/1000, "bytes", r.ContentLength)
		}
	}
}

// reject answers an error and counts it by reason.
func (s *Server) reject(w http.ResponseWriter, code int, reason, msg string) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
	switch code {
	case http.StatusTooManyRequests:
		w.Header().Set("Retry-After", "1")
	case http.StatusServiceUnavailable:
		w.Header().Set("Retry-After", "5")
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Bearer realm="blueticks"`)
	}
	writeJSON(w, code, map[string]string{"error": msg})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// acquire takes an in-flight slot, or answers 429.
func (s *Server) acquire(w http.ResponseWriter) bool {
	select {
	case s.inflight <- struct{}{}:
		return true
	default:
		s.reject(w, http.StatusTooManyRequests, "busy", "too many requests in flight; retry after a second")
		return false
	}
}

func (s *Server) release() { <-s.inflight }

// readBody reads at most limit bytes, answering 413 beyond.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	var body []byte
	var err error
	if n := r.ContentLength; n >= 0 && n <= limit && n <= 1<<20 {
		// The usual case: one allocation of the announced size (a body shorter than
		// announced is an error of the HTTP server; a longer one is cut there).
		body = make([]byte, n)
		_, err = io.ReadFull(r.Body, body)
	} else {
		body, err = io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			s.reject(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("the body is larger than %d bytes", limit))
		} else {
			s.reject(w, http.StatusBadRequest, "bad_body", "cannot read the body")
		}
		return nil, false
	}
	return body, true
}

// submit waits until the events are durable and answers the error statuses.
func (s *Server) submit(w http.ResponseWriter, r *http.Request, evs []events.Event, raw [][]byte) bool {
	err := s.commit.Submit(r.Context(), evs, raw)
	switch {
	case err == nil:
		return true
	case errors.Is(err, ErrQueueFull):
		s.reject(w, http.StatusTooManyRequests, "queue_full", "the ingest queue is full; retry later")
	case errors.Is(err, ErrTooLarge):
		s.reject(w, http.StatusRequestEntityTooLarge, "body_too_large", "the request holds more events than the queue; split it")
	case errors.Is(err, ErrClosed):
		s.reject(w, http.StatusServiceUnavailable, "shutting_down", "the receiver is shutting down; retry")
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		s.metrics.rejected.WithLabelValues("client_gone").Inc()
	default:
		s.reject(w, http.StatusServiceUnavailable, "write_error", "the events could not be stored; retry")
	}
	return false
}

// handleVerify answers Meta's subscription handshake: hub.mode=subscribe and the
// configured hub.verify_token get hub.challenge back.
func (s *Server) handleVerify(w http.ResponseWriter, r *http.Request) {
	if s.cfg.VerifyToken == "" || s.cfg.AppSecret == "" {
		http.NotFound(w, r)
		return
	}
	q := r.URL.Query()
	mode, token, challenge := q.Get("hub.mode"), q.Get("hub.verify_token"), q.Get("hub.challenge")
	if mode == "" || token == "" || challenge == "" {
		s.reject(w, http.StatusBadRequest, "handshake_incomplete", "hub.mode, hub.verify_token and hub.challenge are required")
		return
	}
	got := sha256.Sum256([]byte(token))
	if mode != "subscribe" || subtle.ConstantTimeCompare(got[:], s.verify[:]) != 1 {
		s.reject(w, http.StatusForbidden, "handshake_token", "verification failed")
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, challenge)
}

// CheckSignature reports whether header is "sha256=" + hex HMAC-SHA256(secret, body),
// compared in constant time.
func CheckSignature(secret, body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(secret) == 0 {
		return false
	}
	sig, err := hex.DecodeString(hexSig)
	if err != nil || len(sig) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(sig, m.Sum(nil))
}

// checkSignature is CheckSignature with the server's secret and a pooled HMAC state.
func (s *Server) checkSignature(body []byte, header string) bool {
	hexSig, ok := strings.CutPrefix(strings.TrimSpace(header), "sha256=")
	if !ok || len(s.appMAC) == 0 || len(hexSig) != 2*sha256.Size {
		return false
	}
	var sig, sum [sha256.Size]byte
	if _, err := hex.Decode(sig[:], []byte(hexSig)); err != nil {
		return false
	}
	m := s.macs.Get().(hash.Hash)
	m.Reset()
	m.Write(body)
	m.Sum(sum[:0])
	s.macs.Put(m)
	return hmac.Equal(sig[:], sum[:])
}

// Sign returns the X-Hub-Signature-256 header value of body (for tests and tools).
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func (s *Server) handleWebhook(w http.ResponseWriter, r *http.Request) {
	if s.cfg.VerifyToken == "" || s.cfg.AppSecret == "" {
		http.NotFound(w, r)
		return
	}
	if !s.acquire(w) {
		return
	}
	defer s.release()
	body, ok := s.readBody(w, r, s.cfg.MaxWebhookBytes)
	if !ok {
		return
	}
	sig := r.Header.Get("X-Hub-Signature-256")
	if sig == "" {
		s.reject(w, http.StatusUnauthorized, "signature_missing", "X-Hub-Signature-256 is required")
		return
	}
	if !s.checkSignature(body, sig) {
		s.reject(w, http.StatusUnauthorized, "signature_invalid", "X-Hub-Signature-256 does not match the body")
		return
	}
	mapped, err := s.mapper.MapWebhook(body)
	if err != nil {
		s.reject(w, http.StatusBadRequest, "bad_json", err.Error())
		return
	}
	now := time.Now().UTC()
	raw := make([][]byte, 0, len(mapped.Raw))
	for _, it := range mapped.Raw {
		line, _ := json.Marshal(struct {
			ReceivedAt time.Time `json:"received_at"`
			RawItem
		}{now, it})
		raw = append(raw, line)
	}
	if !s.submit(w, r, mapped.Events, raw) {
		return
	}
	s.webhookEvents.Add(float64(len(mapped.Events)))
	// {"events":N,"archived":M}, as writeJSON would encode it, without the encoder.
	out := make([]byte, 0, 48)
	out = append(out, `{"events":`...)
	out = strconv.AppendInt(out, int64(len(mapped.Events)), 10)
	out = append(out, `,"archived":`...)
	out = strconv.AppendInt(out, int64(len(raw)), 10)
	out = append(out, "}\n"...)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// EventsResponse is the answer of the events API.
type EventsResponse struct {
	Accepted      int        `json:"accepted"`
	RejectedCount int        `json:"rejected_count"`
	Rejected      []RowError `json:"rejected,omitempty"`
}

// MaxRejectedShown bounds the rejected rows listed in one answer.
const MaxRejectedShown = 1000

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	if s.cfg.APIToken == "" {
		http.NotFound(w, r)
		return
	}
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	got := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	if !ok || subtle.ConstantTimeCompare(got[:], s.api[:]) != 1 {
		s.reject(w, http.StatusUnauthorized, "auth", "a valid bearer token is required (Authorization: Bearer …)")
		return
	}
	if !s.acquire(w) {
		return
	}
	defer s.release()
	body, ok := s.readBody(w, r, s.cfg.MaxEventsBytes)
	if !ok {
		return
	}
	evs, rejected, err := DecodeRows(body, s.cfg.Hasher, s.cfg.MaxRows)
	if err != nil {
		if errors.Is(err, errTooManyRows) {
			s.reject(w, http.StatusRequestEntityTooLarge, "too_many_rows", fmt.Sprintf("more than %d rows in one request; split it", s.cfg.MaxRows))
			return
		}
		s.reject(w, http.StatusBadRequest, "bad_json", err.Error())
		return
	}
	if len(rejected) > 0 {
		s.metrics.rejected.WithLabelValues("invalid_row").Add(float64(len(rejected)))
	}
	if !s.submit(w, r, evs, nil) {
		return
	}
	s.metrics.received.WithLabelValues("api").Add(float64(len(evs)))
	resp := EventsResponse{Accepted: len(evs), RejectedCount: len(rejected), Rejected: rejected}
	if len(resp.Rejected) > MaxRejectedShown {
		resp.Rejected = resp.Rejected[:MaxRejectedShown]
	}
	code := http.StatusOK
	if len(evs) == 0 && len(rejected) > 0 {
		code = http.StatusUnprocessableEntity
	}
	writeJSON(w, code, resp)
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	queued, lastOK, err := s.commit.Health()
	resp := map[string]any{"status": "ok", "queued_events": queued}
	if !lastOK.IsZero() {
		resp["last_commit"] = lastOK.UTC().Format(time.RFC3339Nano)
	}
	code := http.StatusOK
	if err != nil {
		resp["status"], resp["error"] = "failing", "the last commit failed"
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, resp)
}
