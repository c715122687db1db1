#!/bin/sh
# The device PM probe after the wake: in the trace buffer since devpm_arm.sh's last mark, pairs
# each device_pm_callback_start with its end and prints devpm.callbacks (how many callbacks
# ran), then the DEVPM_TOP slowest as devpm.slow.N=USECS PHASE DRIVER DEVICE (N from 1,
# slowest first; PHASE the kernel's PM event, with the callback's stage where it has one:
# prepare, suspend, suspend_late, suspend_noirq, resume_noirq, resume_early, resume, complete;
# freeze..., restore... for S4). Prints nothing where devpm_arm.sh armed nothing.
# Settings: DEVPM_TOP, DEVPM_MARK.
# A start line reads "DRIVER DEVICE, parent: PARENT, KIND... [EVENT]" (KIND: noirq bus, late
# driver, ...), its end "DRIVER DEVICE, err=N": one device's callbacks run one after another,
# so an end closes that device's open start.
# One awk program: each costs a TCG guest tens of ms, so the top is kept in awk, not by sort.
t=/sys/kernel/tracing; [ -d "$t/events/power" ] || t=/sys/kernel/debug/tracing
[ -r "$t/trace" ] && [ -w "$t/trace_marker" ] || exit 0
awk -v top="$DEVPM_TOP" -v mark="$DEVPM_MARK" '
function stamp(i,  s) { s = $(i - 1); sub(/:$/, "", s); return s }
function device(i,  d) { d = $(i + 2); sub(/,$/, "", d); return $(i + 1) " " d }
function keep(us, line,  j) {
  if (k < top) k++
  else if (us <= best[k]) return
  for (j = k; j > 1 && best[j - 1] < us; j--) { best[j] = best[j - 1]; text[j] = text[j - 1] }
  best[j] = us; text[j] = line
}
index($0, "tracing_mark_write: " mark) { split("", start); k = 0; n = 0; next }
{
  for (i = 2; i <= NF; i++) {
    if ($i == "device_pm_callback_start:") {
      key = device(i); phase = $NF; kind = $(i + 5)
      sub(/^[^[]*\[/, "", phase); sub(/\]$/, "", phase)
      if (kind ~ /^(noirq|late|LATE|early)$/) phase = phase "_" tolower(kind)
      else if (kind == "preparing") phase = "prepare"
      else if (kind == "completing") phase = "complete"
      start[key] = stamp(i); verb[key] = phase; break
    }
    if ($i == "device_pm_callback_end:") {
      key = device(i)
      if (key in start) {
        n++; keep(int((stamp(i) - start[key]) * 1000000 + 0.5), verb[key] " " key)
        delete start[key]
      }
      break
    }
  }
}
END {
  print "devpm.callbacks=" n + 0
  for (j = 1; j <= k; j++) print "devpm.slow." j "=" best[j] " " text[j]
}' "$t/trace"
