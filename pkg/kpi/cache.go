package kpi

import (
	"container/list"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// The result cache answers a query again without touching DuckDB when nothing it depends
// on changed: the key is the snapshot's version (the store's segment list), the query as
// parsed, the time range and Grafana's interval and point budget. A new snapshot has a new
// version, so a changed store never serves an old answer; entries of old versions are
// dropped when the snapshot is swapped and otherwise age out (least recently used first).
// Raw SQL is not cached (it may call now() or random()).

const (
	// cacheEntries bounds the number of cached answers per engine.
	cacheEntries = 512
	// cacheMaxCells bounds the size of one cached answer (rows × fields over its frames);
	// larger answers are not cached.
	cacheMaxCells = 200_000
)

type resultCache struct {
	mu  sync.Mutex
	max int
	ll  *list.List // front: most recently used
	m   map[string]*list.Element
}

type cacheEntry struct {
	key    string
	frames data.Frames
}

func newResultCache(max int) *resultCache {
	return &resultCache{max: max, ll: list.New(), m: map[string]*list.Element{}}
}

// cacheKey gives the key of r on snapshot version, or false when r must not be cached.
func cacheKey(version string, r Request) (string, bool) {
	if r.Query == nil || r.Query.QueryType == TypeSQL {
		return "", false
	}
	qj, err := json.Marshal(r.Query)
	if err != nil {
		return "", false
	}
	return fmt.Sprintf("%s\x00%s\x00%d\x00%d\x00%d\x00%d", version, qj,
		r.From.UnixNano(), r.To.UnixNano(), int64(r.Interval), r.MaxDataPoints), true
}

// get returns a copy of the cached frames (the caller may set RefID and the like on them).
func (c *resultCache) get(key string) (data.Frames, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.m[key]
	if !ok {
		return nil, false
	}
	c.ll.MoveToFront(el)
	return copyFrames(el.Value.(*cacheEntry).frames), true
}

// put stores a copy of frames under key, evicting the least recently used entries.
func (c *resultCache) put(key string, frames data.Frames) {
	cells := 0
	for _, f := range frames {
		if f == nil {
			return
		}
		cells += f.Rows() * max(1, len(f.Fields))
	}
	if cells > cacheMaxCells {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.m[key]; ok {
		c.ll.MoveToFront(el)
		return
	}
	c.m[key] = c.ll.PushFront(&cacheEntry{key: key, frames: copyFrames(frames)})
	for c.ll.Len() > c.max {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.m, old.Value.(*cacheEntry).key)
	}
}

// clear drops every entry (a new snapshot was swapped in).
func (c *resultCache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ll.Init()
	clear(c.m)
}

// copyFrames copies the frames' headers (name, RefID, meta pointer, field list); the
// fields' values are shared and never written after a query returns.
func copyFrames(fs data.Frames) data.Frames {
	out := make(data.Frames, len(fs))
	for i, f := range fs {
		nf := *f
		nf.Fields = slices.Clone(f.Fields)
		out[i] = &nf
	}
	return out
}
