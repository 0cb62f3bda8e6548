package ingest

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/events"
)

// The write-ahead log (docs/INGEST.md "Durability"). A group commit appends one framed,
// checksummed record per request to the receiver's current WAL file and fsyncs it; that
// is what a 2xx waits for. A background flusher cuts a Parquet segment from a WAL file's
// events (kept in memory) every FlushInterval or FlushEvents and deletes the file once the
// segment is published. A receiver that starts (and every maintenance tick) replays WAL
// files whose owner is gone: each file is flock'ed by its owner for its whole life, so a
// file that can be locked belongs to a dead process.
//
// File layout: the 8-byte magic walMagic, then records:
//
//	uint32 LE  payload length
//	uint32 LE  CRC-32C (Castagnoli) of the payload
//	payload:   uvarint event count, then each event (encodeEvent)
//
// A record is written whole before its fsync; a crash can leave a torn last record, whose
// events were never acknowledged: replay stops at the first record that is short or fails
// its checksum.

// WALDir is the store subdirectory of the receivers' write-ahead logs.
const WALDir = "wal"

var walMagic = [8]byte{'B', 'T', 'W', 'A', 'L', 0, 0, 1}

// maxWALRecord bounds one record's payload when reading (a length beyond it is garbage).
const maxWALRecord = 1 << 30

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// appendString appends a uvarint length and the bytes.
func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// encodeEvent appends one event: ts as varint Unix nanoseconds (years 2000-2200 fit), a
// flags byte (1: error_code, 2: value), the optional numbers, then the 21 text columns.
func encodeEvent(b []byte, e *events.Event) []byte {
	b = binary.AppendVarint(b, e.TS.UnixNano())
	var flags byte
	if e.ErrorCode != nil {
		flags |= 1
	}
	if e.Value != nil {
		flags |= 2
	}
	b = append(b, flags)
	if e.ErrorCode != nil {
		b = binary.AppendVarint(b, int64(*e.ErrorCode))
	}
	if e.Value != nil {
		b = binary.LittleEndian.AppendUint64(b, math.Float64bits(*e.Value))
	}
	for _, s := range [...]string{e.EventID, e.Type, e.MessageID, e.ReplyTo, e.ConversationID,
		e.ContactID, e.BusinessNumber, e.Sender, e.AgentID, e.Campaign, e.Template, e.Category,
		e.Variant, e.Segment, e.Country, e.MessageType, e.Currency, e.Step, e.Quality, e.PricingType} {
		b = appendString(b, s)
	}
	return b
}

// EncodeWALRecord frames events as one WAL record (length, CRC-32C, payload).
func EncodeWALRecord(evs []events.Event) []byte {
	size := 16
	for i := range evs {
		size += int(eventBytes(&evs[i]))
	}
	b := make([]byte, 8, size)
	b = binary.AppendUvarint(b, uint64(len(evs)))
	for i := range evs {
		b = encodeEvent(b, &evs[i])
	}
	binary.LittleEndian.PutUint32(b[0:4], uint32(len(b)-8))
	binary.LittleEndian.PutUint32(b[4:8], crc32.Checksum(b[8:], crcTable))
	return b
}

var errBadRecord = errors.New("malformed WAL record")

type recordReader struct {
	b   []byte
	err bool
}

func (r *recordReader) uvarint() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) varint() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = true, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *recordReader) bytes(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.err, r.b = true, nil
		return nil
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *recordReader) str() string {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err, r.b = true, nil
		return ""
	}
	return string(r.bytes(int(n)))
}

// decodeWALPayload decodes a record's payload (after its checksum was verified).
func decodeWALPayload(p []byte, out []events.Event) ([]events.Event, error) {
	r := &recordReader{b: p}
	n := r.uvarint()
	if r.err || n > uint64(len(p)) {
		return out, errBadRecord
	}
	for i := uint64(0); i < n; i++ {
		var e events.Event
		e.TS = time.Unix(0, r.varint()).UTC()
		flags := r.bytes(1)
		if r.err {
			return out, errBadRecord
		}
		if flags[0]&1 != 0 {
			c := int32(r.varint())
			e.ErrorCode = &c
		}
		if flags[0]&2 != 0 {
			if b := r.bytes(8); b != nil {
				v := math.Float64frombits(binary.LittleEndian.Uint64(b))
				e.Value = &v
			}
		}
		for _, s := range [...]*string{&e.EventID, &e.Type, &e.MessageID, &e.ReplyTo, &e.ConversationID,
			&e.ContactID, &e.BusinessNumber, &e.Sender, &e.AgentID, &e.Campaign, &e.Template, &e.Category,
			&e.Variant, &e.Segment, &e.Country, &e.MessageType, &e.Currency, &e.Step, &e.Quality, &e.PricingType} {
			*s = r.str()
		}
		if r.err {
			return out, errBadRecord
		}
		out = append(out, e)
	}
	if len(r.b) != 0 {
		return out, errBadRecord
	}
	return out, nil
}

// WALContents is what ReadWAL found in a WAL file.
type WALContents struct {
	Events  []events.Event
	Records int
	// Discarded counts bytes after the last good record (a torn write at a crash, or
	// damage): their events were never acknowledged.
	Discarded int64
}

