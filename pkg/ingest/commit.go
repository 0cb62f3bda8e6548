package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/store"
)

// Errors of Submit; the handlers turn them into status codes.
var (
	ErrQueueFull = errors.New("ingest queue is full")
	ErrClosed    = errors.New("receiver is shutting down")
	ErrTooLarge  = errors.New("request holds more than the whole queue")
)

// RawDir is the store subdirectory of the raw archive.
const RawDir = "raw"

// CommitOptions tune group commit.
type CommitOptions struct {
	// Interval is the least time between two segment appends (default 25 ms): requests
	// arriving meanwhile share the next segment and its fsync.
	Interval time.Duration
	// MaxBatchEvents commits at once when this many events are waiting (default 50000).
	MaxBatchEvents int
	// MaxQueueEvents and MaxQueueBytes bound what waits for a commit (defaults 200000
	// events, 128 MiB); beyond them Submit fails with ErrQueueFull.
	MaxQueueEvents int
	MaxQueueBytes  int64
}

func (o *CommitOptions) defaults() {
	if o.Interval <= 0 {
		o.Interval = 25 * time.Millisecond
	}
	if o.MaxBatchEvents <= 0 {
		o.MaxBatchEvents = 50_000
	}
	if o.MaxQueueEvents <= 0 {
		o.MaxQueueEvents = 200_000
	}
	if o.MaxQueueBytes <= 0 {
		o.MaxQueueBytes = 128 << 20
	}
}

// commitReq is one request's events and raw archive lines, waiting for a commit.
type commitReq struct {
	evs   []events.Event
	raw   [][]byte
	slots int   // queue slots held: events, at least 1
	bytes int64 // estimated bytes held
	enq   time.Time
	done  chan error
}

// Committer is the single writer: it appends everything queued as one durable segment,
// then acknowledges every request in it.
type Committer struct {
	w       *store.Writer
	dir     string
	opts    CommitOptions
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu      sync.Mutex
	qEvents int
	qBytes  int64
	closed  bool
	ch      chan *commitReq
	wg      sync.WaitGroup

	lastErr   error
	lastErrAt time.Time
	lastOK    time.Time
}

// NewCommitter starts the writer goroutine. Close stops it after flushing.
func NewCommitter(w *store.Writer, opts CommitOptions, log *slog.Logger, m *Metrics) *Committer {
	opts.defaults()
	c := &Committer{w: w, dir: w.Dir(), opts: opts, log: log, metrics: m, now: time.Now,
		ch: make(chan *commitReq, opts.MaxQueueEvents)}
	c.wg.Add(1)
	go c.loop()
	return c
}

// eventBytes estimates the memory an event holds while queued.
func eventBytes(e *events.Event) int64 {
	return int64(160 + len(e.EventID) + len(e.Type) + len(e.MessageID) + len(e.ReplyTo) +
		len(e.ConversationID) + len(e.ContactID) + len(e.BusinessNumber) + len(e.Sender) +
		len(e.AgentID) + len(e.Campaign) + len(e.Template) + len(e.Category) + len(e.Variant) +
		len(e.Segment) + len(e.Country) + len(e.MessageType) + len(e.Currency) + len(e.Step) +
		len(e.Quality) + len(e.PricingType))
}

// Submit queues events (validated) and raw archive lines and waits until they are durable.
// It fails at once with ErrQueueFull when the queue has no room (the caller answers 429),
// and returns the write error when the commit failed (nothing was acknowledged).
func (c *Committer) Submit(ctx context.Context, evs []events.Event, raw [][]byte) error {
	if len(evs) == 0 && len(raw) == 0 {
		return nil
	}
	r := &commitReq{evs: evs, raw: raw, slots: max(len(evs), 1), enq: c.now(), done: make(chan error, 1)}
	for i := range evs {
		r.bytes += eventBytes(&evs[i])
	}
	for _, l := range raw {
		r.bytes += int64(len(l))
	}
	if r.slots > c.opts.MaxQueueEvents || r.bytes > c.opts.MaxQueueBytes {
		return ErrTooLarge
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.qEvents+r.slots > c.opts.MaxQueueEvents || c.qBytes+r.bytes > c.opts.MaxQueueBytes:
		c.mu.Unlock()
		return ErrQueueFull
	}
	c.qEvents += r.slots
	c.qBytes += r.bytes
	c.metrics.queueEvents.Set(float64(c.qEvents))
	c.metrics.queueBytes.Set(float64(c.qBytes))
	c.ch <- r // never blocks: the channel has a slot per queued event
	c.mu.Unlock()

	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		// The events are still committed; the client did not wait for the answer and
		// will retry (event ids make that harmless).
		return ctx.Err()
	}
}

