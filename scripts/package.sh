#!/usr/bin/env bash
# make package: the release build of every function in template.yml, in two forms:
#   target/lambda/<binary>/bootstrap.zip  one zip per handler (cargo lambda build --profile deploy --output-format zip);
#                                         their sizes go to target/lambda/sizes.tsv
#   .aws-sam/build/                       `sam build` of template.yml with those zips as its functions' code
#                                         (target/lambda/template.json): what `sam deploy` uploads
#   target/lambda/functions.json          template.yml with its SAM transform expanded (scripts/expand-sam.py),
#                                         code from the artifact bucket: `tapguard deploy --functions-template`
# cargo-lambda, zig and the SAM CLI come from PyPI into .venv-package (requirements-package.txt, installed
# here if missing): no Docker.
#
#   ARCH=arm64 scripts/package.sh   builds for Graviton; needs `rustup target add aarch64-unknown-linux-gnu`
#   CARGO_TIMINGS=1 scripts/package.sh  also writes cargo's build timing report (target/cargo-timings/)
#   PROFILE=release scripts/package.sh  the `release` profile instead of `deploy` (fat LTO at opt-level "s"
#                                       throughout: what `deploy` replaced, Cargo.toml says how they differ);
#                                       its zips go to target/lambda-release/ (LAMBDA_DIR to change)
#   scripts/package.sh --sizes      prints the sizes of the zips already built
#
# Each run appends its own cost to <lambda dir>/package-runs.tsv (make bench reports it): wall and CPU
# (user + sys of every process it ran) of the whole run, of the cargo build and of `sam build`, the
# crates cargo compiled (a clean build compiles all of them) and the load average before and after.
# cargo's output is also kept in <lambda dir>/cargo-build.log.
set -euo pipefail
cd "$(dirname "$0")/.."

export PYTHON="${PYTHON:-python3}"
TOOLS=.venv-package
TOOLS_REQUIREMENTS=requirements-package.txt
ARCH="${ARCH:-x86_64}"
# The cargo profile of the zips (Cargo.toml): `deploy`; PROFILE=<another> builds that profile instead.
PROFILE="${PROFILE:-deploy}"
# Where the zips go: target/lambda for `deploy`, target/lambda-<profile> for another, so that the zips of
# two profiles (make bench PROFILES="deploy release") stand side by side.
if [[ $PROFILE == deploy ]]; then
    LAMBDA_DIR="${LAMBDA_DIR:-target/lambda}"
else
    LAMBDA_DIR="${LAMBDA_DIR:-target/lambda-$PROFILE}"
fi
# `sam build`'s output, what `sam deploy` uploads.
SAM_BUILD_DIR="${SAM_BUILD_DIR:-.aws-sam/build}"
SIZES=$LAMBDA_DIR/sizes.tsv
RUNS=$LAMBDA_DIR/package-runs.tsv

