// Package mqttmtp is USP's MQTT 3.1.1 Message Transfer Protocol (TR-369,
// MQTT binding): an endpoint subscribes to its topic's subtree, learns
// where to answer from the "reply-to" part of each topic name, and
// reconnects with TR-369's randomized backoff. What a client on the broker
// can make it spend is bounded: packet size, records per second and the
// records waiting. The agent (usp) and a controller share it.
package mqttmtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/time/rate"
)

// Config configures an endpoint's MQTT connection.
type Config struct {
	// Broker is tcp://HOST:PORT, or ssl://HOST:PORT for MQTT over TLS
	// (1.2 or later), the broker's certificate verified.
	Broker string
	// TLS configures an ssl:// connection (nil: the system's roots); its
	// ServerName defaults to the broker's host.
	TLS *tls.Config
	// Username and Password, if set, are sent in CONNECT.
	Username, Password string
	// ClientID is the MQTT client ID: the USP endpoint ID.
	ClientID string
	// Topic is where this endpoint is reached: it subscribes to Topic/#
	// and names Topic as its reply-to.
	Topic string
	// MaxPacket bounds a packet read from the broker; a larger PUBLISH
	// is skipped unread (default 64 KiB).
	MaxPacket int
	// Rate and Burst bound the records handed on per second (default 50
	// and 100); Queue bounds those waiting for the handler (default 32).
	// Beyond, records are dropped.
	Rate  rate.Limit
	Burst int
	Queue int
	// Backoff paces reconnections (default DefaultBackoff).
	Backoff Backoff
	Logf    func(format string, args ...any)
}

// Message is a record received, with the topic to answer it on.
type Message struct {
	ReplyTo string
	Payload []byte
}

// Stats count what the endpoint received and refused.
type Stats struct {
	Connects  uint64 // sessions established
	Received  uint64 // records handed to the handler
	Oversized uint64 // PUBLISHes skipped for their size
	NoReplyTo uint64 // records whose topic names no valid reply topic
	Dropped   uint64 // records over the rate or the queue
}

// ErrNotConnected: Publish while no session is up. USP answers are not
// queued: the controller retries.
var ErrNotConnected = errors.New("mqtt: not connected to the broker")

// Client is one endpoint's connection to its broker.
type Client struct {
	cfg     Config
	limiter *rate.Limiter
	queue   chan Message

	mu sync.Mutex
	cl mqtt.Client // nil while not connected

	connects, received, oversized, noReplyTo, dropped atomic.Uint64
}

// CheckBroker says whether broker is an address New takes.
func CheckBroker(broker string) error {
	u, err := url.Parse(broker)
	if err != nil || (u.Scheme != "tcp" && u.Scheme != "mqtt" && !Secure(broker)) || u.Host == "" {
		return fmt.Errorf("mqtt: broker %q: want tcp://HOST:PORT or ssl://HOST:PORT", broker)
	}
	return nil
}

// Secure says whether broker is reached over TLS.
func Secure(broker string) bool {
	u, err := url.Parse(broker)
	return err == nil && (u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts")
}

// New checks cfg and makes a client; Run connects it.
func New(cfg Config) (*Client, error) {
	if err := CheckBroker(cfg.Broker); err != nil {
		return nil, err
	}
	if err := CheckTopic(cfg.Topic); err != nil {
		return nil, fmt.Errorf("mqtt: topic %q: %w", cfg.Topic, err)
	}
	if cfg.ClientID == "" {
		return nil, errors.New("mqtt: empty client ID")
	}
	if cfg.MaxPacket <= 0 {
		cfg.MaxPacket = 64 << 10
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 50
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 100
	}
	if cfg.Queue <= 0 {
		cfg.Queue = 32
	}
	if cfg.Backoff == (Backoff{}) {
		cfg.Backoff = DefaultBackoff
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	return &Client{cfg: cfg, limiter: rate.NewLimiter(cfg.Rate, cfg.Burst), queue: make(chan Message, cfg.Queue)}, nil
}

// Stats returns the counters so far.
func (c *Client) Stats() Stats {
	return Stats{c.connects.Load(), c.received.Load(), c.oversized.Load(), c.noReplyTo.Load(), c.dropped.Load()}
}

// Topic is where this endpoint is reached.
func (c *Client) Topic() string { return c.cfg.Topic }

// Run keeps the endpoint connected and subscribed until ctx ends, calling
// handle for each record, one at a time, and connected (if not nil) once
// each session is subscribed, as it may publish.
func (c *Client) Run(ctx context.Context, handle func(context.Context, Message), connected func(context.Context)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case m := <-c.queue:
				handle(ctx, m)
			}
		}
	})
	for retry := 0; ; retry++ {
		if retry > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(c.cfg.Backoff.Wait(retry, rand.Float64())):
			}
		}
		lost := make(chan error, 1)
		cl, err := c.connect(ctx, lost)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.cfg.Logf("usp: mqtt %s: %v; retry %d", c.cfg.Broker, err, retry+1)
			continue
		}
		retry = 0
		c.connects.Add(1)
		c.setClient(cl)
		if connected != nil {
			wg.Go(func() { connected(ctx) })
		}
		select {
		case <-ctx.Done():
			c.setClient(nil)
			cl.Disconnect(250) // R-MQTT.35
			return nil
		case err := <-lost:
			c.setClient(nil)
			c.cfg.Logf("usp: mqtt %s: connection lost: %v", c.cfg.Broker, err)
		}
	}
}

