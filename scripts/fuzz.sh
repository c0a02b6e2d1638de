#!/usr/bin/env bash
# Fuzz every parser of untrusted input with cargo-fuzz (libFuzzer), each
# target for a bounded time, and append one row per target to
# fuzz/RESULTS.md.
#
# Usage: scripts/fuzz.sh [TARGET...]     (default: every target in fuzz/)
#
# Environment:
#   FUZZ_SECONDS       libFuzzer time per target, in seconds (default 60)
#   FUZZ_TOOLCHAIN     Rust toolchain with -Zsanitizer support (default nightly)
#   FUZZ_SANITIZER     cargo-fuzz sanitizer (default none, see below)
#   VAULT_STORK_CACHE  cache holding the pinned cargo-fuzz
#                      (default ~/.cache/vault-stork)
#
# Before fuzzing a target, the script replays fuzz/regressions/TARGET/, the
# inputs of crashes found earlier. It exits 1 when a replay or a fuzzing run
# crashes, and leaves the crashing input in fuzz/artifacts/TARGET/.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${VAULT_STORK_CACHE:-$HOME/.cache/vault-stork}"
seconds="${FUZZ_SECONDS:-60}"
toolchain="${FUZZ_TOOLCHAIN:-nightly}"
# The crate forbids unsafe code, so AddressSanitizer finds little that a
# panic does not. It cut vault_parse_reply to about a quarter of the
# executions in a 20 s trial, so it is off unless FUZZ_SANITIZER=address.
sanitizer="${FUZZ_SANITIZER:-none}"
cargo_fuzz_version="0.13.2"

fuzz_dir="$repo_root/fuzz"
results="$fuzz_dir/RESULTS.md"
log_dir="$fuzz_dir/target/logs"

log() { printf 'fuzz: %s\n' "$*"; }

if [[ ! "$seconds" =~ ^[1-9][0-9]*$ ]]; then
  log "error: invalid FUZZ_SECONDS '$seconds': expected a positive number of seconds"
  exit 64
fi

# Toolchain: cargo-fuzz needs nightly for -Zsanitizer and the coverage flags.
if ! rustup run "$toolchain" rustc --version >/dev/null 2>&1; then
  log "installing Rust toolchain $toolchain"
  rustup toolchain install "$toolchain" --profile minimal
fi
log "toolchain: $(rustup run "$toolchain" rustc --version)"

# cargo-fuzz, pinned, in the cache. It is built with the default toolchain.
export PATH="$cache/cargo/bin:$PATH"
if ! cargo-fuzz --version 2>/dev/null | grep -qx "cargo-fuzz $cargo_fuzz_version"; then
  log "installing cargo-fuzz $cargo_fuzz_version into $cache/cargo"
  cargo install --locked cargo-fuzz --version "$cargo_fuzz_version" --root "$cache/cargo"
fi
log "$(cargo-fuzz --version)"

cd "$repo_root"
fuzz=(cargo "+$toolchain" fuzz)
# -a keeps debug assertions and integer overflow checks in the optimised
# build, so an overflow is a crash here instead of a silent wrap.
build_flags=(--fuzz-dir "$fuzz_dir" --sanitizer "$sanitizer" --debug-assertions)

if (($#)); then
  targets=("$@")
else
  mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir "$fuzz_dir")
fi
log "targets: ${targets[*]}"

log "building the fuzz targets"
"${fuzz[@]}" build "${build_flags[@]}"

mkdir -p "$log_dir"
if [[ ! -f "$results" ]]; then
  cat >"$results" <<'EOF'
# Fuzzing results

`make fuzz` (scripts/fuzz.sh) appends one row per target and run. Seconds
and executions are libFuzzer's own counts: the `Done N runs in S second(s)`
line and `stat::number_of_executed_units`. When a crash ends a run early,
seconds is the wall-clock time of the run instead. Crashes counts the
crash, timeout, out-of-memory and leak inputs that the run wrote to
fuzz/artifacts/TARGET/; libFuzzer stops at the first one. Commit is the
checked-out commit, with `+changes` when src/, Cargo.toml or Cargo.lock had
uncommitted changes.

| date (UTC) | commit | target | seconds | executions | crashes | machine |
| --- | --- | --- | ---: | ---: | ---: | --- |
EOF
fi

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ -n "$(git status --porcelain -- src Cargo.toml Cargo.lock 2>/dev/null)" ]]; then
  commit="$commit+changes"
