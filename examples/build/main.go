// Command build writes the sample chutes' packages into a directory, for
// `make examples`: hello.tar.gz (busybox httpd), envsense.tar.gz (Debian's
// python3, whose packages apt downloads; kept in the examples' cache) and
// seccams.tar.gz and hdstream.tar.gz (static Go binaries built from this
// checkout).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"

	"paradrop/examples"
)

func main() {
	out := flag.String("out", "dist/examples", "directory to write the packages into")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := build(ctx, *out); err != nil {
		fmt.Fprintln(os.Stderr, "examples:", err)
		os.Exit(1)
	}
}

func build(ctx context.Context, out string) error {
	cache := examples.CacheDir()
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	hello, err := examples.Hello()
	if err != nil {
		return err
	}
	envsense, err := examples.EnvSense(ctx, cache)
	if err != nil {
		return err
	}
	seccams, err := examples.SecCams(ctx)
	if err != nil {
		return err
	}
	hdstream, err := examples.HDStream(ctx)
	if err != nil {
		return err
	}
	for name, pkg := range map[string][]byte{"hello.tar.gz": hello, "envsense.tar.gz": envsense, "seccams.tar.gz": seccams, "hdstream.tar.gz": hdstream} {
		p := filepath.Join(out, name)
		if err := os.WriteFile(p, pkg, 0o644); err != nil {
			return err
		}
		fmt.Printf("%s: %.1f MiB\n", p, float64(len(pkg))/(1<<20))
	}
	return nil
}