# The binaries template.yml deploys (Metadata.BuildProperties.Binary of each function).
mapfile -t binaries < <(sed -n 's/^ *Binary: *\([a-z0-9-]*\) *$/\1/p' template.yml)
if [[ ${#binaries[@]} -eq 0 ]]; then
    echo "package: no BuildProperties.Binary in template.yml" >&2
    exit 2
fi

print_sizes() {
    local missing=0
    printf 'binary\tzip_bytes\n' >"$SIZES.new"
    for binary in "${binaries[@]}"; do
        local zip="$LAMBDA_DIR/$binary/bootstrap.zip"
        if [[ ! -f $zip ]]; then
            echo "package: $zip is missing: run 'make package' first" >&2
            missing=1
            continue
        fi
        printf '%s\t%s\n' "$binary" "$(stat -c %s "$zip")" >>"$SIZES.new"
    done
    [[ $missing -eq 0 ]] || { rm -f "$SIZES.new"; return 1; }
    mv "$SIZES.new" "$SIZES"
    echo "Lambda zip sizes ($SIZES):"
    awk -F'\t' 'NR > 1 { printf "  %-24s %9d bytes  %7.1f KiB\n", $1, $2, $2 / 1024 }' "$SIZES"
}

if [[ ${1:-} == --sizes ]]; then
    mkdir -p "$LAMBDA_DIR"
    print_sizes
    exit
fi

# Wall clock (s, with fractions) and CPU time (user + sys, s) of the processes this script has waited for:
# bash's `times`, second line. `cpu VAR` sets VAR: `times` must run in this shell, not in a $(...)
# subshell, whose children are not ours.
wall() { local t=${EPOCHREALTIME:-$SECONDS}; echo "${t/,/.}"; }
cpu() {
    times >"$LAMBDA_DIR/.times"
    printf -v "$1" '%s' "$(awk 'function s(t) { gsub(",", ".", t); split(t, a, "m"); sub("s", "", a[2]); return a[1] * 60 + a[2] }
        NR == 2 { printf "%.1f\n", s($1) + s($2) }' "$LAMBDA_DIR/.times")"
}
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f\n", b - a }'; }
load() { cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "-"; }
mkdir -p "$LAMBDA_DIR"
run_wall=$(wall)
cpu run_cpu
run_load=$(load)

case "$ARCH" in
    x86_64) arch_flags=() ;;
    arm64) arch_flags=(--arm64) ;;
    *) echo "package: ARCH must be x86_64 or arm64, not $ARCH" >&2; exit 2 ;;
esac

tools_wall=$(wall)
if [[ ! -f $TOOLS/.installed || $TOOLS_REQUIREMENTS -nt $TOOLS/.installed ]]; then
    echo "package: installing cargo-lambda, zig and SAM CLI into $TOOLS ($TOOLS_REQUIREMENTS)"
    scripts/uv.sh venv --quiet --allow-existing "$TOOLS"
    # Every package is pinned with all it pulls in: nothing is resolved, and `uv pip check` proves the set
    # whole. uv fetches them in parallel (10 s here, where pip's one-by-one index lookups took 685 s).
    scripts/uv.sh pip install --quiet --python "$TOOLS/bin/python" --no-deps -r "$TOOLS_REQUIREMENTS"
    scripts/uv.sh pip check --quiet --python "$TOOLS/bin/python"
    touch "$TOOLS/.installed"
fi
tools_s=$(since "$tools_wall" "$(wall)")
# cargo finds `cargo-lambda` on PATH, and cargo-lambda finds zig as `python3 -m ziglang` of the tools venv.
export PATH="$PWD/$TOOLS/bin:$PATH"
# zig's and cargo-zigbuild's caches, SAM CLI's settings: inside the project, not the home directory.
export XDG_CACHE_HOME="$PWD/target/cache" __SAM_CLI_APP_DIR="$PWD/$TOOLS/sam-config" SAM_CLI_TELEMETRY=0

# One cargo invocation for every binary, in the `deploy` profile (Cargo.toml; docs/deploy.md has the
# figures): each dependency is compiled once for all of them (to bitcode), and each binary is linked with
# whole-program LTO. After a change to one handler only that crate and its binary build.
bin_flags=()
for binary in "${binaries[@]}"; do
    bin_flags+=(--bin "$binary")
done
# make bench also wants the runtime's floor (bench/probe) from the same build: its dependencies are a
# subset of the handlers', so adding it changes no feature and rebuilds nothing.
if [[ -n ${BENCH_PROBE:-} ]]; then
    bin_flags+=(--bin bench-protocol-probe)
fi
echo "== cargo lambda build --profile $PROFILE --output-format zip --lambda-dir $LAMBDA_DIR${arch_flags[*]:+ ${arch_flags[*]}} ${bin_flags[*]}"
cargo_wall=$(wall)
cpu cargo_cpu
cargo lambda build --profile "$PROFILE" --output-format zip --lambda-dir "$LAMBDA_DIR" "${arch_flags[@]}" \
    "${bin_flags[@]}" ${CARGO_TIMINGS:+--timings} 2>&1 | tee "$LAMBDA_DIR/cargo-build.log"