fi
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)"
machine="$(nproc) cores, ${cpu:-unknown CPU}"

# Counts the inputs libFuzzer has written for a crash, a timeout, an
# out-of-memory condition or a leak of one target.
count_artifacts() {
  find "$fuzz_dir/artifacts/$1" -maxdepth 1 -type f \
    \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) \
    2>/dev/null | wc -l
}

failed=()
summary=()
for target in "${targets[@]}"; do
  # One run per input, because libFuzzer stops at the first that crashes.
  for input in "$fuzz_dir/regressions/$target"/*; do
    [[ -f "$input" ]] || continue
    name="$(basename "$input")"
    if "${fuzz[@]}" run "${build_flags[@]}" "$target" "$input" \
      >"$log_dir/$target-regression-$name.log" 2>&1; then
      log "$target: regression $name passes"
    else
      log "$target: regression $name crashes; see $log_dir/$target-regression-$name.log"
      failed+=("$target (regression $name)")
    fi
  done

  corpus="$fuzz_dir/corpus/$target"
  mkdir -p "$corpus" "$fuzz_dir/artifacts/$target"
  inputs=("$corpus")
  [[ -d "$fuzz_dir/seeds/$target" ]] && inputs+=("$fuzz_dir/seeds/$target")
  libfuzzer_flags=(-max_total_time="$seconds" -timeout=10 -print_final_stats=1)
  [[ -f "$fuzz_dir/dicts/$target.dict" ]] && libfuzzer_flags+=(-dict="$fuzz_dir/dicts/$target.dict")

  log "$target: fuzzing for $seconds s"
  artifacts_before="$(count_artifacts "$target")"
  started="$(date +%s.%N)"
  status=0
  "${fuzz[@]}" run "${build_flags[@]}" "$target" "${inputs[@]}" -- "${libfuzzer_flags[@]}" \
    >"$log_dir/$target.log" 2>&1 || status=$?
  elapsed="$(awk -v start="$started" -v end="$(date +%s.%N)" 'BEGIN { printf "%.1f", end - start }')"
  crashes=$(($(count_artifacts "$target") - artifacts_before))

  executions="$(sed -n 's/^stat::number_of_executed_units:[[:space:]]*//p' "$log_dir/$target.log" | tail -n1)"
  run_seconds="$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second(s)$/\1/p' "$log_dir/$target.log" | tail -n1)"
  executions="${executions:-unknown}"
  run_seconds="${run_seconds:-$elapsed}"
  if ((status != 0 && crashes == 0)); then
    # cargo-fuzz or libFuzzer failed without writing an input: a build or
    # tool failure, not a finding.
    log "$target: cargo fuzz exited with status $status; see $log_dir/$target.log"
    failed+=("$target (exit $status)")
  elif ((crashes > 0)); then
    log "$target: CRASH; input in fuzz/artifacts/$target/, log in $log_dir/$target.log"
    failed+=("$target")
  fi

  line="$target: $executions executions in $run_seconds s, $crashes crash(es)"
  log "$line"
  summary+=("$line")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' \
    "$(date -u '+%Y-%m-%d %H:%M')" "$commit" "$target" "$run_seconds" "$executions" "$crashes" "$machine" \
    >>"$results"
done

log "summary (also appended to fuzz/RESULTS.md):"
printf '  %s\n' "${summary[@]}"
if ((${#failed[@]})); then
  log "failed: ${failed[*]}"
  exit 1
fi
