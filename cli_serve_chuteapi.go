package main

import (
	"encoding/pem"
	"fmt"
	"net"
	"slices"

	"paradrop/chute"
	"paradrop/sdn"
	"paradrop/tlscert"
)

// defaultChuteAPIPort is where chutes reach the API over their network,
// at the gateway's address there: HTTPS's alternative port, apart from
// the operator's listeners.
const defaultChuteAPIPort = 8443

// listenChuteAPI listens for the chutes' API on their network; nil with
// port 0.
func listenChuteAPI(n *sdn.Network, port int) (net.Listener, error) {
	if port == 0 {
		return nil, nil
	}
	ln, err := n.ListenAPI()
	if err != nil {
		return nil, fmt.Errorf("%w (--chute-api-port %d; 0 for none)", err, port)
	}
	return ln, nil
}

// networkAPI is what a chute is given to reach and verify the API on ln:
// its URL, and the certificate (chain) it is served with and its
// fingerprint. Nil without ln.
func networkAPI(ln net.Listener, cert *tlscert.Cert) *chute.NetworkAPI {
	if ln == nil || cert == nil {
		return nil
	}
	var chain []byte
	for _, der := range cert.TLS.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	return &chute.NetworkAPI{URL: "https://" + ln.Addr().String(), CertPEM: chain, Fingerprint: cert.Fingerprint.String()}
}

// withListener is lns and ln, if not nil.
func withListener(lns []net.Listener, ln net.Listener) []net.Listener {
	if ln == nil {
		return lns
	}
	return append(slices.Clip(lns), ln)
}
