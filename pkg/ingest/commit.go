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

// CommitOptions tune group commit and the write-ahead log.
type CommitOptions struct {
	// Interval is the least time between two commits (default 0 with the WAL: a commit
	// starts as soon as the previous one is done, and everything that arrived meanwhile
	// shares it; 25 ms with DirectSegments). Requests arriving meanwhile share the next
	// commit and its fsync. Negative: 0.
	Interval time.Duration
	// MaxBatchEvents commits at once when this many events are waiting (default 50000).
	MaxBatchEvents int
	// MaxQueueEvents and MaxQueueBytes bound what waits for a commit (defaults 200000
	// events, 128 MiB); beyond them Submit fails with ErrQueueFull.
	MaxQueueEvents int
	MaxQueueBytes  int64

	// FlushInterval: a segment is cut from the WAL at most this long after the first event
	// written to it (default 1 s): the longest delay before new events are visible to
	// queries while events keep arriving.
	FlushInterval time.Duration
	// FlushIdle cuts a segment once no event has been written for this long (default
	// 100 ms; negative: off), so a burst is visible soon after its last event, while
	// traffic with gaps under FlushIdle still makes one segment per FlushInterval (a cut
	// costs a DuckDB COPY: cutting every 250 ms cost a quarter of the webhook throughput
	// on 2 CPUs). Sparser traffic makes a small segment per burst; compaction merges them.
	FlushIdle time.Duration
	// FlushEvents cuts a segment as soon as the WAL holds this many events (default 100000).
	FlushEvents int
	// MaxUnflushedEvents and MaxUnflushedBytes bound events that are durable in the WAL
	// but not yet in a segment (they are held in memory until then; defaults 1 000 000
	// events, 256 MiB). Beyond them Submit fails with ErrQueueFull: segments are not
	// being written fast enough (or not at all: see the flush errors).
	MaxUnflushedEvents int
	MaxUnflushedBytes  int64
	// DirectSegments turns the WAL off: each commit writes, fsyncs and publishes a segment
	// before it answers (the only mode on Windows; much slower: a segment costs 20-50 ms).
	DirectSegments bool
}

