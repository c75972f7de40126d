#!/usr/bin/env bash
# Coverage-guided fuzzing of the protocol code: every target in fuzz/ (cargo-fuzz, libFuzzer,
# nightly Rust) for SECONDS each, starting from the committed seeds (fuzz/seeds/TARGET) and the
# corpus grown by earlier runs (fuzz/corpus/TARGET, not committed). Installs the nightly
# toolchain and cargo-fuzz when missing. Prints one line per target: executions, coverage,
# corpus size. A failing input is copied to fuzz/regressions/TARGET/ (tests/fuzz_regressions.rs
# replays it on stable) and the script exits non-zero.
#
# Usage: scripts/fuzz.sh SECONDS [TARGET...]     (the test command runs it with 20)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECS="${1:?usage: scripts/fuzz.sh SECONDS [TARGET...]}"
shift
if ! rustup toolchain list | grep -q '^nightly'; then
    echo "fuzz: installing the nightly toolchain" >&2
    rustup toolchain install nightly --profile minimal
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz" >&2
    cargo install cargo-fuzz --locked
fi
cd "$ROOT/fuzz"
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then
    mapfile -t TARGETS < <(cargo +nightly fuzz list)
fi
cargo +nightly fuzz build -O >&2
LOGS="$(mktemp -d)"
trap 'rm -rf "$LOGS"' EXIT
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "corpus/$t"
    if cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$SECS" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        >"$LOGS/$t.log" 2>&1; then
        runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$LOGS/$t.log" | grep -o '[0-9]*$' || true)
        cov=$(grep -E '^#[0-9]+.*(DONE|pulse|REDUCE|NEW)' "$LOGS/$t.log" | tail -1 |
            grep -o 'cov: [0-9]* ft: [0-9]* corp: [0-9]*' || true)
        echo "fuzz: $t: ${runs:-?} executions in ${SECS}s, ${cov:-no stats}"
    else
        status=1
        echo "fuzz: $t FAILED; its log:" >&2
        tail -40 "$LOGS/$t.log" >&2
        mkdir -p "regressions/$t"
        for f in artifacts/"$t"/*; do
            [ -f "$f" ] || continue
            cp "$f" "regressions/$t/"
            echo "fuzz: kept $f as fuzz/regressions/$t/$(basename "$f")" >&2
        done
    fi
done
exit $status
