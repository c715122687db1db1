#!/bin/sh
# Notes the sleep states ACPI offered at boot (its "ACPI: PM: (supports ...)" line) in
# STATE_DIR/acpi_states, read from the kernel log once per boot: before the kernel log probe
# and when the ready checkpoint is warmed up (which therefore holds them already). Two programs
# once per boot, none after. Prints nothing.
# Settings: STATE_DIR.
[ -d "$STATE_DIR" ] || mkdir -p "$STATE_DIR"
[ -s "$STATE_DIR/acpi_states" ] || dmesg | awk '/ACPI: PM: \(supports / && a == "" {a = $0
  sub(/.*ACPI: PM: \(supports /, "", a); sub(/\)$/, "", a)} END {print a}' > "$STATE_DIR/acpi_states"
