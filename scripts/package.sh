#!/usr/bin/env bash
# make package: the release build of every function in template.yml, in two forms:
#   target/lambda/<binary>/bootstrap.zip  one zip per handler (cargo lambda build --profile deploy --output-format zip);
#                                         their sizes go to target/lambda/sizes.tsv
#   .aws-sam/build/                       `sam build` of template.yml with those zips as its functions' code
#                                         (target/lambda/template.json): what `sam deploy` uploads
# cargo-lambda and zig come from PyPI into .venv-tools (installed here if missing): no Docker.
#
#   ARCH=arm64 scripts/package.sh   builds for Graviton; needs `rustup target add aarch64-unknown-linux-gnu`
#   CARGO_TIMINGS=1 scripts/package.sh  also writes cargo's build timing report (target/cargo-timings/)
#   scripts/package.sh --sizes      prints the sizes of the zips already built (make bench)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TOOLS=.venv-tools
ARCH="${ARCH:-x86_64}"
SIZES=target/lambda/sizes.tsv
# The cargo profile of the zips (Cargo.toml): `deploy`; PROFILE=release gives the smaller, far slower build.
PROFILE="${PROFILE:-deploy}"

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
        local zip="target/lambda/$binary/bootstrap.zip"
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
    mkdir -p target/lambda
    print_sizes
    exit
fi

case "$ARCH" in
    x86_64) arch_flags=() ;;
    arm64) arch_flags=(--arm64) ;;
    *) echo "package: ARCH must be x86_64 or arm64, not $ARCH" >&2; exit 2 ;;
esac

if [[ ! -f $TOOLS/.installed || requirements-templates.txt -nt $TOOLS/.installed ]]; then
    echo "package: installing cargo-lambda, zig and SAM CLI into $TOOLS"
    "$PYTHON" -m venv "$TOOLS"
    "$TOOLS/bin/pip" install --quiet --disable-pip-version-check -r requirements-templates.txt
    touch "$TOOLS/.installed"
fi
# cargo finds `cargo-lambda` on PATH, and cargo-lambda finds zig as `python3 -m ziglang` of the tools venv.
export PATH="$PWD/$TOOLS/bin:$PATH"
# zig's and cargo-zigbuild's caches, SAM CLI's settings: inside the project, not the home directory.
export XDG_CACHE_HOME="$PWD/target/cache" __SAM_CLI_APP_DIR="$PWD/$TOOLS/sam-config" SAM_CLI_TELEMETRY=0

# One cargo invocation for every binary, in the `deploy` profile (Cargo.toml; docs/deploy.md has the
# figures): each dependency is compiled once for all of them, in parallel codegen units, and no binary
# is linked with whole-program LTO. After a change to one handler only that crate and its binary build.
bin_flags=()
for binary in "${binaries[@]}"; do
    bin_flags+=(--bin "$binary")
done
# make bench also wants the runtime's floor (bench/probe) from the same build: its dependencies are a
# subset of the handlers', so adding it changes no feature and rebuilds nothing.
if [[ -n ${BENCH_PROBE:-} ]]; then
    bin_flags+=(--bin bench-protocol-probe)
fi
echo "== cargo lambda build --profile $PROFILE --output-format zip${arch_flags[*]:+ ${arch_flags[*]}} ${bin_flags[*]}"
started=$SECONDS
cargo lambda build --profile "$PROFILE" --output-format zip "${arch_flags[@]}" "${bin_flags[@]}" ${CARGO_TIMINGS:+--timings}
echo "   built in $((SECONDS - started)) s"

# `sam build` of a copy of template.yml whose functions' CodeUri are those zips: SAM takes a function
# whose CodeUri is a .zip as built and copies it, instead of running cargo-lambda again per function
# (a second build, in the release profile, one binary at a time). `sam deploy` then uploads these zips.
prebuilt=target/lambda/template.json
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
        # Relative to the copy's folder, target/lambda.
        resource["Properties"]["CodeUri"] = f"{binary}/bootstrap.zip"
        del resource["Metadata"]
        done.add(binary)
if done != binaries:
    sys.exit(f"package: no function in {source} builds {sorted(binaries - done)}")
with open(target, "w") as f:
    json.dump(template, f, indent=1)
PY
echo "== sam build --beta-features (Architecture=$ARCH) of $prebuilt: the zips above, not built again"
started=$SECONDS
sam build --beta-features --template-file "$prebuilt" --parameter-overrides "Architecture=$ARCH"
echo "   built in $((SECONDS - started)) s"

print_sizes