// ReadWAL reads a WAL file's records in order, stopping at the first record that is short
// or fails its checksum.
func ReadWAL(r io.Reader) (WALContents, error) {
	var out WALContents
	br := bufio.NewReaderSize(r, 1<<20)
	var magic [8]byte
	n, err := io.ReadFull(br, magic[:])
	if err != nil {
		if n == 0 && (err == io.EOF || err == io.ErrUnexpectedEOF) {
			return out, nil // created, nothing written yet
		}
		out.Discarded = int64(n)
		if err == io.ErrUnexpectedEOF {
			return out, nil
		}
		return out, err
	}
	if magic != walMagic {
		return out, fmt.Errorf("not a Blue Ticks WAL file (bad magic)")
	}
	var hdr [8]byte
	var payload []byte
	for {
		n, err := io.ReadFull(br, hdr[:])
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			if err == io.ErrUnexpectedEOF {
				out.Discarded += int64(n)
				return out, nil
			}
			return out, err
		}
		size := binary.LittleEndian.Uint32(hdr[0:4])
		sum := binary.LittleEndian.Uint32(hdr[4:8])
		if size > maxWALRecord {
			rest, _ := io.Copy(io.Discard, br)
			out.Discarded += 8 + rest
			return out, nil
		}
		if cap(payload) < int(size) {
			payload = make([]byte, size)
		}
		payload = payload[:size]
		m, err := io.ReadFull(br, payload)
		if err != nil {
			if err == io.ErrUnexpectedEOF || err == io.EOF {
				out.Discarded += 8 + int64(m)
				return out, nil
			}
			return out, err
		}
		before := len(out.Events)
		good := crc32.Checksum(payload, crcTable) == sum
		if good {
			var derr error
			out.Events, derr = decodeWALPayload(payload, out.Events)
			good = derr == nil
		}
		if !good {
			out.Events = out.Events[:before]
			rest, _ := io.Copy(io.Discard, br)
			out.Discarded += 8 + int64(size) + rest
			return out, nil
		}
		out.Records++
	}
}

// walFile is a receiver's open, locked WAL file.
type walFile struct {
	f      *os.File
	path   string
	size   int64
	events int
	opened time.Time
}

// newWALName sorts by creation time and is unique across processes.
func newWALName(now time.Time) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%020d-%s.wal", now.UnixNano(), hex.EncodeToString(r[:]))
}

// createWAL makes a new WAL file in STORE/wal: created under a dot name, locked, its magic
// written and fsynced, then renamed to its final name and the directory fsynced. So no
// other process ever sees an unlocked live WAL file (it would take it for a dead one).
func createWAL(storeDir string) (*walFile, error) {
	dir := filepath.Join(storeDir, WALDir)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	now := time.Now()
	name := newWALName(now)
	tmp := filepath.Join(dir, "."+name+".new")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("wal: %w", err)
	}
	fail := func(err error) (*walFile, error) {
		f.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("wal: %w", err)
	}
	ok, err := tryLockFile(f)
	if err != nil {
		return fail(err)
	}
	if !ok {
		return fail(errors.New("a new WAL file is locked by another process"))
	}
	if _, err := f.Write(walMagic[:]); err != nil {
		return fail(err)
	}
	if err := f.Sync(); err != nil {
		return fail(err)
	}
	final := filepath.Join(dir, name)
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: %w", err)
	}
	return &walFile{f: f, path: final, size: int64(len(walMagic)), opened: now}, nil
}

// write appends framed records and fsyncs them.
func (w *walFile) write(buf []byte) error {
	n, err := w.f.Write(buf)
	w.size += int64(n)
	if err != nil {
		return err
	}
	return w.f.Sync()
}

// remove deletes the file (its events are in a published segment), then releases the lock.
func (w *walFile) remove() error {
	err := os.Remove(w.path)
	if cerr := w.f.Close(); err == nil {
		err = cerr
	}
	return err
}

// close releases the lock and keeps the file (for a later replay).
func (w *walFile) close() error { return w.f.Close() }

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// orphanWAL is a WAL file of a process that is gone, claimed (locked) by this one.
type orphanWAL struct {
	f    *os.File
	path string
}

// claimOrphanWALs locks every WAL file in STORE/wal whose owner is gone (its lock is free)
// and that is still linked under its name (another process may have replayed and deleted
// it between our listing and our lock). Leftover dot files of creations interrupted by a
// crash are deleted. The result is in creation order.
func claimOrphanWALs(storeDir string) ([]orphanWAL, error) {
	dir := filepath.Join(storeDir, WALDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("wal: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() {
			continue
		}
		if strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".wal.new") {
			// Never renamed: its creator died before writing an event to it. A live
			// creator holds the lock for the few microseconds it exists.
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Minute {
				removeIfUnlocked(filepath.Join(dir, name))
			}
			continue
		}
		if strings.HasSuffix(name, ".wal") && !strings.HasPrefix(name, ".") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	var out []orphanWAL
	for _, name := range names {
		p := filepath.Join(dir, name)
		f, err := os.Open(p)
		if err != nil {
			continue // replayed and removed by another process meanwhile
		}
		ok, err := tryLockFile(f)
		if err != nil || !ok {
			f.Close()
			continue // alive (or not lockable): not ours
		}
		fi, err1 := f.Stat()
		pi, err2 := os.Stat(p)
		if err1 != nil || err2 != nil || !os.SameFile(fi, pi) {
			f.Close()
			continue
		}
		out = append(out, orphanWAL{f: f, path: p})
	}
	return out, nil
}

func removeIfUnlocked(p string) {
	f, err := os.Open(p)
	if err != nil {
		return
	}
	defer f.Close()
	if ok, err := tryLockFile(f); err == nil && ok {
		os.Remove(p)
	}
}
