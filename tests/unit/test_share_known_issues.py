"""The shares' guest-kernel limits in testcases/known_issues.toml match their own FAILs, by the
reason's own words, and absorb no other FAIL."""

from harness.results import known_issues

VIRTIOFS_S3 = (
    "cycle 1/1: suspend-entry: guest agent guest-suspend-ram was sent, but the guest kernel "
    "entered s2idle instead of S3 (deep) ('PM: suspend entry (s2idle)') after virtio-pci "
    "0000:00:09.0 failed to suspend: error -95 (virtio-fs: suspend/resume not yet supported)"
)
S2IDLE = "entered s2idle, not deep"
NINE_P = "cycle 1/1: share_healthy: 9p share s3s4share: no answer through the share within 20s"


def find(reason: str, cause: str = "") -> str:
    issue = known_issues.find(known_issues.load(), "s3-agent", "7.2.13-amd64", reason, cause=cause)
    return issue.summary if issue else ""


def test_virtiofs_refusing_s3_is_known_only_with_its_cause_and_words() -> None:
    assert find(VIRTIOFS_S3, S2IDLE).startswith("virtio-fs guests cannot sleep")
    assert find(VIRTIOFS_S3) == ""  # the evidence's cause is part of the FAIL
    other_device = VIRTIOFS_S3.replace("(virtio-fs: suspend/resume not yet supported)", "")
    assert not find(other_device, S2IDLE).startswith("virtio-fs")


def test_9p_no_answer_is_known_only_alone() -> None:
    assert find(NINE_P).startswith("9p (virtio) shares hang")
    assert find(NINE_P + "; tpm_healthy: tpm_crb tpm0: no answer") == ""
    assert find("cycle 1/1: tpm_healthy: x; " + NINE_P.removeprefix("cycle 1/1: ")) == ""
    lost = "cycle 1/1: share_healthy: 9p share s3s4share: the file written before the sleep"
    assert find(lost) == ""
