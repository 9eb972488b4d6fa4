// Command mkimage writes berth's offline busybox test image in the forms the
// tests and the demo need:
//
//	go run ./hack/mkimage -bundle DIR [-- ARGS...]   OCI runtime bundle (rootfs + config.json)
//	go run ./hack/mkimage -rootfs DIR                the root filesystem alone
//	go run ./hack/mkimage -oci-layout DIR            OCI image layout directory
//	go run ./hack/mkimage -oci-archive FILE          OCI image layout as a tar ("-" for stdout)
//	go run ./hack/mkimage -docker-archive FILE       `docker save` tarball ("-" for stdout)
//
// Several outputs may be given at once. Arguments after the flags become the
// bundle's process.args (default "sh").
package main

import (
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/berth-project/berth/hack/testimage"
)

func main() {
	var opts testimage.Options
	var bundle, rootfs, ociLayout, ociArchive, dockerArchive string
	flag.StringVar(&bundle, "bundle", "", "write an OCI runtime bundle to `DIR`")
	flag.StringVar(&rootfs, "rootfs", "", "write the root filesystem to `DIR`")
	flag.StringVar(&ociLayout, "oci-layout", "", "write an OCI image layout to `DIR`")
	flag.StringVar(&ociArchive, "oci-archive", "", "write an OCI archive to `FILE` (- for stdout)")
	flag.StringVar(&dockerArchive, "docker-archive", "", "write a docker-archive to `FILE` (- for stdout)")
	flag.StringVar(&opts.Name, "name", testimage.DefaultName, "image `reference`")
	flag.StringVar(&opts.Busybox, "busybox", testimage.DefaultBusybox, "static busybox binary to copy from `PATH`")
	flag.IntVar(&opts.ExtraLayers, "extra-layers", 0, "add `N` small layers on top (layer i adds /layers/i): deep images for snapshotter tests")
	flag.Usage = func() {
		fmt.Fprintf(flag.CommandLine.Output(), "usage: mkimage [flags] [-- bundle process args...]\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	opts.Args = flag.Args()
	if bundle == "" && rootfs == "" && ociLayout == "" && ociArchive == "" && dockerArchive == "" {
		fmt.Fprintln(os.Stderr, "mkimage: give at least one of -bundle, -rootfs, -oci-layout, -oci-archive, -docker-archive")
		flag.Usage()
		os.Exit(2)
	}
	if err := run(opts, bundle, rootfs, ociLayout, ociArchive, dockerArchive); err != nil {
		fmt.Fprintln(os.Stderr, "mkimage:", err)
		os.Exit(1)
	}
}

func run(opts testimage.Options, bundle, rootfs, ociLayout, ociArchive, dockerArchive string) error {
	if bundle != "" {
		if err := testimage.WriteBundle(bundle, opts); err != nil {
			return err
		}
	}
	if rootfs != "" {
		if err := testimage.WriteRootfs(rootfs, opts); err != nil {
			return err
		}
	}
	if ociLayout != "" {
		if err := testimage.WriteOCILayout(ociLayout, opts); err != nil {
			return err
		}
	}
	if ociArchive != "" {
		if err := writeFile(ociArchive, opts, testimage.WriteOCIArchive); err != nil {
			return err
		}
	}
	if dockerArchive != "" {
		if err := writeFile(dockerArchive, opts, testimage.WriteDockerArchive); err != nil {
			return err
		}
	}
	return nil
}

// writeFile runs write into name, or into stdout if name is "-". A file
// left half-written by a failure is removed.
func writeFile(name string, opts testimage.Options, write func(io.Writer, testimage.Options) error) error {
	if name == "-" {
		return write(os.Stdout, opts)
	}
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	err = write(f, opts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(name)
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}
