"""A check for a guest that was to resume from a hibernation image: where it booted afresh
instead, it names why, from the kernel command line it booted with and the kernel's own words
about the image (a swap layout's misconfiguration: resume= empty, resume_offset missing or
stale, an image that could not be read back)."""

from __future__ import annotations

import re

from harness.checks import facts as fact
from harness.checks.verdict import CheckResult, CycleEvidence

# What the kernel says when it looked for an image and found none it could load.
IMAGE_WORDS = re.compile(
    r"PM: Image not found \(code -?\d+\)|Cannot find swsusp signature|Swap header not found|"
    r"PM: .*Failed to load (hibernation )?image.*|LZO decompression failed|"
    r"resume failed \(-?\d+\)|PM: Error -?\d+ resuming|"
    r"Hibernation image not present or could not be loaded"
)
RESUME_ARGS = re.compile(r"(?:^|\s)(resume(?:_offset)?=\S*|noresume)(?=\s|$)")


def resume_args(cmdline: str) -> dict[str, str]:
    """``resume=``, ``resume_offset=`` and ``noresume`` as the kernel command line gives them."""
    found: dict[str, str] = {}
    for match in RESUME_ARGS.finditer(cmdline):
        name, _, value = match.group(1).partition("=")
        found[name] = value
    return found


def resumed_from_image(ev: CycleEvidence) -> CheckResult:
    """Same boot as before the sleep; else "rebooted, not resumed" and the cause named."""
    before, after = ev.before.get(fact.GUEST_BOOT_ID), ev.after.get(fact.GUEST_BOOT_ID)
    if not after:
        return CheckResult("resumed_from_image", False, f"not measured: {ev.after_error}")
    cmdline = ev.after.get(fact.GUEST_CMDLINE, "")
    args = resume_args(cmdline)
    evidence = {"boot_id": [before, after], "resume_args": args}
    if before == after:
        return CheckResult("resumed_from_image", True, "resumed: same boot_id", evidence)
    words = _kernel_words([*ev.kernel_messages, *ev.kernel_log])
    evidence["kernel"] = words
    return CheckResult(
        "resumed_from_image", False, "rebooted, not resumed: " + _cause(args, words), evidence
    )


def _cause(args: dict[str, str], words: list[str]) -> str:
    said = f"the kernel said '{' | '.join(words[:3])}'" if words else ""
    if "noresume" in args:
        return "noresume is on the kernel command line"
    if not args.get("resume"):
        where = "empty" if "resume" in args else "absent"
        return f"resume= is {where} on the kernel command line: nothing looked for the image"
    at = f"resume={args['resume']}"
    at += (
        f" resume_offset={args['resume_offset']}"
        if "resume_offset" in args
        else " (no resume_offset)"
    )
    if not said:
        return f"the kernel, looking at {at}, said nothing of an image"
    return f"{said}, looking at {at}"


def _kernel_words(lines: list[str]) -> list[str]:
    words: list[str] = []
    for line in lines:
        found = IMAGE_WORDS.search(line)
        if found and found.group(0) not in words:
            words.append(found.group(0))
    return words
