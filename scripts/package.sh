#!/usr/bin/env bash
# make package: the release build of every function in template.yml, in two forms:
#   target/lambda/<binary>/bootstrap.zip  one zip per handler (cargo lambda build --release --output-format zip);
#                                         their sizes go to target/lambda/sizes.tsv
#   .aws-sam/build/                       `sam build` of template.yml, what `sam deploy` uploads
# cargo-lambda and zig come from PyPI into .venv-tools (installed here if missing): no Docker.
#
#   ARCH=arm64 scripts/package.sh   builds for Graviton; needs `rustup target add aarch64-unknown-linux-gnu`
#   scripts/package.sh --sizes      prints the sizes of the zips already built (make bench)
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
TOOLS=.venv-tools
ARCH="${ARCH:-x86_64}"
SIZES=target/lambda/sizes.tsv

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

# The same flags SAM's builder passes, so that its build finds this one's artifacts up to date.
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

# One binary per cargo invocation, as SAM's builder does: the artifacts are then the ones `sam build`
# looks for, and it reuses them instead of linking every binary again.
echo "== cargo lambda build --release --output-format zip${arch_flags[*]:+ ${arch_flags[*]}} --bin <each of: ${binaries[*]}>"
started=$SECONDS
for binary in "${binaries[@]}"; do
    cargo lambda build --release --output-format zip "${arch_flags[@]}" --bin "$binary"
done
echo "   built in $((SECONDS - started)) s"

# SAM's cargo-lambda builder (a beta feature) runs `cargo lambda build --release --bin <Binary>` in this
# directory for the architecture given here, and copies target/lambda/<Binary>/bootstrap.
echo "== sam build --beta-features (Architecture=$ARCH)"
started=$SECONDS
sam build --beta-features --template-file template.yml --parameter-overrides "Architecture=$ARCH"
echo "   built in $((SECONDS - started)) s"

print_sizes
