package images

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	bolt "go.etcd.io/bbolt"
)

// Record is what berthd keeps of an image: a name pointing at the
// descriptor of its manifest or index in the content store.
type Record struct {
	// Name is the normalised reference (docker.io/library/busybox:latest,
	// or repo@digest when pulled by digest). An image whose name went to
	// another image is kept as a dangling record, named danglingPrefix+
	// its target digest, as docker keeps it as <none>:<none>.
	Name   string             `json:"name"`
	Target ocispec.Descriptor `json:"target"`
	// Config is the digest of the image config for the platform the
	// image was pulled for: docker's image ID, kept to find images by ID
	// without reading their manifests.
	Config    digest.Digest     `json:"config,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	CreatedAt time.Time         `json:"created"`
	UpdatedAt time.Time         `json:"updated"`
}

// danglingPrefix names the records of untagged images.
const danglingPrefix = "<none>@"

// Dangling tells whether the record has no name of its own.
func (r Record) Dangling() bool { return strings.HasPrefix(r.Name, danglingPrefix) }

// The bbolt layout: v1/images/<name> = Record as JSON.
var bucketImages = []byte("images")

func imagesBucket(tx *bolt.Tx) *bolt.Bucket {
	return tx.Bucket([]byte("v1")).Bucket(bucketImages)
}

func initRecords(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		v1, err := tx.CreateBucketIfNotExists([]byte("v1"))
		if err != nil {
			return err
		}
		_, err = v1.CreateBucketIfNotExists(bucketImages)
		return err
	})
}

func getRecord(tx *bolt.Tx, name string) (Record, error) {
	v := imagesBucket(tx).Get([]byte(name))
	if v == nil {
		return Record{}, fmt.Errorf("image %q: %w", name, errdefs.ErrNotFound)
	}
	var r Record
	if err := json.Unmarshal(v, &r); err != nil {
		return Record{}, fmt.Errorf("image %q: corrupt record: %w", name, err)
	}
	return r, nil
}

func putRecord(tx *bolt.Tx, r Record) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	return imagesBucket(tx).Put([]byte(r.Name), v)
}

func allRecords(tx *bolt.Tx) ([]Record, error) {
	var out []Record
	err := imagesBucket(tx).ForEach(func(k, v []byte) error {
		var r Record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("image %q: corrupt record: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// setRecord points name at target, keeping the record's creation time and
// labels (unless new ones are given) if it existed. An image that loses its
// last name this way stays as a dangling record. It reports the record that
// was replaced, if any.
func setRecord(tx *bolt.Tx, name string, target ocispec.Descriptor, config digest.Digest, labels map[string]string) (old *Record, err error) {
	now := time.Now().UTC()
	r := Record{Name: name, Target: target, Config: config, Labels: labels, CreatedAt: now, UpdatedAt: now}
	if prev, err := getRecord(tx, name); err == nil {
		old = &prev
		r.CreatedAt = prev.CreatedAt
		if labels == nil {
			r.Labels = prev.Labels
		}
	}
	if err := putRecord(tx, r); err != nil {
		return nil, err
	}
	// A named image makes its dangling record redundant.
	d := danglingPrefix + target.Digest.String()
	if name != d && imagesBucket(tx).Get([]byte(d)) != nil {
		if err := imagesBucket(tx).Delete([]byte(d)); err != nil {
			return nil, err
		}
	}
	if old != nil && old.Target.Digest != target.Digest {
		if err := keepDangling(tx, *old); err != nil {
			return nil, err
		}
	}
	return old, nil
}

// keepDangling records old's target as a dangling image if no record
// points at it any more.
func keepDangling(tx *bolt.Tx, old Record) error {
	recs, err := allRecords(tx)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if r.Target.Digest == old.Target.Digest {
			return nil
		}
	}
	now := time.Now().UTC()
	return putRecord(tx, Record{Name: danglingPrefix + old.Target.Digest.String(), Target: old.Target, Config: old.Config, Labels: old.Labels, CreatedAt: old.CreatedAt, UpdatedAt: now})
}
