// Package store is the on-disk event store: a directory of immutable Parquet segments in SPEC
// columns. Writers publish whole segments with an atomic rename; readers list the segments
// and deduplicate by event_id (first arrival wins), so any number of processes can write
// while others read, without locks on the read path. See docs/ARCHITECTURE.md.
package store

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

const (
	// MarkerFile marks a directory as a Blue Ticks store.
	MarkerFile = "blueticks.json"
	// SegmentsDir holds the published, immutable segments.
	SegmentsDir = "segments"
	// TmpDir holds segments being written; readers never look there.
	TmpDir = "tmp"
	// RetiredDir holds segments replaced by compaction until their grace period ends.
	RetiredDir = "retired"
	// FormatVersion is the layout version written to the marker.
	FormatVersion = 1
)

// ErrNotAStore is returned when a directory exists but holds no store marker.
var ErrNotAStore = errors.New("not a Blue Ticks store")

type marker struct {
	Format int `json:"format"`
}

// Init creates the store layout in dir (idempotent).
func Init(dir string) error {
	for _, d := range []string{dir, filepath.Join(dir, SegmentsDir), filepath.Join(dir, TmpDir), filepath.Join(dir, RetiredDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create store directory: %w", err)
		}
	}
	mp := filepath.Join(dir, MarkerFile)
	if _, err := os.Stat(mp); err == nil {
		return nil
	}
	b, _ := json.Marshal(marker{Format: FormatVersion})
	return writeFileAtomic(mp, b)
}

// IsStore reports whether dir holds a store marker.
func IsStore(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, MarkerFile))
	return err == nil
}

// Segment is one published segment file.
type Segment struct {
	Path string
	Name string
	Size int64
}

// ListSegments returns the published segments in arrival order (their names sort by
// arrival).
func ListSegments(dir string) ([]Segment, error) {
	entries, err := os.ReadDir(filepath.Join(dir, SegmentsDir))
	if err != nil {
		return nil, fmt.Errorf("list store segments: %w", err)
	}
	segs := make([]Segment, 0, len(entries))
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".parquet") || strings.HasPrefix(name, ".") {
			continue
		}
		info, err := e.Info()
		if err != nil {
			continue // retired between ReadDir and Info
		}
		segs = append(segs, Segment{Path: filepath.Join(dir, SegmentsDir, name), Name: name, Size: info.Size()})
	}
	sort.Slice(segs, func(i, j int) bool { return segs[i].Name < segs[j].Name })
	return segs, nil
}

// IsSegmentGone reports whether a DuckDB read failed because a segment it was given was
// retired (merged by compaction or dropped by retention) after ListSegments returned it.
// Readers list again and retry. DuckDB words it as an IO error, differently before and
// after it expanded the file list; a reader that opens segments itself gets
// fs.ErrNotExist. Other errors (a catalog error, a broken file) are not a retired
// segment, and retrying them would only repeat them.
func IsSegmentGone(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, fs.ErrNotExist) {
		return true // opened by the reader itself
	}
	s := err.Error()
	return strings.Contains(s, "IO Error") &&
		(strings.Contains(s, "No files found") || strings.Contains(s, "No such file") || strings.Contains(s, "does not exist"))
}

// newSegmentName gives a name that sorts by creation time and is unique across processes.
func newSegmentName(now time.Time) string {
	var r [6]byte
	_, _ = rand.Read(r[:])
	return fmt.Sprintf("%020d-%s.parquet", now.UnixNano(), hex.EncodeToString(r[:]))
}

func writeFileAtomic(path string, data []byte) error {
	tmp := path + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// publish fsyncs a finished segment in tmp/ and renames it into segments/, then fsyncs the
// directory so the rename survives a crash.
func publish(dir, tmpPath, name string) (string, error) {
	f, err := os.Open(tmpPath)
	if err != nil {
		return "", err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return "", err
	}
	f.Close()
	final := filepath.Join(dir, SegmentsDir, name)
	if err := os.Rename(tmpPath, final); err != nil {
		return "", err
	}
	if d, err := os.Open(filepath.Join(dir, SegmentsDir)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return final, nil
}
