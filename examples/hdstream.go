package examples

import "context"

// HDStreamPackage is the Go package of the HD stream chute's program.
const HDStreamPackage = "paradrop/examples/hdstream"

// HDStream builds the HD stream chute package (the demo's half of the
// paper's Figure 3 that SecCams slows down): its program, built as
// SecCams' is, at /bin/hdstream in a busybox image.
func HDStream(ctx context.Context) ([]byte, error) {
	return goChute(ctx, "hdstream/chute.yaml", HDStreamPackage)
}
