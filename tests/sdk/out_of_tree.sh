#!/usr/bin/env bash
# The SDK as a third party gets it: install the SDK alone into a temp root, build the installed
# template (port-guard) with meson against that root and nothing else, and load the result with
# the host CLI: `knpctl plugins` must list it and `knpctl simulate` must show its verdict.
#
# Usage: out_of_tree.sh BUILD_ROOT SOURCE_ROOT [KNPCTL]   (tests/sdk/meson.build passes all three)
set -euo pipefail

me=out_of_tree.sh
die() {
  printf '%s: FAIL: %s\n' "$me" "$*" >&2
  exit 1
}
say() { printf '%s: %s\n' "$me" "$*"; }

(($# >= 2)) || die "usage: $me BUILD_ROOT SOURCE_ROOT [KNPCTL]"
build=$(realpath "$1")
src=$(realpath "$2")
knpctl=${3:-$build/host/knpctl}
[[ -x $knpctl ]] || die "no knpctl at $knpctl: build the host first"
for tool in meson ninja pkg-config nm python3; do
  command -v "$tool" >/dev/null || die "$tool is not on PATH"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/knp-out-of-tree.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
log=$work/log

# Runs a command quietly; on failure shows its output and stops with what failed.
run() {
  local what=$1
  shift
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    die "$what failed: $*"
  fi
}

# --- 1. Install the SDK alone ---------------------------------------------------------------
# Tag 'devel' is the SDK (headers, knp-sdk.pc, version script, template); it needs nothing built,
# so this test does not depend on every installable target of the project.
say "installing the SDK into $root"
run "meson install" meson install -C "$build" --no-rebuild --tags devel --destdir "$root"
pc=$(find "$root" -name knp-sdk.pc -print -quit)
[[ -n $pc ]] || die "meson install put no knp-sdk.pc under $root"
template=$(find "$root" -type d -path '*/share/knp/sdk/template' -print -quit)
[[ -n $template && -f $template/meson.build ]] || die "no installed template (share/knp/sdk/template) under $root"

# --- 2. pkg-config sees the installed SDK and nothing else ----------------------------------
# PKG_CONFIG_LIBDIR replaces the default search path, so a knp-sdk.pc installed on this machine
# cannot win; the sysroot moves every path in the .pc file (prefix=/usr) into $root.
export PKG_CONFIG_LIBDIR=${pc%/*} PKG_CONFIG_PATH='' PKG_CONFIG_SYSROOT_DIR=$root
vs=$(pkg-config --variable=versionscript knp-sdk)
[[ $vs == "$root"/* && -f $vs ]] || die "pkg-config does not resolve knp-sdk's versionscript into $root (got '$vs')"

# --- 3. Build the installed template out of tree --------------------------------------------
say "building $template"
run "meson setup of the template" meson setup "$work/build" "$template"
run "building the template" ninja -C "$work/build"
so=$work/build/port-guard.so
[[ -f $so ]] || die "the template build produced no port-guard.so"

# Ask ninja which headers the object really included: the SDK's must come from $root, and
# nothing may come from the source tree.
deps=$(ninja -C "$work/build" -t deps)
grep -F 'knp/plugin.hpp' <<<"$deps" | grep -qF "$root/" ||
  die "the template did not include knp/plugin.hpp from the installed SDK; its dependencies:
$deps"
if grep -F "$src/sdk/" <<<"$deps"; then die "the template build used headers from the source tree $src"; fi

# The version script took effect: the entry symbol is the only export.
exports=$(nm -D --defined-only "$so" | awk '$2 != "A" { print $3 }')
[[ $exports == 'knp_plugin_entry_v1@@KNP_PLUGIN_1' ]] || die "port-guard.so exports more than the entry symbol: $exports"

# --- 4. The host loads it ------------------------------------------------------------------
plugins=$work/plugins
mkdir "$plugins"
cp "$so" "$plugins/"
cat >"$work/pipeline.yaml" <<'EOF'
apiVersion: knp.dev/v1alpha1
kind: Pipeline
defaults: {onError: deny}
instances:
  - name: guard
    library: port-guard
    config: {denyPorts: [23, 2323]}
EOF
cat >"$work/state.yaml" <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: demo}
---
apiVersion: v1
kind: Node
metadata: {name: node-1}
status:
  addresses: [{type: InternalIP, address: 192.168.0.1}]
---
apiVersion: v1
kind: Pod
metadata: {name: client, namespace: demo, labels: {app: client}}
spec:
  nodeName: node-1
  containers: [{name: c, image: busybox}]
status:
  phase: Running
  podIP: 10.0.0.1
  podIPs: [{ip: 10.0.0.1}]
---
apiVersion: v1
kind: Pod
metadata: {name: server, namespace: demo, labels: {app: server}}
spec:
  nodeName: node-1
  containers:
    - name: s
      image: busybox
      ports: [{name: telnet, containerPort: 23}, {name: http, containerPort: 80}]
status:
  phase: Running
  podIP: 10.0.0.2
  podIPs: [{ip: 10.0.0.2}]
EOF

say "knpctl plugins"
run "knpctl plugins" "$knpctl" plugins --pipeline "$work/pipeline.yaml" --plugin-dir "$plugins"
grep -F 'port-guard' "$log" | grep -qF "$plugins/port-guard.so" ||
  die "knpctl plugins does not list port-guard from $plugins:
$(cat "$log")"

say "knpctl simulate"
run "knpctl simulate" "$knpctl" simulate --state "$work/state.yaml" --pipeline "$work/pipeline.yaml" \
  --plugin-dir "$plugins" \
  --probe 'demo/client demo/server TCP/23' \
  --probe 'demo/client demo/server TCP/80' \
  --probe 'demo/client demo/server UDP/23'
# One JSON object per probe. The deny must be the template's own (its rule id), not the
# pipeline's onError: deny after a plugin failure.
python3 - "$log" <<'EOF' || die "knpctl simulate did not give port-guard's verdicts:
$(cat "$log")"
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip().startswith("{")]
want = ["deny", "accept", "accept"]
got = [l.get("verdict") for l in lines]
if got != want:
    sys.exit(f"verdicts {got}, want {want}")
if "denyPorts" not in json.dumps(lines[0]):
    sys.exit("the deny does not name port-guard's rule (denyPorts)")
EOF
say "OK: the template builds against the installed SDK alone and knpctl runs it"