func (o *CommitOptions) defaults() {
	if !walSupported {
		o.DirectSegments = true
	}
	if o.Interval == 0 && o.DirectSegments {
		o.Interval = 25 * time.Millisecond
	}
	if o.Interval < 0 {
		o.Interval = 0
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
	if o.FlushInterval <= 0 {
		o.FlushInterval = time.Second
	}
	if o.FlushIdle == 0 {
		o.FlushIdle = 100 * time.Millisecond
	}
	if o.FlushEvents <= 0 {
		o.FlushEvents = 100_000
	}
	if o.MaxUnflushedEvents <= 0 {
		o.MaxUnflushedEvents = 1_000_000
	}
	if o.MaxUnflushedBytes <= 0 {
		o.MaxUnflushedBytes = 256 << 20
	}
}

// commitReq is one request's events (and their WAL record) and raw archive lines, waiting
// for a commit.
type commitReq struct {
	evs   []events.Event
	rec   []byte // the events as one WAL record (nil with DirectSegments or no events)
	raw   [][]byte
	slots int   // queue slots held: events, at least 1
	bytes int64 // estimated bytes held
	enq   time.Time
	done  chan error
	flush chan error // set on a Flush request (no events): answered once everything before it is in a segment
}

// chunk is one WAL file's events, on their way into a segment.
type chunk struct {
	wal   *walFile
	evs   []events.Event
	bytes int64
	done  []chan error // Flush requests waiting for this chunk
}

// Committer is the single writer. With the WAL (the default) it appends every queued
// request's record to the write-ahead log, fsyncs once and acknowledges them all; a
// flusher goroutine turns the WAL's events into a segment every FlushInterval and then
// deletes the WAL file. With DirectSegments each commit is one durable segment.
type Committer struct {
	w       *store.Writer
	dir     string
	opts    CommitOptions
	log     *slog.Logger
	metrics *Metrics
	now     func() time.Time

	mu         sync.Mutex
	qEvents    int
	qBytes     int64
	unflushedN int   // events durable in the WAL, not yet in a published segment
	unflushedB int64 // their estimated bytes
	closed     bool
	ch         chan *commitReq
	wg         sync.WaitGroup

	lastErr   error
	lastErrAt time.Time
	lastOK    time.Time
	flushErr  error // the last segment cut failed (events stay in the WAL, retried)
	lastFlush time.Time

	// Owned by the loop goroutine.
	cur       *walFile
	curEvs    []events.Event
	curBytes  int64
	curFirst  time.Time // when the first event of cur was written
	curLast   time.Time // when the last one was
	buf       []byte
	flushCh   chan *chunk
	waiting   []chan error // Flush requests for the current chunk
	chunkHint int          // events in the last chunk
}

// NewCommitter starts the writer goroutine (and the flusher). Close stops them after
// flushing.
func NewCommitter(w *store.Writer, opts CommitOptions, log *slog.Logger, m *Metrics) *Committer {
	opts.defaults()
	c := &Committer{w: w, dir: w.Dir(), opts: opts, log: log, metrics: m, now: time.Now,
		ch: make(chan *commitReq, opts.MaxQueueEvents)}
	if !opts.DirectSegments {
		c.flushCh = make(chan *chunk, 4)
		c.wg.Add(1)
		go c.flusher()
	}
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
	if len(evs) > 0 && !c.opts.DirectSegments {
		r.rec = EncodeWALRecord(evs) // here, in the request's goroutine: the writer only copies
	}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.qEvents+r.slots > c.opts.MaxQueueEvents || c.qBytes+r.bytes > c.opts.MaxQueueBytes,
		c.unflushedN+c.qEvents+r.slots > c.opts.MaxUnflushedEvents && c.unflushedN > 0,
		c.unflushedB+c.qBytes+r.bytes > c.opts.MaxUnflushedBytes && c.unflushedN > 0:
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

// Flush cuts a segment from everything acknowledged so far and waits until it is
// published (tests, tools). With DirectSegments it returns at once.
func (c *Committer) Flush(ctx context.Context) error {
	if c.opts.DirectSegments {
		return nil
	}
	r := &commitReq{slots: 1, enq: c.now(), flush: make(chan error, 1), done: make(chan error, 1)}
	c.mu.Lock()
	switch {
	case c.closed:
		c.mu.Unlock()
		return ErrClosed
	case c.qEvents+r.slots > c.opts.MaxQueueEvents:
		c.mu.Unlock()
		return ErrQueueFull
	}
	c.qEvents += r.slots
	c.ch <- r // never blocks: one channel slot per queue slot
	c.mu.Unlock()
	select {
	case err := <-r.flush:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close stops taking requests, commits everything queued, cuts the last segment and stops
// the writer and the flusher.
func (c *Committer) Close() {
	c.mu.Lock()
	if !c.closed {
		c.closed = true
		close(c.ch)
	}
	c.mu.Unlock()
	c.wg.Wait()
}

// Health reports the last write error if no write succeeded since, or a failing segment
// cut.
func (c *Committer) Health() (queued int, lastOK time.Time, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr != nil && c.lastErrAt.After(c.lastOK) {
		err = c.lastErr
	} else if c.flushErr != nil {
		err = c.flushErr
	}
	return c.qEvents, c.lastOK, err
}

// Unflushed is the number of acknowledged events not yet in a published segment.
func (c *Committer) Unflushed() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unflushedN
}

func (c *Committer) loop() {
	defer c.wg.Done()
	if c.flushCh != nil {
		defer close(c.flushCh)
	}
	var lastStart time.Time
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flushTimer := time.NewTimer(time.Hour)
	flushTimer.Stop()
	flushArmed := false
	arm := func(d time.Duration) {
		if flushArmed {
			flushTimer.Stop()
		}
		flushTimer.Reset(max(0, d))
		flushArmed = true
	}
	for {
		// Wait for a request, or for the time to cut a segment.
		if len(c.curEvs) > 0 && !flushArmed {
			arm(c.cutDue())
		}
		var first *commitReq
		var ok bool
		select {
		case first, ok = <-c.ch:
		case <-flushTimer.C:
			flushArmed = false
			if !c.rotate(false) {
				arm(20 * time.Millisecond) // the flusher is busy: look again soon
			}
			continue
		}
		if !ok {
			c.rotate(true)
			return
		}
		batch := []*commitReq{first}
		n := len(first.evs)
		open := true
		if wait := c.opts.Interval - time.Since(lastStart); wait > 0 && first.flush == nil {
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
		if flushArmed && n > 0 && c.opts.FlushIdle > 0 {
			flushTimer.Stop() // new events: the idle deadline moves (re-armed above)
			flushArmed = false
		}
		flushNow := false
		for _, r := range batch {
			if r.flush != nil {
				c.waiting = append(c.waiting, r.flush)
				flushNow = true
			}
		}
		if flushNow {
			c.rotate(true)
		} else if !c.opts.DirectSegments && len(c.curEvs) >= c.opts.FlushEvents {
			c.rotate(false)
		}
		if flushArmed && len(c.curEvs) == 0 {
			flushTimer.Stop()
			flushArmed = false
		}
		if !open {
			// Closed: commit the rest, cut the last segment, then stop.
			for r := range c.ch {
				c.commit([]*commitReq{r}, len(r.evs))
				if r.flush != nil {
					c.waiting = append(c.waiting, r.flush)
				}
			}
			c.rotate(true)
			return
		}
	}
}

// commit makes a batch durable and then answers its requests: raw archive lines fsynced,
// then the events' WAL records appended to the WAL and fsynced (or, with DirectSegments,
// the events appended as one fsynced, published segment).
func (c *Committer) commit(batch []*commitReq, n int) {
	start := time.Now()
	var raw [][]byte
	for _, r := range batch {
		raw = append(raw, r.raw...)
	}
	err := c.appendRaw(raw, start)
	written := 0
	if err == nil && n > 0 {
		if c.opts.DirectSegments {
			all := make([]events.Event, 0, n)
			for _, r := range batch {
				all = append(all, r.evs...)
			}
			var res store.AppendResult
			res, err = c.w.Append(context.Background(), all, store.AppendOptions{})
			written = res.Written
		} else {
			err = c.appendWAL(batch, start)
		}
	}
	done := time.Now()
	c.metrics.writeSeconds.Observe(done.Sub(start).Seconds())
	if err != nil {
		c.metrics.writeErrors.Inc()
		c.log.Error("commit failed; requests answered 503", "events", n, "requests", len(batch), "err", err.Error())
	} else {
		c.metrics.written.Add(float64(written))
		c.metrics.archived.Add(float64(len(raw)))
		var newest time.Time
		for _, r := range batch {
			for i := range r.evs {
				if r.evs[i].TS.After(newest) {
					newest = r.evs[i].TS
				}
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
		if err == nil && !c.opts.DirectSegments {
			c.unflushedN += len(r.evs)
			c.unflushedB += r.bytes
		}
	}
	if err != nil {
		c.lastErr, c.lastErrAt = err, done
	} else {
		c.lastOK = done
	}
	c.metrics.queueEvents.Set(float64(c.qEvents))
	c.metrics.queueBytes.Set(float64(c.qBytes))
	c.metrics.unflushed.Set(float64(c.unflushedN))
	c.mu.Unlock()
	for _, r := range batch {
		if r.flush == nil {
			c.metrics.commitWait.Observe(done.Sub(r.enq).Seconds())
		}
		r.done <- err
	}
}

// appendWAL writes the batch's records to the current WAL file (created when there is
// none) with one write and one fsync, and keeps the events for the next segment.
func (c *Committer) appendWAL(batch []*commitReq, now time.Time) error {
	if c.cur == nil {
		w, err := createWAL(c.dir)
		if err != nil {
			return err
		}
		c.cur = w
	}
	c.buf = c.buf[:0]
	for _, r := range batch {
		c.buf = append(c.buf, r.rec...)
	}
	if err := c.cur.write(c.buf); err != nil {
		// The file's state after a failed write or fsync is unknown: stop using it. Its
		// acknowledged events go into a segment as usual (then it is deleted); the events
		// of this batch were not acknowledged.
		c.rotate(true)
		return fmt.Errorf("wal: %w", err)
	}
	c.curLast = time.Now() // idle counts from the end of the write: a slow fsync is not idleness
	if len(c.curEvs) == 0 {
		c.curFirst = now
		if c.curEvs == nil && c.chunkHint > 0 {
			// About the size of the last chunk: no repeated growth of a large slice.
			c.curEvs = make([]events.Event, 0, min(c.chunkHint+c.chunkHint/4, c.opts.FlushEvents+c.opts.MaxBatchEvents))
		}
	}
	for _, r := range batch {
		c.curEvs = append(c.curEvs, r.evs...)
		c.curBytes += r.bytes
		c.cur.events += len(r.evs)
	}
	if cap(c.buf) > 4<<20 {
		c.buf = nil // do not keep a huge buffer after a large request
	}
	return nil
}

// cutDue is how long until the current WAL file is cut into a segment: FlushInterval
// after its first event, or FlushIdle after its last, whichever comes first.
func (c *Committer) cutDue() time.Duration {
	d := c.opts.FlushInterval - time.Since(c.curFirst)
	if c.opts.FlushIdle > 0 {
		d = min(d, c.opts.FlushIdle-time.Since(c.curLast))
	}
	return d
}

// rotate hands the current WAL file and its events to the flusher, which cuts a segment
// from them; the next commit starts a new WAL file. When the flusher is still busy with
// earlier chunks (at most cap(flushCh)), the file stays current and keeps growing (and
// rotate reports false), unless wait is set.
func (c *Committer) rotate(wait bool) bool {
	if c.opts.DirectSegments {
		for _, w := range c.waiting {
			w <- nil
		}
		c.waiting = nil
		return true
	}
	if c.cur == nil {
		if len(c.waiting) > 0 {
			// Nothing new: wait for the chunks already with the flusher.
			ch := &chunk{done: c.waiting}
			c.waiting = nil
			c.flushCh <- ch
		}
		return true
	}
	ch := &chunk{wal: c.cur, evs: c.curEvs, bytes: c.curBytes, done: c.waiting}
	c.chunkHint = len(c.curEvs)
	if wait {
		c.flushCh <- ch
	} else {
		select {
		case c.flushCh <- ch:
		default:
			return false // try again at the next commit or tick
		}
	}
	c.cur, c.curEvs, c.curBytes, c.waiting = nil, nil, 0, nil
	return true
}

// flusher cuts a segment from each chunk, in order, then deletes the chunk's WAL file. A
// failed cut is retried (the events are durable in the WAL meanwhile); at shutdown, a cut
// that keeps failing leaves the WAL file for the next start to replay.
func (c *Committer) flusher() {
	defer c.wg.Done()
	for ch := range c.flushCh {
		err := c.flushChunk(ch)
		for _, d := range ch.done {
			d <- err
		}
	}
}

func (c *Committer) flushChunk(ch *chunk) error {
	if ch.wal == nil {
		return nil
	}
	backoff := 100 * time.Millisecond
	var err error
	for attempt := 0; ; attempt++ {
		start := time.Now()
		var res store.AppendResult
		res, err = c.w.Append(context.Background(), ch.evs, store.AppendOptions{})
		if err == nil {
			c.metrics.flushSeconds.Observe(time.Since(start).Seconds())
			c.metrics.written.Add(float64(res.Written))
			if rerr := ch.wal.remove(); rerr != nil {
				c.log.Warn("could not delete a flushed WAL file (its events would be replayed as duplicates)", "file", filepath.Base(ch.wal.path), "err", rerr.Error())
			}
			break
		}
		c.metrics.flushErrors.Inc()
		c.log.Error("cutting a segment from the WAL failed; retrying (the events are durable in the WAL)",
			"events", len(ch.evs), "attempt", attempt+1, "err", err.Error())
		c.mu.Lock()
		c.flushErr = err
		closing := c.closed
		c.mu.Unlock()
		if closing && attempt >= 2 {
			// Leave the WAL file for the next start (the lock goes with the process).
			_ = ch.wal.close()
			c.log.Error("giving up at shutdown: the WAL file is replayed at the next start", "file", filepath.Base(ch.wal.path))
			break
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 10*time.Second)
	}
	c.mu.Lock()
	c.unflushedN -= len(ch.evs)
	c.unflushedB -= ch.bytes
	if err == nil {
		c.flushErr = nil
		c.lastFlush = time.Now()
	}
	c.metrics.unflushed.Set(float64(c.unflushedN))
	c.mu.Unlock()
	return err
}

// ReplayResult says what ReplayWALs did.
type ReplayResult struct {
	Files     int   // WAL files of gone processes replayed (and deleted)
	Events    int   // events read from them (before deduplication)
	Written   int   // events in the segments published for them
	Discarded int64 // bytes of torn (never acknowledged) records dropped
}

// ReplayWALs cuts segments from the WAL files of processes that are gone (a receiver
// killed before its flusher published them) and deletes the files. Safe to run from any
// number of processes at once: each file is locked while it is replayed, and a file
// replayed twice (a crash between publishing and deleting) only repeats event ids, which
// readers drop.
func ReplayWALs(ctx context.Context, w *store.Writer, log *slog.Logger) (ReplayResult, error) {
	var res ReplayResult
	if !walSupported {
		return res, nil
	}
	orphans, err := claimOrphanWALs(w.Dir())
	if err != nil {
		return res, err
	}
	var errs []error
	for i, o := range orphans {
		if err := ctx.Err(); err != nil {
			for _, rest := range orphans[i:] {
				rest.f.Close()
			}
			return res, errors.Join(append(errs, err)...)
		}
		contents, err := ReadWAL(o.f)
		if err != nil {
			o.f.Close()
			errs = append(errs, fmt.Errorf("wal %s: %w", filepath.Base(o.path), err))
			continue
		}
		written := 0
		for start := 0; start < len(contents.Events) && err == nil; start += replayBatch {
			end := min(start+replayBatch, len(contents.Events))
			var ar store.AppendResult
			ar, err = w.Append(ctx, contents.Events[start:end], store.AppendOptions{})
			written += ar.Written
		}
		if err != nil {
			o.f.Close() // keep it for the next try
			errs = append(errs, fmt.Errorf("wal %s: %w", filepath.Base(o.path), err))
			continue
		}
		if contents.Discarded > 0 {
			log.Warn("WAL ends in a torn record (written when the process died, never acknowledged)",
				"file", filepath.Base(o.path), "bytes", contents.Discarded)
		}
		if err := os.Remove(o.path); err != nil {
			errs = append(errs, fmt.Errorf("wal %s: %w", filepath.Base(o.path), err))
		}
		o.f.Close()
		res.Files++
		res.Events += len(contents.Events)
		res.Written += written
		res.Discarded += contents.Discarded
		log.Info("replayed the WAL of a stopped receiver", "file", filepath.Base(o.path),
			"events", len(contents.Events), "written", written)
	}
	return res, errors.Join(errs...)
}

// replayBatch bounds the events of one segment written by ReplayWALs.
const replayBatch = 500_000

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