func (c *Client) setClient(cl mqtt.Client) {
	c.mu.Lock()
	c.cl = cl
	c.mu.Unlock()
}

// connect opens a session and subscribes to Topic/#; a session without
// the subscription is closed (R-MQTT.17).
func (c *Client) connect(ctx context.Context, lost chan<- error) (mqtt.Client, error) {
	opts := mqtt.NewClientOptions().
		AddBroker(c.cfg.Broker).
		SetClientID(c.cfg.ClientID).
		SetCleanSession(true). // nothing queued for us while away
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetOrderMatters(true). // the handler only queues: no goroutine per message
		SetCustomOpenConnectionFn(func(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
			d := net.Dialer{Timeout: o.ConnectTimeout}
			conn, err := d.DialContext(ctx, "tcp", u.Host)
			if err != nil {
				return nil, err
			}
			if Secure(c.cfg.Broker) {
				if conn, err = c.handshake(ctx, conn, u.Hostname(), o.ConnectTimeout); err != nil {
					return nil, err
				}
			}
			return newGuard(conn, c.cfg.MaxPacket, &c.oversized), nil
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if c.cfg.Username != "" {
		opts.SetUsername(c.cfg.Username).SetPassword(c.cfg.Password)
	}
	cl := mqtt.NewClient(opts)
	if err := wait(ctx, cl.Connect()); err != nil {
		cl.Disconnect(0) // a connection still being made ends with ctx
		return nil, fmt.Errorf("connect: %w", err)
	}
	sub := cl.Subscribe(c.cfg.Topic+"/#", 0, func(_ mqtt.Client, m mqtt.Message) { c.incoming(m) })
	err := wait(ctx, sub)
	if err == nil {
		for _, q := range sub.(*mqtt.SubscribeToken).Result() {
			if q > 2 {
				err = errors.New("the broker refused the subscription")
			}
		}
	}
	if err != nil {
		cl.Disconnect(0)
		return nil, fmt.Errorf("subscribe %s/#: %w", c.cfg.Topic, err)
	}
	return cl, nil
}

// handshake runs TLS over conn, verifying the broker as host.
func (c *Client) handshake(ctx context.Context, conn net.Conn, host string, timeout time.Duration) (net.Conn, error) {
	return Handshake(ctx, conn, c.cfg.TLS, host, timeout)
}

// Handshake runs MQTT over TLS's handshake on conn, the broker verified
// as host with cfg (nil: the system's roots), TLS 1.2 at least; conn is
// closed if it fails. A controller's other connections to the broker use
// it too.
func Handshake(ctx context.Context, conn net.Conn, cfg *tls.Config, host string, timeout time.Duration) (net.Conn, error) {
	if cfg == nil {
		cfg = &tls.Config{}
	} else {
		cfg = cfg.Clone()
	}
	if cfg.ServerName == "" {
		cfg.ServerName = host
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	tc := tls.Client(conn, cfg)
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS: %w", err)
	}
	return tc, nil
}

// incoming runs on the client's reader: it only queues, so that a slow
// handler never holds up the connection.
func (c *Client) incoming(m mqtt.Message) {
	reply, err := ReplyTo(m.Topic())
	if err != nil {
		c.noReplyTo.Add(1)
		return
	}
	if !c.limiter.Allow() {
		c.dropped.Add(1)
		return
	}
	select {
	case c.queue <- Message{ReplyTo: reply, Payload: m.Payload()}:
		c.received.Add(1)
	default:
		c.dropped.Add(1)
	}
}

// Publish sends payload to topic, naming our topic as the reply-to
// (R-MQTT.22, .24), with QoS 1.
func (c *Client) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := CheckTopic(topic); err != nil {
		return fmt.Errorf("mqtt: publish to %q: %w", topic, err)
	}
	c.mu.Lock()
	cl := c.cl
	c.mu.Unlock()
	if cl == nil {
		return ErrNotConnected
	}
	if err := wait(ctx, cl.Publish(WithReplyTo(topic, c.cfg.Topic), 1, false, payload)); err != nil {
		return fmt.Errorf("mqtt: publish to %q: %w", topic, err)
	}
	return nil
}

// wait waits for a paho token or ctx.
func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}
