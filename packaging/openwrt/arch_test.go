package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeELF writes an ELF header (and, with interp, one PT_INTERP program
// header) of the given kind.
func writeELF(t *testing.T, m elf.Machine, c elf.Class, bo binary.ByteOrder, typ elf.Type, interp bool) string {
	t.Helper()
	var b bytes.Buffer
	ident := [elf.EI_NIDENT]byte{0x7f, 'E', 'L', 'F', byte(c), byte(elf.ELFDATA2LSB), byte(elf.EV_CURRENT)}
	if bo == binary.BigEndian {
		ident[elf.EI_DATA] = byte(elf.ELFDATA2MSB)
	}
	var phnum uint16
	if interp {
		phnum = 1
	}
	if c == elf.ELFCLASS64 {
		binary.Write(&b, bo, elf.Header64{Ident: ident, Type: uint16(typ), Machine: uint16(m), Version: 1,
			Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: phnum})
		if interp {
			binary.Write(&b, bo, elf.Prog64{Type: uint32(elf.PT_INTERP)})
		}
	} else {
		binary.Write(&b, bo, elf.Header32{Ident: ident, Type: uint16(typ), Machine: uint16(m), Version: 1,
			Phoff: 52, Ehsize: 52, Phentsize: 32, Phnum: phnum})
		if interp {
			binary.Write(&b, bo, elf.Prog32{Type: uint32(elf.PT_INTERP)})
		}
	}
	p := filepath.Join(t.TempDir(), "bin")
	if err := os.WriteFile(p, b.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// Each target takes only a static executable of its own CPU: the two MIPS
// differ only in byte order, and a 64-bit ARM binary is no ARMv7 one.
func TestCheckELF(t *testing.T) {
	for name, tg := range targets {
		t.Run(name, func(t *testing.T) {
			if err := tg.checkELF(writeELF(t, tg.Machine, tg.Class, tg.ByteOrder, elf.ET_EXEC, false)); err != nil {
				t.Errorf("its own binary: %v", err)
			}
			for other, o := range targets {
				if o.Machine == tg.Machine && o.Class == tg.Class && o.ByteOrder == tg.ByteOrder {
					continue
				}
				if err := tg.checkELF(writeELF(t, o.Machine, o.Class, o.ByteOrder, elf.ET_EXEC, false)); err == nil {
					t.Errorf("%s's binary accepted", other)
				}
			}
			if err := tg.checkELF(writeELF(t, tg.Machine, tg.Class, tg.ByteOrder, elf.ET_EXEC, true)); err == nil || !strings.Contains(err.Error(), "dynamically linked") {
				t.Errorf("dynamic binary: %v", err)
			}
			if err := tg.checkELF(writeELF(t, tg.Machine, tg.Class, tg.ByteOrder, elf.ET_REL, false)); err == nil {
				t.Error("object file accepted")
			}
		})
	}
	script := filepath.Join(t.TempDir(), "paradrop")
	os.WriteFile(script, []byte("#!/bin/sh\n"), 0o755)
	if err := targets["mips"].checkELF(script); err == nil {
		t.Error("a script accepted")
	}
}
