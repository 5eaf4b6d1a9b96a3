package api

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"paradrop/chute"
)

// form builds a multipart/form-data body from (name, content) pairs, in order.
func form(t testing.TB, parts ...string) (body []byte, contentType string) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i := 0; i+1 < len(parts); i += 2 {
		w, err := mw.CreateFormFile(parts[i], parts[i]+".bin")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(w, parts[i+1])
	}
	mw.Close()
	return b.Bytes(), mw.FormDataContentType()
}

// The API's half of signed uploads: which parts and headers are accepted,
// and that the signature reaches the manager whatever its place. The
// verification itself is the manager's (chute/seal_test.go, and through a
// real daemon in cli_chute_sign_test.go).
func TestSealedUploadForms(t *testing.T) {
	const sig = "untrusted comment: x\nSIG\ntrusted comment: y\nCSIG\n"
	bigSig := strings.Repeat("A", 4097)
	type req struct {
		body   []byte
		ctype  string
		header string
	}
	mp := func(parts ...string) req {
		b, ct := form(t, parts...)
		return req{body: b, ctype: ct}
	}
	for _, tc := range []struct {
		name    string
		req     req
		code    int
		wantSig string
		errHas  string
	}{
		{"raw body, no signature", req{body: []byte("db 2\n")}, 202, "", ""},
		{"raw body, header", req{body: []byte("db 2\n"), header: base64.StdEncoding.EncodeToString([]byte(sig))}, 202, sig, ""},
		{"raw body, header not base64", req{body: []byte("db 2\n"), header: "%%%"}, 400, "", "not base64"},
		{"raw body, header too long", req{body: []byte("db 2\n"), header: base64.StdEncoding.EncodeToString([]byte(bigSig))}, 400, "", "longer than"},
		{"package then signature", mp("package", "db 2\n", "signature", sig), 202, sig, ""},
		{"signature then package", mp("signature", sig, "package", "db 2\n"), 202, sig, ""},
		{"package alone", mp("package", "db 2\n"), 202, "", ""},
		{"signature alone", mp("signature", sig), 400, "", `no "package" part`},
		{"no parts", mp(), 400, "", `no "package" part`},
		{"two packages", mp("package", "db 2\n", "package", "db 3\n"), 400, "", "given twice"},
		{"two signatures", mp("signature", sig, "package", "db 2\n", "signature", sig), 400, "", "given twice"},
		{"extra part", mp("package", "db 2\n", "signature", sig, "readme", "x"), 400, "", `unexpected part "readme"`},
		{"extra part first", mp("readme", "x", "package", "db 2\n"), 400, "", `unexpected part "readme"`},
		{"oversized signature part", mp("signature", bigSig, "package", "db 2\n"), 400, "", "longer than 4096"},
		{"oversized signature part after the package", mp("package", "db 2\n", "signature", bigSig), 400, "", "longer than 4096"},
		{"huge part header before the package", func() req {
			b := "--B\r\nContent-Disposition: form-data; name=\"package\"\r\nX-Junk: " + strings.Repeat("j", 100<<10) + "\r\n\r\ndb 2\n\r\n--B--\r\n"
			return req{body: []byte(b), ctype: "multipart/form-data; boundary=B"}
		}(), 400, "", "longer than 65536"},
		{"huge part header after the package", func() req {
			b := "--B\r\nContent-Disposition: form-data; name=\"package\"\r\n\r\ndb 2\n\r\n--B\r\nContent-Disposition: form-data; name=\"signature\"\r\nX-Junk: " + strings.Repeat("j", 100<<10) + "\r\n\r\nx\r\n--B--\r\n"
			return req{body: []byte(b), ctype: "multipart/form-data; boundary=B"}
		}(), 400, "", "longer than 65536"},
		{"malformed multipart type", req{body: []byte("db 2\n"), ctype: "multipart/form-data; boundary"}, 400, "", "Content-Type"},
		{"no boundary", req{body: []byte("x"), ctype: "multipart/form-data"}, 400, "", "boundary"},
		{"multipart and header", func() req { r := mp("package", "db 2\n"); r.header = "eA=="; return r }(), 400, "", "in a part"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, 1<<20)
			r, err := http.NewRequest("POST", f.srv.URL+"/api/v1/chutes", bytes.NewReader(tc.req.body))
			if err != nil {
				t.Fatal(err)
			}
			r.Header.Set("Authorization", "Bearer "+f.token)
			if tc.req.ctype != "" {
				r.Header.Set("Content-Type", tc.req.ctype)
			}
			if tc.req.header != "" {
				r.Header.Set(signatureHeader, tc.req.header)
			}
			resp, err := f.srv.Client().Do(r)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.code, body)
			}
			if tc.errHas != "" && !strings.Contains(errorOf(t, body), tc.errHas) {
				t.Fatalf("error %q lacks %q", body, tc.errHas)
			}
			if tc.code == 202 && string(f.fake.LastSignature()) != tc.wantSig {
				t.Fatalf("signature %q reached the manager, want %q", f.fake.LastSignature(), tc.wantSig)
			}
		})
	}
}

// FuzzSealedUpload throws arbitrary multipart bodies at the upload parser:
// it must not panic, and whatever it accepts has a package part.
func FuzzSealedUpload(f *testing.F) {
	b, ct := form(f, "package", "db 2\n", "signature", "sig")
	f.Add(b, ct[len("multipart/form-data; boundary="):])
	b, ct = form(f, "signature", "sig", "package", "x", "other", "y")
	f.Add(b, ct[len("multipart/form-data; boundary="):])
	f.Fuzz(func(t *testing.T, body []byte, boundary string) {
		r := httptest.NewRequest("POST", "/api/v1/chutes", bytes.NewReader(body))
		r.Header.Set("Content-Type", fmt.Sprintf("multipart/form-data; boundary=%q", boundary))
		pkg, seal, err := sealedUpload(r, chute.Seal{})
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, pkg); err != nil {
			return
		}
		if seal.Trailer != nil {
			seal.Trailer()
		}
	})
}
