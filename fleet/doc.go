// Package fleet is a TR-369 (USP) controller for a fleet of gateways: it
// finds the gateways' agents on an MQTT broker, reads what each runs, and
// rolls a chute package out to many of them with a canary, a rate, a
// timeout per gateway and an abort threshold that rolls back. Its state
// lives in retained messages on the broker, so that another controller
// process can take a rollout over. It shares the agent's wire format
// (usp/codec) and transport (usp/mqttmtp), and never imports chute/.
package fleet
