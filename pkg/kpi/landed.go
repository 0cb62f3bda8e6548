package kpi

import (
	"path/filepath"

	"github.com/fsnotify/fsnotify"
	"github.com/grafana/grafana-plugin-sdk-go/backend/log"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// watchLanded reports, on the channel it returns, when the segments folder of a store
// directory changes: a receiver or an import publishing a segment by renaming it in,
// compaction or retention publishing a merge or a rewrite and retiring (renaming away)
// what it replaces. The engine then looks at the store at once instead of at its next
// CheckEvery: up to 250 ms sooner by default. Changes while the engine is busy are
// coalesced into one report. Other sources, and systems where the watch cannot be set up,
// get a nil channel; on network file systems the watch may hear nothing of other hosts'
// changes. CheckEvery paces the looks there. stop releases the watch.
func watchLanded(src *store.Source) (landed <-chan struct{}, stop func()) {
	if src == nil || src.Kind != store.KindDir {
		return nil, func() {}
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.DefaultLogger.Debug("no change notices for the store; looking at it every CheckEvery", "error", err)
		return nil, func() {}
	}
	dir := filepath.Join(src.Path, store.SegmentsDir)
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		log.DefaultLogger.Debug("no change notices for the store; looking at it every CheckEvery", "dir", dir, "error", err)
		return nil, func() {}
	}
	out := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev, ok := <-w.Events:
				if !ok {
					return
				}
				if !ev.Has(fsnotify.Create) && !ev.Has(fsnotify.Rename) && !ev.Has(fsnotify.Remove) {
					// Writes and attribute changes: segments are published whole, by a
					// rename (Create here), never written in place.
					continue
				}
			case err, ok := <-w.Errors:
				if !ok {
					return
				}
				// An overflowed notice queue loses arrivals: look anyway.
				log.DefaultLogger.Debug("store change notices", "error", err)
			}
			select {
			case out <- struct{}{}:
			default: // a report is pending: the look it starts lists this file too
			}
		}
	}()
	return out, func() {
		_ = w.Close()
		<-done
	}
}
