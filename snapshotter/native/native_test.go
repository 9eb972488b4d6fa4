package native_test

import (
	"context"
	"testing"

	"github.com/berth-project/berth/snapshotter"
	"github.com/berth-project/berth/snapshotter/native"
	"github.com/berth-project/berth/snapshotter/testsuite"
)

func TestConformance(t *testing.T) {
	testsuite.Run(t, func(t *testing.T, root string) snapshotter.Snapshotter {
		s, err := native.New(context.Background(), root)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}, testsuite.Options{CanRebase: false})
}
