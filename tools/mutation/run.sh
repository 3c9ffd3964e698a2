#!/usr/bin/env bash
# Mutation testing of fastsmtp's pure-Python core with mutmut (issue #19).
#
#   tools/mutation/run.sh [--full | --sample N [--part K]] [--keep] [--jobs N]
#                         [--function MODULE.NAME]... [MODULE...]
#
# MODULE is one of _parser_py _session _address _commands _transaction email _flatten _folding
# (default: all). --function (repeatable) runs only that function's mutants instead, e.g.
# --function _folding.fold_header --function _flatten._Writer._text (a method as
# Class.method), and the report counts only those functions (after a change to them).
# Needs the test and mutation extras in the Python that runs it (PYTHON, else .venv/bin/python
# if present, else python3):  pip install -e ".[test,mutation]"
#
# The pure core is forced (FASTSMTP_NO_EXTENSIONS=1): the compiled twin is never mutated, and
# tests parametrized over both cores run the compiled one unmutated. mutmut copies src/ and
# tests/ into mutants/, records once which tests reach each function (the "stats" run), then
# runs each mutant with only the tests that reach its function, fastest first, stopping at
# the first failure.
#
# By default 1 mutant in 5 is run (about 12 minutes on 2 idle cores; every mutant, --full,
# about 37: see the README's Development section): those whose number (mutmut numbers the
# mutants of each function 1, 2, 3...) ends in a digit d with d % N == K, where K is --part
# or, by default, the day of the year % N, so runs on successive days cover every mutant in
# turn.
# --sample N (1, 2, 5 or 10) picks another fraction; --full (= --sample 1) runs every mutant.
# Settings: [tool.mutmut] in pyproject.toml. Mutants that cannot change behaviour are listed,
# each with its reason, in tools/mutation/survivors.txt; report.py checks the run against it
# and writes mutants/mutation-report.md. Exit status 1 if a module is below 95 % killed.
#
# --keep reuses mutants/ from an earlier run: its recording of which tests reach each function
# (only tests added since are recorded); without it mutants/ is started afresh. It does not
# skip mutants already run: mutmut 3.8.1 runs every mutant it is given by name or pattern
# again, and run.sh always gives patterns. To re-run chosen mutants, name them to mutmut
# (README, Development).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

ALL=(_parser_py _session _address _commands _transaction email _flatten _folding)
KEEP=0
SAMPLE=5
PART=""
JOBS="$(nproc 2>/dev/null || echo 2)"
MODULES=()
FUNCTIONS=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --keep) KEEP=1 ;;
        --jobs) JOBS="$2"; shift ;;
        --sample) SAMPLE="$2"; shift ;;
        --full) SAMPLE=1 ;;
        --part) PART="$2"; shift ;;
        --function)
            module="${2%%.*}"
            if [[ " ${ALL[*]} " != *" $module "* || "$2" != *.* ]]; then
                echo "--function needs MODULE.NAME with MODULE one of: ${ALL[*]}" >&2
                exit 2
            fi
            FUNCTIONS+=("$2")
            shift
            ;;
        -h | --help) sed -n '2,34p' "$0"; exit 0 ;;
        *)
            if [[ " ${ALL[*]} " != *" $1 "* ]]; then
                echo "unknown module $1 (one of: ${ALL[*]})" >&2
                exit 2
            fi
            MODULES+=("$1")
            ;;
    esac
    shift
done
if [[ ${#FUNCTIONS[@]} -gt 0 && ${#MODULES[@]} -gt 0 ]]; then
    echo "give modules or --function, not both" >&2
    exit 2
fi
# mutmut's names: fastsmtp.MODULE.x_NAME__mutmut_N, and for a method
# fastsmtp.MODULE.xǁCLASSǁMETHOD__mutmut_N.
PREFIXES=()
for function in "${FUNCTIONS[@]}"; do
    module="${function%%.*}"
    name="${function#*.}"
    if [[ "$name" == *.* ]]; then name="ǁ${name%%.*}ǁ${name#*.}"; else name="_$name"; fi
    PREFIXES+=("fastsmtp.$module.x${name}__mutmut_")
    if [[ " ${MODULES[*]} " != *" $module "* ]]; then MODULES+=("$module"); fi
done
if [[ ${#MODULES[@]} -eq 0 ]]; then MODULES=("${ALL[@]}"); fi

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
if ! "$PYTHON" -c 'import mutmut, pytest, hypothesis, aiosmtpd' 2>/dev/null; then
    echo "$PYTHON lacks mutmut or the test requirements: pip install -e \".[test,mutation]\"" >&2
    exit 2
fi
MUTMUT=("$PYTHON" -c 'import sys; from mutmut.__main__ import cli; sys.argv[0] = "mutmut"; cli()')

export FASTSMTP_NO_EXTENSIONS=1
unset FASTSMTP_REQUIRE_EXTENSIONS FASTSMTP_TEST_LOOP PYTHONPATH

if [[ $KEEP -eq 0 ]]; then rm -rf mutants; fi
case "$SAMPLE" in
    1 | 2 | 5 | 10) ;;
    *) echo "--sample must be 1, 2, 5 or 10" >&2; exit 2 ;;
esac
if [[ -z "$PART" ]]; then PART=$((10#$(date -u +%j) % SAMPLE)); fi
DIGITS=""
for d in 0 1 2 3 4 5 6 7 8 9; do
    if [[ $((d % SAMPLE)) -eq $PART ]]; then DIGITS+="$d"; fi
done
PATTERNS=()
if [[ ${#PREFIXES[@]} -gt 0 ]]; then
    for prefix in "${PREFIXES[@]}"; do
        if [[ $SAMPLE -eq 1 ]]; then
            PATTERNS+=("$prefix*")
        else
            PATTERNS+=("$prefix*[$DIGITS]")
        fi
    done
else
    for module in "${MODULES[@]}"; do
        if [[ $SAMPLE -eq 1 ]]; then
            PATTERNS+=("fastsmtp.$module.*")
        else
            PATTERNS+=("fastsmtp.$module.*__mutmut_*[$DIGITS]")
        fi
    done
fi
if [[ $SAMPLE -ne 1 ]]; then
    echo "sample: 1 mutant in $SAMPLE (numbers ending in one of $DIGITS)"
fi

START=$SECONDS
mkdir -p mutants
LOG=mutants/mutmut-run.log
rc=0
"${MUTMUT[@]}" run --max-children "$JOBS" "${PATTERNS[@]}" >"$LOG" 2>&1 || rc=$?
# mutmut redraws a progress line; show its last state and everything else it said.
tr '\r' '\n' <"$LOG" | grep -v -E '^\s*$|^. (Running|Generating|Listing)' |
    grep -v -E '^. [0-9]+/[0-9]+ ' || true
tr '\r' '\n' <"$LOG" | grep -E '^. [0-9]+/[0-9]+ ' | tail -1 || true
if [[ $rc -ne 0 ]]; then
    echo "mutmut run failed (exit $rc); see $LOG" >&2
    exit "$rc"
fi
echo "mutmut run: $((SECONDS - START)) s for ${FUNCTIONS[*]:-${MODULES[*]}} with $JOBS jobs"
ONLY=()
for prefix in "${PREFIXES[@]}"; do ONLY+=(--only "$prefix"); done
"$PYTHON" tools/mutation/report.py "${ONLY[@]}" "${MODULES[@]}"
