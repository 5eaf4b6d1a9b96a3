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

// listenChuteAPI listens for the chutes' API on their network, over IPv4
// and IPv6; none with port 0.
func listenChuteAPI(n *sdn.Network, port int) ([]net.Listener, error) {
	if port == 0 {
		return nil, nil
	}
	var lns []net.Listener
	for _, listen := range []func() (net.Listener, error){n.ListenAPI, n.ListenAPI6} {
		ln, err := listen()
		if err != nil {
			closeAll(lns)
			return nil, fmt.Errorf("%w (--chute-api-port %d; 0 for none)", err, port)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}

// networkAPI is what a chute is given to reach and verify the API on lns
// (IPv4, then IPv6): its URLs, and the certificate (chain) it is served
// with and its fingerprint. Nil without lns.
func networkAPI(lns []net.Listener, cert *tlscert.Cert) *chute.NetworkAPI {
	if len(lns) == 0 || cert == nil {
		return nil
	}
	var chain []byte
	for _, der := range cert.TLS.Certificate {
		chain = append(chain, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})...)
	}
	api := &chute.NetworkAPI{URL: "https://" + lns[0].Addr().String(), CertPEM: chain, Fingerprint: cert.Fingerprint.String()}
	if len(lns) > 1 {
		api.URL6 = "https://" + lns[1].Addr().String()
	}
	return api
}

// withListeners is lns and more.
func withListeners(lns []net.Listener, more []net.Listener) []net.Listener {
	return append(slices.Clip(lns), more...)
}