cargo_s=$(since "$cargo_wall" "$(wall)")
cpu now_cpu
cargo_cpu_s=$(since "$cargo_cpu" "$now_cpu")
crates=$(grep -c '^ *Compiling ' "$LAMBDA_DIR/cargo-build.log" || true)
echo "   built in $cargo_s s ($cargo_cpu_s s CPU, $crates crates compiled)"

# `sam build` of a copy of template.yml whose functions' CodeUri are those zips: SAM takes a function
# whose CodeUri is a .zip as built and copies it, instead of running cargo-lambda again per function
# (a second build, in the release profile, one binary at a time). `sam deploy` then uploads these zips.
prebuilt=$LAMBDA_DIR/template.json
"$TOOLS/bin/python" - template.yml "$prebuilt" "${binaries[@]}" <<'PY'
import json
import sys

from samtranslator.yaml_helper import yaml_parse

source, target, binaries = sys.argv[1], sys.argv[2], set(sys.argv[3:])
with open(source) as f:
    template = yaml_parse(f.read())
done = set()
for resource in template["Resources"].values():
    binary = resource.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
    if resource.get("Type") == "AWS::Serverless::Function" and binary in binaries:
        # Relative to the copy's folder, the lambda dir.
        resource["Properties"]["CodeUri"] = f"{binary}/bootstrap.zip"
        del resource["Metadata"]
        done.add(binary)
if done != binaries:
    sys.exit(f"package: no function in {source} builds {sorted(binaries - done)}")
with open(target, "w") as f:
    json.dump(template, f, indent=1)
PY
echo "== sam build --beta-features (Architecture=$ARCH) of $prebuilt: the zips above, not built again"
sam_wall=$(wall)
cpu sam_cpu
sam build --beta-features --template-file "$prebuilt" --build-dir "$SAM_BUILD_DIR" --parameter-overrides "Architecture=$ARCH"
sam_s=$(since "$sam_wall" "$(wall)")
cpu now_cpu
sam_cpu_s=$(since "$sam_cpu" "$now_cpu")
echo "   built in $sam_s s ($sam_cpu_s s CPU) into $SAM_BUILD_DIR"

# The same functions with the SAM transform already expanded, their code taken from the artifact bucket's
# parameters: what `tapguard deploy --functions-template` deploys (a StackSet cannot take the transform).
"$TOOLS/bin/python" scripts/expand-sam.py template.yml "$LAMBDA_DIR/functions.json"
echo "   $LAMBDA_DIR/functions.json: template.yml expanded, for tapguard deploy --functions-template"

print_sizes

total_s=$(since "$run_wall" "$(wall)")
cpu now_cpu
total_cpu_s=$(since "$run_cpu" "$now_cpu")
rm -f "$LAMBDA_DIR/.times"
if [[ ! -f $RUNS ]]; then
    printf 'date\tprofile\tarch\tbinaries\tcrates_compiled\ttools_s\tcargo_wall_s\tcargo_cpu_s\tsam_wall_s\tsam_cpu_s\ttotal_wall_s\ttotal_cpu_s\tload_start\tload_end\n' >"$RUNS"
fi
printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')" "$PROFILE" "$ARCH" \
    "$((${#bin_flags[@]} / 2))" "$crates" "$tools_s" "$cargo_s" "$cargo_cpu_s" "$sam_s" "$sam_cpu_s" "$total_s" "$total_cpu_s" \
    "$run_load" "$(load)" >>"$RUNS"
echo "package: $total_s s wall, $total_cpu_s s CPU (user + sys), load average $run_load before, $(load) after; recorded in $RUNS"
