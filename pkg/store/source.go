package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Kind says what a store path names.
type Kind string

const (
	KindDir     Kind = "store"   // a Blue Ticks store directory
	KindDuckDB  Kind = "duckdb"  // a user's DuckDB file with an events table or view
	KindParquet Kind = "parquet" // a user's Parquet file, directory or glob
)

// Source is a readable event source named by a data source's storePath.
type Source struct {
	Kind Kind
	Path string
}

// OpenSource classifies path. A directory with the store marker (or with a segments/
// folder) is a store; a *.duckdb/*.db file is a DuckDB database; a *.parquet file, a glob
// or a directory of Parquet files is read as Parquet.
func OpenSource(path string) (*Source, error) {
	if path == "" {
		return nil, errors.New("store path is empty")
	}
	if strings.ContainsAny(path, "*?[") {
		files, err := filepath.Glob(path)
		if err != nil {
			return nil, fmt.Errorf("store path %q is not a valid glob: %w", path, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("store path %q matches no files", path)
		}
		return &Source{Kind: KindParquet, Path: path}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, fmt.Errorf("store path %q does not exist (create a store with `blueticks demo --store %s` or `blueticks import --store %s FILE`)", path, path, path)
		}
		return nil, fmt.Errorf("store path %q is not readable: %w", path, err)
	}
	if info.IsDir() {
		if f, err := os.Open(path); err != nil {
			return nil, fmt.Errorf("store path %q is not readable: %w", path, err)
		} else {
			f.Close()
		}
		if IsStore(path) {
			return &Source{Kind: KindDir, Path: path}, nil
		}
		if st, err := os.Stat(filepath.Join(path, SegmentsDir)); err == nil && st.IsDir() {
			return &Source{Kind: KindDir, Path: path}, nil
		}
		if m, _ := filepath.Glob(filepath.Join(path, "*.parquet")); len(m) > 0 {
			return &Source{Kind: KindParquet, Path: filepath.Join(path, "*.parquet")}, nil
		}
		return nil, fmt.Errorf("store path %q is a directory but neither a Blue Ticks store (no %s) nor a folder of .parquet files", path, MarkerFile)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store path %q is not readable: %w", path, err)
	}
	f.Close()
	switch strings.ToLower(filepath.Ext(path)) {
	case ".parquet":
		return &Source{Kind: KindParquet, Path: path}, nil
	case ".duckdb", ".db", ".ddb":
		return &Source{Kind: KindDuckDB, Path: path}, nil
	}
	return nil, fmt.Errorf("store path %q: unknown kind of file (want a store directory, a .duckdb file or .parquet files)", path)
}

// Files lists the files the source reads now, in arrival order.
func (s *Source) Files() ([]Segment, error) {
	switch s.Kind {
	case KindDir:
		return ListSegments(s.Path)
	case KindParquet:
		pattern := s.Path
		files, err := filepath.Glob(pattern)
		if err != nil {
			return nil, err
		}
		if len(files) == 0 {
			if _, err := os.Stat(pattern); err == nil {
				files = []string{pattern}
			}
		}
		sort.Strings(files)
		segs := make([]Segment, 0, len(files))
		for _, f := range files {
			info, err := os.Stat(f)
			if err != nil || info.IsDir() {
				continue
			}
			segs = append(segs, Segment{Path: f, Name: filepath.Base(f), Size: info.Size()})
		}
		return segs, nil
	case KindDuckDB:
		info, err := os.Stat(s.Path)
		if err != nil {
			return nil, fmt.Errorf("store file %q: %w", s.Path, err)
		}
		return []Segment{{Path: s.Path, Name: filepath.Base(s.Path), Size: info.Size()}}, nil
	}
	return nil, fmt.Errorf("unknown store kind %q", s.Kind)
}

// Version fingerprints the files a source reads: it changes whenever a segment is
// published, compacted or a user file changes.
func Version(segs []Segment, extra string) string {
	h := sha256.New()
	h.Write([]byte(extra))
	for _, s := range segs {
		fmt.Fprintf(h, "%s:%d;", s.Name, s.Size)
		if info, err := os.Stat(s.Path); err == nil {
			fmt.Fprintf(h, "%d;", info.ModTime().UnixNano())
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Dirs lists the directories DuckDB must be allowed to read for this source.
func (s *Source) Dirs() []string {
	switch s.Kind {
	case KindDir:
		abs, _ := filepath.Abs(s.Path)
		return []string{filepath.Join(abs, SegmentsDir) + "/", filepath.Join(abs, RetiredDir) + "/"}
	default:
		abs, _ := filepath.Abs(s.Path)
		return []string{filepath.Dir(abs) + "/"}
	}
}
