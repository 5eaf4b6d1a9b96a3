package mqttmtp

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// replyToSep starts the "reply to" part of an MQTT 3.1.1 topic name
// (R-MQTT.24, .25).
const replyToSep = "/reply-to="

// MaxTopic bounds a topic we publish to or name: a reply topic comes
// from outside.
const MaxTopic = 1024

// ErrNoReplyTo: the topic names no valid reply topic; the record cannot
// be answered (R-MQTT.26a).
var ErrNoReplyTo = errors.New("mqtt: no valid reply-to in the topic")

// WithReplyTo is the topic name to publish to topic with own as the
// "reply to" topic: "/" in own is written "%2F" (R-MQTT.24).
func WithReplyTo(topic, own string) string {
	return topic + replyToSep + strings.ReplaceAll(own, "/", "%2F")
}

// ReplyTo is the reply topic a received topic name carries: what follows
// its last "/reply-to=", with "%2F" read as "/" (R-MQTT.25). It must be a
// topic we may publish to.
func ReplyTo(topic string) (string, error) {
	i := strings.LastIndex(topic, replyToSep)
	if i < 0 {
		return "", ErrNoReplyTo
	}
	reply := strings.ReplaceAll(topic[i+len(replyToSep):], "%2F", "/")
	if err := CheckTopic(reply); err != nil {
		return "", fmt.Errorf("%w: %v", ErrNoReplyTo, err)
	}
	return reply, nil
}

// CheckTopic says whether t is a topic name we may publish to: a broker
// disconnects a client that publishes to a wildcard, so a hostile reply
// topic must not reach Publish.
func CheckTopic(t string) error {
	switch {
	case t == "":
		return errors.New("empty topic")
	case len(t) > MaxTopic:
		return fmt.Errorf("topic longer than %d bytes", MaxTopic)
	case !utf8.ValidString(t):
		return errors.New("topic is not UTF-8")
	case strings.ContainsAny(t, "+#\x00"):
		return errors.New("topic has a wildcard or NUL")
	}
	return nil
}
