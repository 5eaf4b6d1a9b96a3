package main

import (
	"debug/elf"
	"encoding/binary"
	"fmt"
)

// target is one CPU `make cross` builds for, as OpenWrt names it.
type target struct {
	// Arch is OpenWrt's package architecture: opkg and apk install only
	// packages of the device's own (opkg print-architecture, or
	// /etc/apk/arch), so the name must be exact. A Go binary runs on every
	// OpenWrt arch of its CPU family; Arch picks the most common target's
	// and -arch overrides it (e.g. aarch64_cortex-a53 for MT7622/IPQ807x).
	Arch      string
	Machine   elf.Machine
	Class     elf.Class
	ByteOrder binary.ByteOrder
}

// targets are keyed by the suffix of `make cross`'s dist/paradrop-linux-*.
var targets = map[string]target{
	// x86/generic and x86/64's 32-bit sibling; Go's 386 port needs SSE2,
	// which pentium4 has (the ALIX's Geode, i386_pentium-mmx, does not).
	"386": {"i386_pentium4", elf.EM_386, elf.ELFCLASS32, binary.LittleEndian},
	// ipq40xx, mt7629, sunxi/cortexa7: the ARMv7 routers.
	"armv7": {"arm_cortex-a7_neon-vfpv4", elf.EM_ARM, elf.ELFCLASS32, binary.LittleEndian},
	// armsr/armv8, and the generic 64-bit ARM boards.
	"arm64": {"aarch64_generic", elf.EM_AARCH64, elf.ELFCLASS64, binary.LittleEndian},
	// ramips (mt7621, mt76x8): little-endian MIPS.
	"mipsle": {"mipsel_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.LittleEndian},
	// ath79 (Atheros/QCA): big-endian MIPS.
	"mips": {"mips_24kc", elf.EM_MIPS, elf.ELFCLASS32, binary.BigEndian},
}

// checkELF refuses a binary built for another CPU than t: a package whose
// binary cannot run installs fine and fails only on the router.
func (t target) checkELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	defer f.Close()
	if f.Machine != t.Machine || f.Class != t.Class || f.ByteOrder != t.ByteOrder {
		return fmt.Errorf("%s is %v %v %v, not %v %v %v as %s needs", path,
			f.Machine, f.Class, f.ByteOrder, t.Machine, t.Class, t.ByteOrder, t.Arch)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is not an executable (%v)", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0 (OpenWrt's libc is musl)", path)
		}
	}
	return nil
}
