#!/usr/bin/env bash
# Compile-time cost of the attributes: generates two throwaway binary crates
# with the same 50 functions (40 `#[cache_result]` in five shapes, 10
# `#[rate_limit]`), one decorated and one plain, each calling all of them
# from `main` (so everything generic is instantiated), and measures:
#   - `cargo check` and `cargo build` (debug) time of the crate alone,
#     median of RUNS rebuilds after touching main.rs (non-incremental, so
#     each compiles the crate in full), decorated vs plain;
#   - generated code: lines of LLVM IR (`--emit=llvm-ir`, stable) and the
#     size of the crate's object code, decorated vs plain.
# Offline; forge-cache is a path dependency on this workspace. Everything
# lives in <target dir>/compile-cost: the crates are regenerated each run,
# their own target dir (dependencies) is kept.
#
# Usage: bash scripts/compile-cost.sh [FNS] [RUNS]   (defaults: 50, 5)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
fns="${1:-50}"
runs="${2:-5}"
work="${CARGO_TARGET_DIR:-$root/target}/compile-cost"
mkdir -p "$work"
cd "$work"

cat > Cargo.toml <<EOF
[workspace]
members = ["decorated", "plain"]
resolver = "3"
EOF
cp "$root/Cargo.lock" .

# gen <crate> <attributes on?>
gen() {
  local name="$1" attrs="$2"
  rm -rf "$name"
  mkdir -p "$name/src"
  cat > "$name/Cargo.toml" <<EOF
[package]
name = "$name"
version = "0.0.0"
edition = "2024"
publish = false

[dependencies]
forge-cache = { path = "$root" }
serde = { version = "1", features = ["derive"] }
tokio = { version = "1.47", default-features = false, features = ["rt"] }
EOF
  local src="$name/src/main.rs" calls=""
  cat > "$src" <<'EOF'
#![allow(dead_code, unused_imports)]
use forge_cache::{cache_result, rate_limit};

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Item {
    pub id: u64,
    pub name: String,
}

#[derive(Debug)]
pub struct AppError;

impl From<forge_cache::RateLimitExceeded> for AppError {
    fn from(_: forge_cache::RateLimitExceeded) -> Self {
        AppError
    }
}
EOF
  local i attr sig body call
  for ((i = 0; i < fns; i++)); do
    case $((i % 5)) in
      0) attr="#[rate_limit(max_requests = 100, window_seconds = 60)]"
         sig="pub async fn f$i(id: u64) -> Result<u64, AppError>"
         body="Ok(id + $i)"; call="let _ = f$i(1).await;" ;;
      1) attr="#[cache_result(ttl = 60, key_prefix = \"p$i\")]"
         sig="pub async fn f$i(id: u64, name: &str) -> Result<Item, AppError>"
         body="Ok(Item { id: id + $i, name: name.to_owned() })"; call="let _ = f$i(1, \"a\").await;" ;;
      2) attr="#[cache_result(ttl = 60, key = \"user:{id}:f$i\", lock = true)]"
         sig="pub async fn f$i(id: u64) -> Option<Item>"
         body="Some(Item { id: id + $i, name: String::new() })"; call="let _ = f$i(1).await;" ;;
      3) attr="#[cache_result(ttl = 60, stale_ttl = 30)]"
         sig="pub fn f$i(id: u64) -> Vec<u64>"
         body="vec![id, $i]"; call="let _ = f$i(1);" ;;
      4) attr="#[cache_result]"
         sig="pub async fn f$i(id: u64, flag: bool) -> u64"
         body="if flag { id } else { $i }"; call="let _ = f$i(1, true).await;" ;;
    esac
    [ "$attrs" = yes ] && echo "$attr" >> "$src"
    printf '%s {\n    %s\n}\n\n' "$sig" "$body" >> "$src"
    calls+="        $call"$'\n'
  done
  cat >> "$src" <<EOF
fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
$calls    });
}
EOF
}
gen decorated yes
gen plain no

export CARGO_TARGET_DIR="$work/target"
# Every timed build compiles the whole crate again (no incremental reuse).
export CARGO_INCREMENTAL=0
echo "building dependencies (once)..." >&2
cargo build --offline --quiet -p plain -p decorated >&2
cargo check --offline --quiet -p plain -p decorated >&2

now() { date +%s.%N; }
# median of RUNS timings of `cargo <cmd> -p <crate>` after touching its main.rs
timed() {
  local cmd="$1" crate="$2" t=()
  for ((r = 0; r < runs; r++)); do
    touch "$crate/src/main.rs"
    local s; s=$(now)
    cargo "$cmd" --offline --quiet -p "$crate"
    t+=("$(echo "$(now) - $s" | bc)")
  done
  printf '%s\n' "${t[@]}" | sort -n | sed -n "$(((runs + 1) / 2))p" | xargs printf '%.2f\n'
}
ir_lines() {
  rm -f "$CARGO_TARGET_DIR"/debug/deps/"$1"-*.ll
  cargo rustc --offline --quiet -p "$1" --bin "$1" -- --emit=llvm-ir,link
  cat "$CARGO_TARGET_DIR"/debug/deps/"$1"-*.ll | wc -l
}
obj_bytes() {
  rm -f "$CARGO_TARGET_DIR"/debug/deps/"$1"-*.o
  cargo rustc --offline --quiet -p "$1" --bin "$1" -- --emit=obj,link -C codegen-units=1
  stat -c %s "$CARGO_TARGET_DIR"/debug/deps/"$1"-*.o
}

for c in check build; do
  for crate in plain decorated; do
    declare "t_${c}_${crate}=$(timed "$c" "$crate")"
  done
done
ir_plain=$(ir_lines plain); ir_dec=$(ir_lines decorated)
obj_plain=$(obj_bytes plain); obj_dec=$(obj_bytes decorated)

per() { printf '%.3f' "$(echo "scale=4; ($1) / $fns" | bc)"; }
minus() { printf '%.2f' "$(echo "$1 - $2" | bc)"; }
echo "$(rustc --version), $(nproc) cores"
cat <<EOF
$fns functions ($((fns / 5)) #[rate_limit], $((fns - fns / 5)) #[cache_result]), debug profile, median of $runs runs
| measure | plain | decorated | added | added per fn |
|---|---|---|---|---|
| cargo check (s) | $t_check_plain | $t_check_decorated | $(minus "$t_check_decorated" "$t_check_plain") | $(per "$t_check_decorated - $t_check_plain") |
| cargo build (s) | $t_build_plain | $t_build_decorated | $(minus "$t_build_decorated" "$t_build_plain") | $(per "$t_build_decorated - $t_build_plain") |
| LLVM IR lines | $ir_plain | $ir_dec | $((ir_dec - ir_plain)) | $(((ir_dec - ir_plain) / fns)) |
| object bytes (1 CGU) | $obj_plain | $obj_dec | $((obj_dec - obj_plain)) | $(((obj_dec - obj_plain) / fns)) |
EOF
