package ofp

// Group mod commands and group types.
const (
	GroupAdd    = 0
	GroupModify = 1
	GroupDelete = 2

	GroupTypeAll      = 0
	GroupTypeSelect   = 1
	GroupTypeIndirect = 2
	GroupTypeFF       = 3
)

// Bucket is one action bucket of a group (ofp_bucket).
type Bucket struct {
	Weight     uint16   `json:"weight"`
	WatchPort  uint32   `json:"watch_port"`
	WatchGroup uint32   `json:"watch_group"`
	Actions    []Action `json:"actions"`
}

func (b *Bucket) appendTo(w *writer) {
	start := len(w.b)
	at := w.mark()
	w.u16(b.Weight)
	w.u32(b.WatchPort)
	w.u32(b.WatchGroup)
	w.pad(4)
	appendActions(w, b.Actions)
	w.fill(at, start, "bucket")
}

func (b *Bucket) MarshalJSON() ([]byte, error) {
	type plain Bucket
	p := *(*plain)(b)
	if p.Actions == nil {
		p.Actions = []Action{}
	}
	return object("OFPBucket", &p, "len", encodedLen(b))
}

func appendBuckets(w *writer, bs []Bucket) {
	for i := range bs {
		bs[i].appendTo(w)
	}
}

func decodeBuckets(r *reader) []Bucket {
	bs := []Bucket{}
	for r.ok() && r.len() > 0 {
		n := int(r.u16())
		if r.ok() && n < 16 {
			r.fail("bucket", ErrBadLength, "length %d below 16", n)
			break
		}
		p := r.sub("bucket", n-2)
		b := Bucket{Weight: p.u16(), WatchPort: p.u32(), WatchGroup: p.u32()}
		p.skip(4)
		b.Actions = decodeActions(p)
		bs = append(bs, b)
	}
	return bs
}

// GroupMod adds, changes or deletes a group.
type GroupMod struct {
	Header
	Command   uint16   `json:"command"`
	GroupType uint8    `json:"type"`
	GroupID   uint32   `json:"group_id"`
	Buckets   []Bucket `json:"buckets"`
}

func (m *GroupMod) msgType() uint8                 { return TypeGroupMod }
func (m *GroupMod) MarshalBinary() ([]byte, error) { return marshal(m) }
func (m *GroupMod) appendBody(w *writer) {
	w.u16(m.Command)
	w.u8(m.GroupType)
	w.pad(1)
	w.u32(m.GroupID)
	appendBuckets(w, m.Buckets)
}

func (m *GroupMod) decodeBody(r *reader) {
	m.Command = r.u16()
	m.GroupType = r.u8()
	r.skip(1)
	m.GroupID = r.u32()
	m.Buckets = decodeBuckets(r)
}

func (m *GroupMod) MarshalJSON() ([]byte, error) {
	type plain GroupMod
	p := *(*plain)(m)
	if p.Buckets == nil {
		p.Buckets = []Bucket{}
	}
	return object("OFPGroupMod", &p)
}
