package containers

import (
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"
)

// TestTrackAfterRemoval: a call that resolved a container just before its
// removal finished gets a container that is already gone (removed and
// exited closed) and leaves nothing behind in memory; a recorded one is
// tracked once.
func TestTrackAfterRemoval(t *testing.T) {
	db, err := bolt.Open(filepath.Join(t.TempDir(), "db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucket(bucketV1)
		if err != nil {
			return err
		}
		c, err := v1.CreateBucket(bucketContainers)
		if err != nil {
			return err
		}
		return c.Put([]byte("kept"), []byte{})
	}); err != nil {
		t.Fatal(err)
	}
	s := &Service{db: db, live: map[string]*container{}}

	if c := s.track("kept"); c != s.track("kept") {
		t.Error("a recorded container is tracked twice")
	}
	gone := s.track("gone")
	select {
	case <-gone.removed:
	default:
		t.Error("a container without a record is not marked removed")
	}
	select {
	case <-gone.exited:
	default:
		t.Error("a container without a record is not marked exited")
	}
	if _, ok := s.live["gone"]; ok || len(s.live) != 1 {
		t.Errorf("tracked: %v, want only kept", s.live)
	}
}
