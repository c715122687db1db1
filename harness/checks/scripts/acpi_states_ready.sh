#!/bin/sh
# Notes the sleep states ACPI offered at boot (its "ACPI: PM: (supports ...)" line) in
# STATE_DIR/acpi_states, and the kernel's word that lockdown restricts hibernation ("Lockdown:
# ...: hibernation is restricted ...", under secure boot) in STATE_DIR/lockdown_said, read
# from the kernel log once per boot: before the kernel log probe
# and when the ready checkpoint is warmed up (which therefore holds them already). Two programs
# once per boot, none after. Prints nothing.
# Settings: STATE_DIR.
[ -d "$STATE_DIR" ] || mkdir -p "$STATE_DIR"
[ -s "$STATE_DIR/acpi_states" ] || dmesg | awk -v said="$STATE_DIR/lockdown_said" '
  /ACPI: PM: \(supports / && a == "" {a = $0; sub(/.*ACPI: PM: \(supports /, "", a); sub(/\)$/, "", a)}
  /Lockdown: .*hibernation is restricted/ && l == "" {l = $0; sub(/^\[[^]]*\] */, "", l)}
  END {print a; print l > said}' > "$STATE_DIR/acpi_states"
