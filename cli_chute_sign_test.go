package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"paradrop/api"
	"paradrop/chute/signature"
	"paradrop/chute/signature/signaturetest"
	"paradrop/examples"
)

const signedV1 = "name: signed\nversion: 1.0.0\ncommand: [/bin/sleep, \"1000\"]\n"
const signedV2 = "name: signed\nversion: 1.1.0\ncommand: [/bin/sleep, \"1000\"]\n"

// signedFiles writes a package built from manifest and returns its path.
func signedPackage(t *testing.T, manifest string) string {
	t.Helper()
	b, err := examples.Package(manifest, nil)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "app.tgz")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeTemp(t *testing.T, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A daemon started with --require-signed: packages signed by the real
// minisign tool with a trusted key go in, through the CLI and through curl;
// everything else is refused with a message saying why, before anything is
// unpacked, and the signer's key ID is shown on the chute.
func TestServeSignedPackages(t *testing.T) {
	trusted, stranger := signaturetest.NewKey(t), signaturetest.NewKey(t)
	keys, err := signature.ParseKeys([]byte(trusted.Pub))
	if err != nil {
		t.Fatal(err)
	}
	d := startLimitedDaemon(t, serveOptions{signing: api.Signing{Keys: keys, Required: true}})
	env := &cliEnv{
		stdin: strings.NewReader(""), stdout: &syncBuffer{}, stderr: &syncBuffer{},
		getenv: func(k string) string {
			return map[string]string{"PARADROP_SERVER": "http://" + d.addr, "PARADROP_DATA": d.data}[k]
		},
	}
	cli := func(args ...string) (int, string, string) {
		out, errb := &syncBuffer{}, &syncBuffer{}
		env.stdout, env.stderr = out, errb
		rc := chuteMain(env, args)
		return rc, out.String(), errb.String()
	}
	refused := func(what string) {
		t.Helper()
		if n := d.stagingDirs(t); n != 0 {
			t.Errorf("%s: %d entries left in staging", what, n)
		}
	}

	// Before the daemon stops (cleanups run last first): its chutes outlive
	// it, and one may be installed by mistake.
	t.Cleanup(func() {
		if rc, _, _ := cli("info", "signed"); rc != 0 {
			return
		}
		if rc, _, stderr := cli("remove", "--yes", "signed"); rc != 0 {
			t.Errorf("remove: %s", stderr)
		}
	})

	v1 := signedPackage(t, signedV1)
	v1Bytes, _ := os.ReadFile(v1)
	goodSig := writeTemp(t, "app.tgz.minisig", trusted.Sign(t, v1))
	strangerSig := writeTemp(t, "stranger.minisig", stranger.Sign(t, v1))
	corrupt := bytes.Clone(v1Bytes)
	corrupt[len(corrupt)/2] ^= 0xff
	corruptPkg := writeTemp(t, "corrupt.tgz", corrupt)
	sigText, _ := os.ReadFile(goodSig)
	tampered := writeTemp(t, "tampered.minisig", bytes.Replace(sigText, []byte("\ntrusted comment: "), []byte("\ntrusted comment: evil "), 1))

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"missing", []string{"install", v1}, "requires a signature"},
		{"untrusted key", []string{"install", v1, "--signature", strangerSig}, "not trusted"},
		{"corrupted package", []string{"install", corruptPkg, "--signature", goodSig}, "does not match"},
		{"trusted comment tampered", []string{"install", v1, "--signature", tampered}, "does not match"},
	} {
		rc, _, stderr := cli(tc.args...)
		if rc == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: rc %d, stderr %q, want %q", tc.name, rc, stderr, tc.want)
		}
		refused(tc.name)
	}
	if rc, out, _ := cli("list"); rc != 0 || strings.Contains(out, "signed") {
		t.Fatalf("a refused package was installed: %q", out)
	}

	if rc, _, stderr := cli("install", v1, "--signature", goodSig); rc != 0 {
		t.Fatalf("signed install: rc %d: %s", rc, stderr)
	}

	rc, out, _ := cli("info", "signed")
	var info struct {
		Version  string `json:"version"`
		SignedBy string `json:"signed_by"`
	}
	if rc != 0 || json.Unmarshal([]byte(out), &info) != nil || info.SignedBy != keys[0].ID() {
		t.Fatalf("chute info: rc %d, %s; want signed_by %s", rc, out, keys[0].ID())
	}

	// The raw-body form: a signature of another package in the header.
	v2 := signedPackage(t, signedV2)
	v2Bytes, _ := os.ReadFile(v2)
	req, _ := http.NewRequest("PUT", "http://"+d.addr+"/api/v1/chutes/signed", bytes.NewReader(v2Bytes))
	req.Header.Set("Authorization", "Bearer "+d.token)
	req.Header.Set("Paradrop-Signature", base64.StdEncoding.EncodeToString(sigText))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "does not match") {
		t.Errorf("raw update with v1's signature: %d %s, want 403 does not match", resp.StatusCode, body)
	}
	refused("raw body, wrong signature")

	// curl's own multipart, package part first: the signature is read after
	// the package was staged.
	v2Sig := writeTemp(t, "v2.minisig", trusted.Sign(t, v2))
	curl := exec.Command("curl", "-sS", "-X", "PUT", "-H", "Authorization: Bearer "+d.token,
		"-F", "package=@"+v2, "-F", "signature=@"+v2Sig,
		"http://"+d.addr+"/api/v1/chutes/signed?wait=1")
	cout, err := curl.CombinedOutput()
	if err != nil || !strings.Contains(string(cout), `"state": "done"`) {
		t.Fatalf("curl -F update: %v\n%s", err, cout)
	}
	if rc, out, _ := cli("info", "signed"); rc != 0 || json.Unmarshal([]byte(out), &info) != nil || info.Version != "1.1.0" || info.SignedBy != keys[0].ID() {
		t.Fatalf("after curl update: %s", out)
	}

	// --sign signs with the secret key minisign -G -W made.
	v3 := signedPackage(t, strings.Replace(signedV2, "1.1.0", "1.2.0", 1))
	if rc, _, stderr := cli("update", "signed", v3, "--sign", stranger.SecFile); rc == 0 || !strings.Contains(stderr, "not trusted") {
		t.Errorf("update signed by a stranger's key: rc %d, %q", rc, stderr)
	}
	if rc, _, stderr := cli("update", "signed", v3, "--sign", trusted.SecFile); rc != 0 {
		t.Fatalf("update --sign: %s", stderr)
	}
	if rc, out, _ := cli("info", "signed"); rc != 0 || json.Unmarshal([]byte(out), &info) != nil || info.Version != "1.2.0" {
		t.Fatalf("after update --sign: %s", out)
	}
	if rc, _, stderr := cli("update", "signed", v3, "--sign", trusted.SecFile, "--signature", goodSig); rc != 2 {
		t.Errorf("--sign with --signature: rc %d, %q", rc, stderr)
	}
	refused("after the updates")
}

// --require-signed without a key no package could pass is refused at start.
func TestServeSigningFlags(t *testing.T) {
	f := newCLIFixture(t)
	run := func(env *cliEnv, args []string) int { return runCLI(env, "serve", cmdServe, args) }
	bad := writeTemp(t, "bad.pub", []byte("not a key\n"))
	empty := writeTemp(t, "empty.pub", []byte("# none\n"))
	for _, args := range [][]string{{"--require-signed"}, {"--trusted-keys", bad}, {"--trusted-keys", empty}, {"--trusted-keys", "/nonexistent"}} {
		if rc := f.run(run, args...); rc != 2 {
			t.Errorf("%q: rc %d", args, rc)
		}
		f.oneLine(t, "paradrop: serve: ")
	}
}
