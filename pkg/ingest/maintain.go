package ingest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// maintain runs compaction and the replay of dead receivers' WAL files every CompactEvery
// (replay every minute when compaction is off), retention every RetentionEvery (and once
// at start), until Close.
func (s *Server) maintain() {
	defer s.bg.Done()
	var compactC, retainC <-chan time.Time
	if s.cfg.CompactEvery > 0 {
		t := time.NewTicker(s.cfg.CompactEvery)
		defer t.Stop()
		compactC = t.C
	}
	if s.cfg.RetentionDays > 0 {
		t := time.NewTicker(s.cfg.RetentionEvery)
		defer t.Stop()
		retainC = t.C
		s.retain()
	}
	every := replayEvery
	if s.cfg.CompactEvery > 0 {
		every = s.cfg.CompactEvery
	}
	replay := time.NewTicker(every)
	defer replay.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-compactC:
			s.compact()
		case <-retainC:
			s.retain()
		case <-replay.C:
			s.replay()
		}
	}
}

// replayEvery is the period of looking for WAL files of receivers that died (another
// receiver on the same store) when compaction is off; otherwise it is the compaction
// period.
const replayEvery = time.Minute

func (s *Server) replay() {
	ctx, cancel := s.stopContext()
	defer cancel()
	res, err := ReplayWALs(ctx, s.maint, s.log)
	s.metrics.replayed.Add(float64(res.Events))
	if err != nil && ctx.Err() == nil {
		s.log.Error("replaying WAL files of stopped receivers failed", "err", err.Error())
	}
}

// stopContext is cancelled when the server closes, so a long maintenance pass stops.
func (s *Server) stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-s.stop:
		case <-ctx.Done():
		}
		cancel()
	}()
	return ctx, cancel
}

func (s *Server) compact() {
	ctx, cancel := s.stopContext()
	defer cancel()
	start := time.Now()
	res, err := s.maint.Compact(ctx, s.cfg.Compact)
	switch {
	case err != nil:
		s.metrics.compactions.WithLabelValues("error").Inc()
		s.log.Error("compaction failed", "err", err.Error())
	case res.Skipped:
		s.metrics.compactions.WithLabelValues("skipped").Inc()
	case res.Merged > 0:
		s.metrics.compactions.WithLabelValues("merged").Inc()
		s.log.Info("compacted", "merged", res.Merged, "output", filepath.Base(res.Output),
			"removed_retired", res.Removed, "duration_ms", time.Since(start).Milliseconds())
	default:
		s.metrics.compactions.WithLabelValues("nothing").Inc()
	}
}

// retain deletes the events and raw archive days of the UTC days before the last
// RetentionDays (retentionCutoff).
func (s *Server) retain() {
	ctx, cancel := s.stopContext()
	defer cancel()
	cutoff := retentionCutoff(time.Now(), s.cfg.RetentionDays)
	res, err := s.maint.DropBefore(ctx, cutoff)
	if err != nil {
		s.log.Error("retention failed", "err", err.Error())
		return
	}
	s.metrics.retention.Add(float64(res.Dropped))
	removed := removeRawBefore(filepath.Join(s.cfg.StoreDir, RawDir), cutoff)
	if res.Dropped > 0 || removed > 0 {
		s.log.Info("retention", "cutoff", cutoff.Format(time.RFC3339), "dropped_events", res.Dropped,
			"rewritten_segments", res.Rewritten, "retired_segments", res.Retired, "raw_days_removed", removed)
	}
}

// retentionCutoff is midnight UTC of the day that many days before now: retention deletes
// whole days, so an event is kept at least days and less than days+1 days. A cutoff that
// moved with the clock would rewrite the oldest segments at every hourly pass, and every
// rewrite makes each data source reading the store rebuild its facts in full (minutes at
// 10M events, ~40 min at 100M); a day's cutoff does it once a day.
func retentionCutoff(now time.Time, days int) time.Time {
	y, m, d := now.UTC().AddDate(0, 0, -days).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// removeRawBefore deletes the raw archive days that end by cutoff.
func removeRawBefore(dir string, cutoff time.Time) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		day, err := time.Parse("2006-01-02", strings.TrimSuffix(e.Name(), ".ndjson"))
		if err != nil || day.AddDate(0, 0, 1).After(cutoff) {
			continue
		}
		if os.Remove(filepath.Join(dir, e.Name())) == nil {
			n++
		}
	}
	return n
}
