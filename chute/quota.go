package chute

import (
	"errors"
	"fmt"
	"strings"

	"paradrop/chute/manifest"
)

// Quota bounds what the chutes of one owner hold together, on top of each
// chute's own limits and the gateway's room; a zero field is no bound. It
// is checked in the same admission as the gateway's room, so racing
// changes of one owner cannot pass it together.
type Quota struct {
	Chutes int
	CPU    float64 // cores: the sum of cpu_max
	Memory int64   // bytes: the sum of what each chute is promised (memoryOf)
	Disk   int64   // bytes: the sum of /data quotas
	Egress uint64  // bits per second: the sum of egress limits
}

// ErrQuota is a request beyond its owner's quota (the API answers 403).
var ErrQuota = errors.New("over quota")

// fitQuota reports whether claim c, by a chute of owner under quota q, keeps
// the owner's chutes within q. A chute without a limit that q bounds (no
// cpu_max, no egress) does not fit any such bound.
func fitQuota(owner Owner, q Quota, hs map[string]holding, c claim) error {
	other := heldBy(owner, hs, c.name)
	count, cpu, mem, disk, egress := other.Chutes, other.CPU, other.Memory, other.Disk, other.Egress
	next := hs[c.name]
	next.disk = max(next.disk, c.disk) // a volume never shrinks
	next.cpu, next.memory, next.egress = c.cpu, c.memory, c.egress
	var why []string
	check := func(what string, used, asked, quota string, over bool) {
		if over {
			why = append(why, fmt.Sprintf("%s: %s used by its other chutes, %q asks %s, quota %s", what, used, c.name, asked, quota))
		}
	}
	check("chutes", fmt.Sprint(count), "1 more", fmt.Sprint(q.Chutes), q.Chutes > 0 && count+1 > q.Chutes)
	if q.CPU > 0 && next.cpu == 0 {
		why = append(why, fmt.Sprintf("cpu: %q has no cpu_max, which a cpu quota (%g cores) needs", c.name, q.CPU))
	} else {
		check("cpu", fmt.Sprintf("%g cores", cpu), fmt.Sprintf("%g", next.cpu), fmt.Sprintf("%g", q.CPU), q.CPU > 0 && cpu+next.cpu > q.CPU+1e-9)
	}
	check("memory", manifest.Bytes(mem).String(), manifest.Bytes(next.memory).String(), manifest.Bytes(q.Memory).String(), q.Memory > 0 && mem+next.memory > q.Memory)
	check("disk", manifest.Bytes(disk).String(), manifest.Bytes(next.disk).String(), manifest.Bytes(q.Disk).String(), q.Disk > 0 && disk+next.disk > q.Disk)
	if q.Egress > 0 && next.egress == 0 {
		why = append(why, fmt.Sprintf("egress: %q has no egress limit, which an egress quota (%s) needs", c.name, manifest.Rate(q.Egress)))
	} else {
		check("egress", manifest.Rate(egress).String(), manifest.Rate(next.egress).String(), manifest.Rate(q.Egress).String(), q.Egress > 0 && egress+next.egress > q.Egress)
	}
	if len(why) > 0 {
		return fmt.Errorf("%w of developer %q: %s", ErrQuota, owner, strings.Join(why, "; "))
	}
	return nil
}

// heldBy is what the chutes of owner but except hold together, counted as
// fitQuota counts them: each chute's limits under its policy, the size of
// its volume, and what admitted changes still in progress claim.
func heldBy(owner Owner, hs map[string]holding, except string) Quota {
	var q Quota
	for name, h := range hs {
		if name == except || h.owner != owner {
			continue
		}
		q.Chutes++
		q.CPU, q.Memory, q.Disk, q.Egress = q.CPU+h.cpu, q.Memory+h.memory, q.Disk+h.disk, q.Egress+h.egress
	}
	return q
}

// HeldBy is what the chutes of developer owner hold against its quota now,
// as admission counts it. (The operator has no quota; its "" also owns the
// kept volumes of removed chutes.)
func (m *Manager) HeldBy(owner Owner) Quota { return heldBy(owner, m.holdings(), "") }

// quotaOf is the quota of owner; the operator has none.
func (m *Manager) quotaOf(owner Owner) (Quota, error) {
	if owner == "" || m.cfg.Quota == nil {
		return Quota{}, nil
	}
	q, err := m.cfg.Quota(owner)
	if err != nil {
		return Quota{}, fmt.Errorf("quota of %q: %w", owner, err)
	}
	return q, nil
}
