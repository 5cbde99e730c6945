#!/bin/sh
# Guards sdk/include/knp/plugin_api.h, the C ABI every built plugin depends on:
#  1. its SHA-256 must equal the one recorded in tests/abi/plugin_api.h.sha256, so no change to
#     the contract lands without someone deciding whether it is a minor or a major change;
#  2. every struct and integer constant it declares must have a row in tests/abi/abi_layout.def,
#     so the layout guard really covers all of it.
# Usage: check_header.sh <plugin_api.h> <plugin_api.h.sha256> <abi_layout.def>
set -u
header=$1
recorded_file=$2
table=$3
status=0

actual=$(sha256sum "$header" | cut -d' ' -f1)
recorded=$(cut -d' ' -f1 "$recorded_file")
if [ "$actual" != "$recorded" ]; then
    status=1
    cat <<MSG
FAIL: plugin_api.h changed.
  recorded sha256: $recorded  (tests/abi/plugin_api.h.sha256)
  actual   sha256: $actual
Every plugin already built depends on this header. Decide which change this is:
  - comments or whitespace only: just record the new hash (below).
  - it only APPENDS members at the end of structs that start with struct_size, or adds new
    constants or structs: bump KNP_ABI_MINOR, tag the additions "SINCE: 1.<minor>", add rows to
    tests/abi/abi_layout.def, and record the new hash.
  - anything else (reordering, retyping, resizing, renaming or removing a member; changing a
    FROZEN struct, a constant's value or a function's signature) breaks built plugins and needs
    a new major: KNP_ABI_MAJOR + 1, entry symbol knp_plugin_entry_v<major>, a new node in
    sdk/knp-plugin.map.
To record the new hash, from the source root:
  sha256sum sdk/include/knp/plugin_api.h > tests/abi/plugin_api.h.sha256
MSG
fi

# Struct and constant names from the header; each needs a row in the layout table.
# (KNP_PLUGIN_ENTRY_SYMBOL is a string and KNP_HAS_MEMBER a macro: abi_layout.c/.cpp check them.)
missing=""
for s in $(sed -n 's/^typedef struct \([a-z_0-9]*\) {.*/\1/p' "$header"); do
    grep -q "^KNP_LAYOUT_STRUCT($s," "$table" || missing="$missing $s"
done
for c in $(sed -n 's/^#define \(KNP_[A-Z_0-9]*\) .*/\1/p' "$header"); do
    # A string and an attribute macro: abi_layout.c/.cpp and the plugins' export checks cover them.
    case "$c" in KNP_PLUGIN_ENTRY_SYMBOL | KNP_PLUGIN_EXPORT) continue ;; esac
    grep -q "^KNP_LAYOUT_CONSTANT($c," "$table" || missing="$missing $c"
done
if [ -n "$missing" ]; then
    status=1
    echo "FAIL: not pinned in tests/abi/abi_layout.def:$missing"
    echo "  add a KNP_LAYOUT_STRUCT/KNP_LAYOUT_MEMBER or KNP_LAYOUT_CONSTANT row for each."
fi

[ "$status" = 0 ] && echo "plugin_api.h: sha256 $actual as recorded; every struct and constant pinned: OK"
exit "$status"
