#!/bin/bash
# tmt test: the suite on the host's own components as test-day results in $TMT_TEST_DATA.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
out="$TMT_TEST_DATA/testday"
# The cases' verdicts are the results; testday's exit status is not.
# shellcheck disable=SC2086  # S3S4_PYTEST_ARGS is a list of pytest arguments
./run testday --bot --fas-user "${S3S4_FAS_USER:-s3s4-harness}" --report-dir "$out" -- \
    ${S3S4_PYTEST_ARGS:-} || true
runs=()
for run in "$out"/*/; do
    [ -L "${run%/}" ] || runs+=("$run")  # not the "latest" link to a run
done
exec "${S3S4_VENV:-.venv}/bin/python" -m harness tmt-results "${runs[@]}" \
    --data-dir "$TMT_TEST_DATA"
