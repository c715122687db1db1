"""The checks that follow a guest's TPM and shared folder (harness.machines.devices): the
probes that read them before and after a sleep, the judges, and which of them a guest gets.

A guest without a TPM or a share gets neither its probe nor its check, so the default
guest's checks are unchanged.
"""

from __future__ import annotations

from harness.checks.guest_scripts import program
from harness.checks.judges import DEFAULT_CHECKS, Check, _unmeasured
from harness.checks.probes import BOUNDED_WAIT, DEFAULT_PROBES, STATE_DIR, Probe
from harness.checks.verdict import CheckResult, CycleEvidence
from harness.machines.devices import DeviceProfile
from harness.machines.protocol import Signal
from harness.machines.shares import SHARE_TAG

# PCRs 0-7 hold what the firmware measured at boot; nothing measures into them again on an S3
# resume, so a TPM reset across S3 would show as changed values.
TPM_PCRS = "0 1 2 3 4 5 6 7"
TPM_READ_S = 30  # a TPM command's longest duration in the TCG's tables is seconds, not more
SHARE_MNT = "/mnt/s3s4share"
# One mount, write or read through the share. A healthy share's steps take a TCG guest well
# under a second (the mount with its modules loaded seconds at most); an order of magnitude
# above that, since a share that does not answer (9p after a wake) is a wait to this bound.
SHARE_IO_S = 10
SHARE_MOUNT = {
    "virtiofs": ("virtiofs", "rw"),
    "9p": ("9p", "trans=virtio,version=9p2000.L,msize=262144"),
}

_TPM_SCRIPT = program("tpm.sh", TPM_PCRS=TPM_PCRS, TPM_READ_S=TPM_READ_S)
TPM = Probe(name="tpm", before=_TPM_SCRIPT, after=_TPM_SCRIPT)


def share_probe(kind: str) -> Probe:
    fs, options = SHARE_MOUNT[kind]
    return Probe(
        name="share",
        before=program(
            "share_before.sh",
            SHARE_TAG=SHARE_TAG,
            SHARE_FS=fs,
            SHARE_OPTIONS=options,
            SHARE_MNT=SHARE_MNT,
            SHARE_IO_S=SHARE_IO_S,
        ),
        after=program(
            "share_after.sh",
            SHARE_MNT=SHARE_MNT,
            SHARE_IO_S=SHARE_IO_S,
            STATE_DIR=STATE_DIR,
            BOUNDED_WAIT=BOUNDED_WAIT,
        ),
    )


def tpm_healthy(ev: CycleEvidence) -> CheckResult:
    """The TPM answers after the wake (every PCR read), and across S3, where the TPM keeps its
    state (the kernel saves it with TPM2_Shutdown(STATE), the firmware restores it), its PCRs
    are the ones read before. After S4 the PCRs are a new boot's: only the answer counts."""
    if unmeasured := _unmeasured("tpm_healthy", ev):
        return unmeasured
    before, after = ev.before, ev.after
    name = f"{after.get('tpm.driver') or before.get('tpm.driver') or 'tpm'} tpm0"
    data = {k: {"before": before.get(k), "after": after.get(k)} for k in ("tpm.pcrs", "tpm.error")}
    problems = []
    if not before.get("tpm.device"):
        problems.append("no TPM in the guest before the sleep")
    elif before.get("tpm.error"):
        problems.append(f"did not answer before the sleep: {before['tpm.error']}")
    if before.get("tpm.device") and not after.get("tpm.device"):
        problems.append("gone after the wake")
    elif after.get("tpm.error"):
        problems.append(f"did not answer after the wake: {after['tpm.error']}")
    ram_kept = Signal.SUSPENDED.value in ev.expected_events
    if not problems and ram_kept and before.get("tpm.pcrs") != after.get("tpm.pcrs"):
        changed = _changed_pcrs(before.get("tpm.pcrs", ""), after.get("tpm.pcrs", ""))
        problems.append(f"PCRs changed across the sleep: {changed}")
    if problems:
        return CheckResult("tpm_healthy", False, f"{name}: {'; '.join(problems)}", data)
    count = len(after.get("tpm.pcrs", "").split())
    kept = "kept across the sleep" if ram_kept else "read after the resume"
    return CheckResult("tpm_healthy", True, f"{name}: {count} SHA-256 PCRs {kept}", data)


def _changed_pcrs(before: str, after: str) -> str:
    was = dict(item.split(":", 1) for item in before.split() if ":" in item)
    now = dict(item.split(":", 1) for item in after.split() if ":" in item)
    changed = [
        f"PCR {n} {was.get(n, '-')[:12]}.. -> {now.get(n, '-')[:12]}.."
        for n in sorted(set(was) | set(now), key=int)
        if was.get(n) != now.get(n)
    ]
    return ", ".join(changed)


def share_healthy(ev: CycleEvidence) -> CheckResult:
    """The file written through the share before the sleep reads back after it, and a file
    written after the wake reads back too."""
    if unmeasured := _unmeasured("share_healthy", ev):
        return unmeasured
    before, after = ev.before, ev.after
    name = f"{before.get('share.fs', 'share')} share {SHARE_TAG}"
    data = {k: v for k, v in {**before, **after}.items() if k.startswith("share.")}
    problems = []
    token = before.get("share.before_token")
    if before.get("share.mounted") != "1":
        problems.append(f"not mounted before the sleep: {before.get('share.mounted')}")
    elif not token:
        problems.append("the file could not be written before the sleep")
    elif after.get("share.stuck"):
        problems.append(after["share.stuck"])
    elif after.get("share.reread") != token:
        problems.append(
            f"the file written before the sleep reads back as {after.get('share.reread')!r}"
        )
    if after.get("share.stuck"):
        pass  # the new file's steps never ran, or never ended: said above
    elif after.get("share.after_error"):
        problems.append(f"a new file cannot be written: {after['share.after_error']}")
    elif after.get("share.after_reread") != after.get("share.after_token"):
        problems.append(f"the new file reads back as {after.get('share.after_reread')!r}")
    if problems:
        return CheckResult("share_healthy", False, f"{name}: {'; '.join(problems)}", data)
    return CheckResult(
        "share_healthy", True, f"{name}: the file from before read back; a new one written", data
    )


def probes_and_checks(devices: DeviceProfile) -> tuple[tuple[Probe, ...], tuple[Check, ...]]:
    """The default probes and checks, with those of the profile's TPM and share."""
    probes: tuple[Probe, ...] = DEFAULT_PROBES
    checks: tuple[Check, ...] = DEFAULT_CHECKS
    if devices.tpm:
        probes, checks = (*probes, TPM), (*checks, tpm_healthy)
    if devices.share:
        probes, checks = (*probes, share_probe(devices.share)), (*checks, share_healthy)
    return probes, checks
