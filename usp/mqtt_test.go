package usp

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"paradrop/internal/mosquitto"
	"paradrop/usp/mqttmtp"
)

// protoc runs Debian's protoc with our .proto files: it encodes and
// decodes independently of the agent's codec.
func protoc(t *testing.T, stdin []byte, args ...string) []byte {
	t.Helper()
	cmd := exec.Command("protoc", append([]string{"-Icodec"}, append(args, "usp-record-1-4.proto", "usp-msg-1-4.proto")...)...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("protoc %v: %v: %s", args, err, stderr.Bytes())
	}
	return out
}

// octal writes b as a text-format string of octal escapes.
func octal(b []byte) string {
	var s strings.Builder
	for _, c := range b {
		fmt.Fprintf(&s, "\\%03o", c)
	}
	return s.String()
}

// unescape reads a text-format string as protoc prints it (C escapes).
func unescape(t *testing.T, s string) []byte {
	t.Helper()
	var out []byte
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			out = append(out, s[i])
			continue
		}
		i++
		switch c := s[i]; c {
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case '0', '1', '2', '3':
			var v byte
			fmt.Sscanf(s[i:i+3], "%o", &v)
			out = append(out, v)
			i += 2
		default: // \" \' \\
			out = append(out, c)
		}
	}
	return out
}

// rawRecord is a Record carrying msg (text format), made by protoc.
func rawRecord(t *testing.T, from, to, msg string) []byte {
	t.Helper()
	payload := protoc(t, []byte(msg), "--encode=usp.Msg")
	rec := fmt.Sprintf(`version: "1.4" to_id: %q from_id: %q payload_security: PLAINTEXT no_session_context { payload: "%s" }`, to, from, octal(payload))
	return protoc(t, []byte(rec), "--encode=usp_record.Record")
}

var payloadField = regexp.MustCompile(`(?m)^\s*payload: "(.*)"$`)

// decoded is what protoc reads in an answer: the Record and its Msg in
// text format.
func decoded(t *testing.T, data []byte) (rec, msg string) {
	t.Helper()
	rec = string(protoc(t, data, "--decode=usp_record.Record"))
	m := payloadField.FindStringSubmatch(rec)
	if m == nil {
		t.Fatalf("no payload in\n%s", rec)
	}
	return rec, string(protoc(t, unescape(t, m[1]), "--decode=usp.Msg"))
}

func mustContain(t *testing.T, text string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(text, w) {
			t.Errorf("no %q in\n%s", w, text)
		}
	}
}

