package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/ingest"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/pseudo"
)

// Environment variables holding the receiver's secrets (never flags: flags show in ps).
const (
	envAppSecret   = "BLUETICKS_APP_SECRET"
	envVerifyToken = "BLUETICKS_VERIFY_TOKEN"
	envAPIToken    = "BLUETICKS_API_TOKEN"
)

// runServe runs the ingest receiver: blueticks serve --store DIR --listen ADDR.
func runServe(ctx context.Context, args []string) error {
	fs := newFlags("serve", levelInfo) // info: serve logs where it listens, and when it stops
	dir := fs.String("store", "", "store directory (created if missing)")
	listen := fs.String("listen", "127.0.0.1:8787", "address to listen on (host:port)")
	retention := fs.Int("retention-days", 0, "delete events older than this many days, by whole UTC days (0: keep forever)")
	commitEvery := fs.Duration("commit-interval", 0, "least time between two durable commits (group commit; 0: none, each commit starts when the previous one is done)")
	flushEvery := fs.Duration("flush-interval", time.Second, "longest time acknowledged events wait in the write-ahead log before they are cut into a segment (visible to queries)")
	flushIdle := fs.Duration("flush-idle", 100*time.Millisecond, "cut a segment once no event has arrived for this long, so a burst is visible soon after its last event (0: off)")
	flushEvents := fs.Int("flush-events", 100_000, "cut a segment as soon as the write-ahead log holds this many events")
	queueEvents := fs.Int("max-queue-events", 200_000, "most events waiting for a commit; beyond it requests get 429")
	maxBody := fs.Int64("max-body-bytes", 8<<20, "largest events API request body")
	maxWebhook := fs.Int64("max-webhook-bytes", 1<<20, "largest webhook body")
	maxRows := fs.Int("max-rows", 20_000, "most rows in one events API request")
	inFlight := fs.Int("max-in-flight", 64, "most requests in progress; beyond it requests get 429")
	compactEvery := fs.Duration("compact-every", time.Minute, "period of background compaction (0: off)")
	numberIDs := fs.String("number-ids", "", "display phone number=phone_number_id pairs, comma-separated, for quality webhooks (e.g. 15550001111=106540352242922)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("--store DIR is required")
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *commitEvery < 0 || *flushIdle < 0 || *flushEvery <= 0 || *flushEvents <= 0 {
		return errors.New("--commit-interval and --flush-idle must be 0 or more, --flush-interval and --flush-events more than 0")
	}
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: flagLogLevel(fs).slog()}))

	hasher, err := pseudo.New([]byte(os.Getenv(pseudo.KeyEnv)))
	if err != nil {
		return err
	}
	cfg := ingest.Config{
		StoreDir:    *dir,
		AppSecret:   os.Getenv(envAppSecret),
		VerifyToken: os.Getenv(envVerifyToken),
		APIToken:    os.Getenv(envAPIToken),
		Hasher:      hasher,
		Logger:      log,
		Commit: ingest.CommitOptions{Interval: *commitEvery, MaxQueueEvents: *queueEvents,
			FlushInterval: *flushEvery, FlushIdle: *flushIdle, FlushEvents: *flushEvents},
		MaxWebhookBytes: *maxWebhook,
		MaxEventsBytes:  *maxBody,
		MaxRows:         *maxRows,
		MaxInFlight:     *inFlight,
		CompactEvery:    *compactEvery,
		RetentionDays:   *retention,
	}
	if *compactEvery == 0 {
		cfg.CompactEvery = -1
	}
	if *flushIdle == 0 {
		cfg.Commit.FlushIdle = -1 // off
	}
	if (cfg.AppSecret == "") != (cfg.VerifyToken == "") {
		return fmt.Errorf("set both %s and %s for WhatsApp webhooks, or neither", envAppSecret, envVerifyToken)
	}
	if cfg.AppSecret == "" && cfg.APIToken == "" {
		return fmt.Errorf("nothing to receive: set %s and %s (WhatsApp webhooks) and/or %s (events API)", envAppSecret, envVerifyToken, envAPIToken)
	}
	if *numberIDs != "" {
		cfg.NumberIDs = map[string]string{}
		for _, pair := range strings.Split(*numberIDs, ",") {
			k, v, ok := strings.Cut(pair, "=")
			if !ok || strings.TrimSpace(k) == "" || strings.TrimSpace(v) == "" {
				return fmt.Errorf("--number-ids: %q is not DISPLAY_NUMBER=PHONE_NUMBER_ID", pair)
			}
			cfg.NumberIDs[strings.Trim(strings.TrimSpace(k), "+")] = strings.TrimSpace(v)
		}
	}

	srv, err := ingest.New(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		srv.Close()
		return err
	}
	hs := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       120 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	log.Info("listening", "addr", ln.Addr().String(), "store", *dir,
		"webhook", cfg.AppSecret != "", "events_api", cfg.APIToken != "", "retention_days", *retention)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err = <-errc:
	case <-ctx.Done():
		log.Info("shutting down: finishing requests and flushing")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = hs.Shutdown(sctx)
		cancel()
	}
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	if cerr := srv.Close(); cerr != nil && err == nil {
		err = cerr
	}
	log.Info("stopped")
	return err
}
