package main

import (
	"strings"
	"testing"
)

// The chute's environment is checked at start: a bad size or rate is an
// error naming the variable, not a silent default.
func TestConfigFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	c, err := configFromEnv(env(map[string]string{"SECCAMS_QUOTA": "20Mi", "SECCAMS_RESERVE": "512Ki", "SECCAMS_MAX_FPS": "2.5"}))
	if err != nil || c.quota != 20<<20 || c.reserve != 512<<10 || c.maxFPS != 2.5 || c.data != "/data/events" {
		t.Errorf("config %+v, %v", c, err)
	}
	for k, v := range map[string]string{"SECCAMS_QUOTA": "lots", "SECCAMS_RESERVE": "-1", "SECCAMS_MAX_FPS": "-3"} {
		if _, err := configFromEnv(env(map[string]string{k: v})); err == nil || !strings.Contains(err.Error(), k) {
			t.Errorf("%s=%s: %v", k, v, err)
		}
	}
}