func TestAgentOverMQTT(t *testing.T) {
	if _, err := exec.LookPath("protoc"); err != nil {
		t.Skip("protoc not installed (apt-get install protobuf-compiler)")
	}
	b := mosquitto.Start(t)
	agent := testAgent(t, twoChutes(), nil)
	c, err := mqttmtp.New(mqttmtp.Config{Broker: b.URL(), ClientID: agentID, Topic: "usp/agents/test", Rate: 50, Burst: 20})
	if err != nil {
		t.Fatal(err)
	}
	answers := make(chan mqtt.Message, 100)
	ctrl := b.Client(t, "ctrl", "usp/controllers/#", answers)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- agent.Serve(ctx, c) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(10 * time.Second); c.Stats().Connects == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("agent not connected")
		}
	}
	send := func(t *testing.T, replyTo string, data []byte) {
		t.Helper()
		if tok := ctrl.Publish("usp/agents/test/reply-to="+strings.ReplaceAll(replyTo, "/", "%2F"), 1, false, data); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	next := func(t *testing.T) mqtt.Message {
		t.Helper()
		select {
		case m := <-answers:
			return m
		case <-time.After(5 * time.Second):
			t.Fatal("no answer")
			return nil
		}
	}
	get := func(id string) string {
		return `header { msg_id: "` + id + `" msg_type: GET } body { request { get { param_paths: "Device.DeviceInfo.SoftwareVersion" param_paths: "Device.SoftwareModules.ExecutionUnit.*.Status" } } }`
	}

	t.Run("connect record on connection", func(t *testing.T) {
		m := next(t)
		if m.Topic() != "usp/controllers/ctrl/reply-to=usp%2Fagents%2Ftest" {
			t.Errorf("connect record on %q", m.Topic())
		}
		mustContain(t, string(protoc(t, m.Payload(), "--decode=usp_record.Record")),
			`to_id: "self::ctrl"`, `from_id: "os::test-agent"`, `mqtt_connect {`, `subscribed_topic: "usp/agents/test"`)
		// Then Device.Boot!, once.
		m = next(t)
		if m.Topic() != "usp/controllers/ctrl/reply-to=usp%2Fagents%2Ftest" {
			t.Errorf("Boot! on %q", m.Topic())
		}
		_, msg := decoded(t, m.Payload())
		mustContain(t, msg, `msg_type: NOTIFY`, `notify {`, `obj_path: "Device."`, `event_name: "Boot!"`, `key: "Cause"`)
	})
	t.Run("get decoded by protoc", func(t *testing.T) {
		send(t, "usp/controllers/ctrl", rawRecord(t, ctrlID, agentID, get("get-1")))
		m := next(t)
		if m.Topic() != "usp/controllers/ctrl/reply-to=usp%2Fagents%2Ftest" {
			t.Errorf("answer on %q", m.Topic())
		}
		rec, msg := decoded(t, m.Payload())
		mustContain(t, rec, `version: "1.4"`, `to_id: "self::ctrl"`, `from_id: "os::test-agent"`)
		mustContain(t, msg, `msg_id: "get-1"`, `msg_type: GET_RESP`, `requested_path: "Device.DeviceInfo.SoftwareVersion"`,
			`resolved_path: "Device.DeviceInfo."`, `key: "SoftwareVersion"`, `value: "v1.2.3"`,
			`resolved_path: "Device.SoftwareModules.ExecutionUnit.1."`, `value: "Active"`,
			`resolved_path: "Device.SoftwareModules.ExecutionUnit.2."`, `value: "Idle"`)
	})
	t.Run("unknown controller gets 7006", func(t *testing.T) {
		send(t, "usp/controllers/stranger", rawRecord(t, "self::stranger", agentID, get("get-2")))
		m := next(t)
		if !strings.HasPrefix(m.Topic(), "usp/controllers/stranger/") {
			t.Errorf("answer on %q", m.Topic())
		}
		_, msg := decoded(t, m.Payload())
		mustContain(t, msg, `msg_id: "get-2"`, `error {`, `err_code: 7006`) // ERROR is 0: not printed
	})
	t.Run("no answer to wrong to_id, garbage, oversized", func(t *testing.T) {
		send(t, "usp/controllers/ctrl", rawRecord(t, ctrlID, "os::another-agent", get("wrong-to")))
		send(t, "usp/controllers/ctrl", []byte("\x0a\xff\xffgarbage"))
		send(t, "usp/controllers/ctrl", bytes.Repeat([]byte{0x0a}, 1<<20))
		send(t, "usp/controllers/ctrl", rawRecord(t, ctrlID, agentID, get("get-3")))
		_, msg := decoded(t, next(t).Payload())
		mustContain(t, msg, `msg_id: "get-3"`) // the first answer
		if s := c.Stats(); s.Oversized != 1 || s.Connects != 1 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("flood stays bounded", func(t *testing.T) {
		big := rawRecord(t, ctrlID, agentID, `header { msg_id: "flood" msg_type: GET } body { request { get { param_paths: "Device.`+strings.Repeat("x", 60<<10)+`" } } }`)
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		base, peak := ms.HeapInuse, ms.HeapInuse
		stop := make(chan struct{})
		sampled := make(chan struct{})
		go func() {
			defer close(sampled)
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
					runtime.ReadMemStats(&ms)
					peak = max(peak, ms.HeapInuse)
				}
			}
		}()
		before := c.Stats()
		start := time.Now()
		for range 1000 {
			ctrl.Publish("usp/agents/test/reply-to=usp%2Fcontrollers%2Fctrl", 0, false, big)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			s := c.Stats()
			if s.Received+s.Dropped-before.Received-before.Dropped >= 1000 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("flood not read: %+v", s)
			}
		}
		close(stop)
		<-sampled
		s := c.Stats()
		if n, allowed := s.Received-before.Received, 20+50*time.Since(start).Seconds()+1; float64(n) > allowed {
			t.Errorf("%d records handled in %v, the rate allows %v", n, time.Since(start), allowed)
		}
		// 1000 records of 60 KiB went through; the agent held at most its
		// queue of them.
		if grew := int64(peak) - int64(base); grew > 32<<20 {
			t.Errorf("heap grew %d MiB during the flood", grew>>20)
		}
		t.Logf("flood: %d handled, %d dropped, heap +%d KiB at peak", s.Received-before.Received, s.Dropped-before.Dropped, (int64(peak)-int64(base))>>10)
		for drained := false; !drained; {
			select {
			case <-answers:
			case <-time.After(500 * time.Millisecond):
				drained = true
			}
		}
		send(t, "usp/controllers/ctrl", rawRecord(t, ctrlID, agentID, get("after-flood")))
		_, msg := decoded(t, next(t).Payload())
		mustContain(t, msg, `msg_id: "after-flood"`, `msg_type: GET_RESP`)
	})
}
