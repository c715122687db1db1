#!/bin/bash
# tmt test: the suite on one cell; results as tmt custom results in $TMT_TEST_DATA.
set -euo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
out="$TMT_TEST_DATA/matrix"
# The cases' verdicts are the results; the matrix's exit status is not.
# shellcheck disable=SC2086  # S3S4_PYTEST_ARGS is a list of pytest arguments
./run matrix --cell "${S3S4_CELL:-*}" --out "$out" -- testcases -m "not selftest" \
    ${S3S4_PYTEST_ARGS:-} || true
exec "${S3S4_VENV:-.venv}/bin/python" -m harness tmt-results "$out" --data-dir "$TMT_TEST_DATA"