// Close stops taking requests, commits everything queued and stops the writer.
func (c *Committer) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.ch)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// Health reports the last write error if no write succeeded since.
func (c *Committer) Health() (queued int, lastOK time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != nil && c.lastErrAt.After(c.lastOK) {
		err = c.lastErr
	}
	return c.qEvents, c.lastOK, err
}

func (c *Committer) loop() {
	defer c.wg.Done()
	var lastStart time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		first, ok := <-c.ch
		if !ok {
			return
		}
		batch := []*commitReq{first}
		n := len(first.evs)
		open := true
		if wait := c.opts.Interval - time.Since(lastStart); wait > 0 {
			timer.Reset(wait)
		collect:
			for n < c.opts.MaxBatchEvents {
				select {
				case r, ok := <-c.ch:
					if !ok {
						open = false
						break collect
					}
					batch = append(batch, r)
					n += len(r.evs)
				case <-timer.C:
					break collect
				}
			}
			timer.Stop()
		}
		// Take whatever else is already waiting, without waiting for more.
	drain:
		for open && n < c.opts.MaxBatchEvents {
			select {
			case r, ok := <-c.ch:
				if !ok {
					open = false
					break drain
				}
				batch = append(batch, r)
				n += len(r.evs)
			default:
				break drain
			}
		}
		lastStart = time.Now()
		c.commit(batch, n)
		if !open {
			// Closed: flush the rest, then stop.
			for r := range c.ch {
				c.commit([]*commitReq{r}, len(r.evs))
			}
			return
		}
	}
}

// commit makes a batch durable (raw archive lines fsynced, events appended as one fsynced
// segment) and then answers its requests.
func (c *Committer) commit(batch []*commitReq, n int) {
	start := time.Now()
	all := make([]events.Event, 0, n)
	var raw [][]byte
	for _, r := range batch {
		all = append(all, r.evs...)
		raw = append(raw, r.raw...)
	}
	err := c.appendRaw(raw, start)
	var res store.AppendResult
	if err == nil && len(all) > 0 {
		res, err = c.w.Append(context.Background(), all, store.AppendOptions{})
	}
	done := time.Now()
	c.metrics.writeSeconds.Observe(done.Sub(start).Seconds())
	if err != nil {
		c.metrics.writeErrors.Inc()
		c.log.Error("commit failed; requests answered 503", "events", len(all), "requests", len(batch), "err", err.Error())
	} else {
		c.metrics.written.Add(float64(res.Written))
		c.metrics.archived.Add(float64(len(raw)))
		var newest time.Time
		for i := range all {
			if all[i].TS.After(newest) {
				newest = all[i].TS
			}
		}
		if !newest.IsZero() {
			c.metrics.eventLag.Set(done.Sub(newest).Seconds())
		}
		c.metrics.lastCommit.Set(float64(done.UnixMilli()) / 1000)
	}
	c.mu.Lock()
	for _, r := range batch {
		c.qEvents -= r.slots
		c.qBytes -= r.bytes
	}
	if err != nil {
		c.lastErr, c.lastErrAt = err, done
	} else {
		c.lastOK = done
	}
	c.metrics.queueEvents.Set(float64(c.qEvents))
	c.metrics.queueBytes.Set(float64(c.qBytes))
	c.mu.Unlock()
	for _, r := range batch {
		c.metrics.commitWait.Observe(done.Sub(r.enq).Seconds())
		r.done <- err
	}
}

// appendRaw appends the lines to STORE/raw/YYYY-MM-DD.ndjson (UTC day of arrival) and
// fsyncs the file (and the directory when the file is new).
func (c *Committer) appendRaw(lines [][]byte, now time.Time) error {
	if len(lines) == 0 {
		return nil
	}
	dir := filepath.Join(c.dir, RawDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("raw archive: %w", err)
	}
	path := filepath.Join(dir, now.UTC().Format("2006-01-02")+".ndjson")
	_, statErr := os.Stat(path)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("raw archive: %w", err)
	}
	size := 0
	for _, l := range lines {
		size += len(l) + 1
	}
	buf := make([]byte, 0, size)
	for _, l := range lines {
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	if _, err := f.Write(buf); err != nil {
		f.Close()
		return fmt.Errorf("raw archive: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("raw archive: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("raw archive: %w", err)
	}
	if os.IsNotExist(statErr) {
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return nil
}
