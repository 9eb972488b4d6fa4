package store

import (
	"encoding/binary"
	"fmt"
	"time"

	"github.com/containerd/errdefs"
	bolt "go.etcd.io/bbolt"

	"github.com/berth-project/berth/snapshotter"
)

// The bbolt layout, under one top-level bucket per schema version so that
// a later layout can live beside this one during a migration:
//
//	v1/snapshots/<key>/       one bucket per snapshot
//	    id       uint64, names the directory snapshots/<id>
//	    kind     one byte, snapshotter.Kind
//	    parent   the parent's key
//	    created  updated   time.Time, binary
//	    inodes   size      int64, the usage recorded when committed
//	    labels/  <name> = <value>
//	v1/children/<parent>\x00<child> = nil   the index Remove consults
var (
	bucketV1        = []byte("v1")
	bucketSnapshots = []byte("snapshots")
	bucketChildren  = []byte("children")
	bucketLabels    = []byte("labels")

	fieldID      = []byte("id")
	fieldKind    = []byte("kind")
	fieldParent  = []byte("parent")
	fieldCreated = []byte("created")
	fieldUpdated = []byte("updated")
	fieldInodes  = []byte("inodes")
	fieldSize    = []byte("size")
)

// record is one snapshot as stored.
type record struct {
	snapshotter.Info
	ID    uint64
	Usage snapshotter.Usage // of a committed snapshot
}

// buckets are the two buckets every operation works in.
type buckets struct {
	v1, snaps, children *bolt.Bucket
}

func openBuckets(tx *bolt.Tx) (buckets, error) {
	if tx.Writable() {
		v1, err := tx.CreateBucketIfNotExists(bucketV1)
		if err != nil {
			return buckets{}, fmt.Errorf("metadata: %w", err)
		}
		snaps, err := v1.CreateBucketIfNotExists(bucketSnapshots)
		if err != nil {
			return buckets{}, fmt.Errorf("metadata: %w", err)
		}
		children, err := v1.CreateBucketIfNotExists(bucketChildren)
		if err != nil {
			return buckets{}, fmt.Errorf("metadata: %w", err)
		}
		return buckets{v1, snaps, children}, nil
	}
	v1 := tx.Bucket(bucketV1)
	if v1 == nil {
		return buckets{}, nil
	}
	return buckets{v1, v1.Bucket(bucketSnapshots), v1.Bucket(bucketChildren)}, nil
}

// get reads the snapshot named key; NotFound when there is none.
func (b buckets) get(key string) (record, error) {
	if b.snaps == nil {
		return record{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	sb := b.snaps.Bucket([]byte(key))
	if sb == nil {
		return record{}, fmt.Errorf("snapshot %q: %w", key, errdefs.ErrNotFound)
	}
	return readRecord(key, sb)
}

func readRecord(key string, sb *bolt.Bucket) (record, error) {
	r := record{Info: snapshotter.Info{Name: key, Parent: string(sb.Get(fieldParent))}}
	id := sb.Get(fieldID)
	kind := sb.Get(fieldKind)
	if len(id) != 8 || len(kind) != 1 {
		return record{}, fmt.Errorf("snapshot %q: metadata is damaged (id %x, kind %x)", key, id, kind)
	}
	r.ID = binary.BigEndian.Uint64(id)
	r.Kind = snapshotter.Kind(kind[0])
	if err := r.Created.UnmarshalBinary(sb.Get(fieldCreated)); err != nil {
		return record{}, fmt.Errorf("snapshot %q: created time: %w", key, err)
	}
	if err := r.Updated.UnmarshalBinary(sb.Get(fieldUpdated)); err != nil {
		return record{}, fmt.Errorf("snapshot %q: updated time: %w", key, err)
	}
	r.Usage.Inodes = getInt(sb, fieldInodes)
	r.Usage.Size = getInt(sb, fieldSize)
	if lb := sb.Bucket(bucketLabels); lb != nil {
		r.Labels = map[string]string{}
		if err := lb.ForEach(func(k, v []byte) error {
			r.Labels[string(k)] = string(v)
			return nil
		}); err != nil {
			return record{}, err
		}
	}
	return r, nil
}

// put writes r under its Name, replacing what was there.
func (b buckets) put(r record) error {
	key := []byte(r.Name)
	if b.snaps.Bucket(key) != nil {
		if err := b.snaps.DeleteBucket(key); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
	}
	sb, err := b.snaps.CreateBucket(key)
	if err != nil {
		return fmt.Errorf("metadata: snapshot %q: %w", r.Name, err)
	}
	created, err := r.Created.MarshalBinary()
	if err != nil {
		return err
	}
	updated, err := r.Updated.MarshalBinary()
	if err != nil {
		return err
	}
	id := binary.BigEndian.AppendUint64(nil, r.ID)
	for _, f := range []struct {
		k, v []byte
	}{
		{fieldID, id},
		{fieldKind, []byte{byte(r.Kind)}},
		{fieldParent, []byte(r.Parent)},
		{fieldCreated, created},
		{fieldUpdated, updated},
		{fieldInodes, binary.BigEndian.AppendUint64(nil, uint64(r.Usage.Inodes))},
		{fieldSize, binary.BigEndian.AppendUint64(nil, uint64(r.Usage.Size))},
	} {
		if err := sb.Put(f.k, f.v); err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
	}
	if len(r.Labels) > 0 {
		lb, err := sb.CreateBucket(bucketLabels)
		if err != nil {
			return fmt.Errorf("metadata: %w", err)
		}
		for k, v := range r.Labels {
			if err := lb.Put([]byte(k), []byte(v)); err != nil {
				return fmt.Errorf("metadata: label %q: %w", k, err)
			}
		}
	}
	return nil
}

// del removes the snapshot named key and its entry in the children index.
func (b buckets) del(r record) error {
	if err := b.snaps.DeleteBucket([]byte(r.Name)); err != nil {
		return fmt.Errorf("metadata: snapshot %q: %w", r.Name, err)
	}
	if r.Parent != "" {
		return b.children.Delete(childKey(r.Parent, r.Name))
	}
	return nil
}

// link records child as a child of parent.
func (b buckets) link(parent, child string) error {
	if parent == "" {
		return nil
	}
	return b.children.Put(childKey(parent, child), nil)
}

// hasChildren tells whether any snapshot names parent as its parent.
func (b buckets) hasChildren(parent string) bool {
	prefix := childKey(parent, "")
	k, _ := b.children.Cursor().Seek(prefix)
	return k != nil && len(k) >= len(prefix) && string(k[:len(prefix)]) == string(prefix)
}

func childKey(parent, child string) []byte {
	return []byte(parent + "\x00" + child)
}

// chain returns the records of key's parents, nearest first.
func (b buckets) chain(parent string) ([]record, error) {
	var out []record
	for parent != "" {
		p, err := b.get(parent)
		if err != nil {
			return nil, fmt.Errorf("parent chain: %w", err)
		}
		out = append(out, p)
		parent = p.Parent
	}
	return out, nil
}

func getInt(b *bolt.Bucket, k []byte) int64 {
	v := b.Get(k)
	if len(v) != 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(v))
}

// now is the time stamped on records: UTC, so that it compares equal after
// a round trip through the wire.
func now() time.Time { return time.Now().UTC() }
