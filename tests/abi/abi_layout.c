/*
 * ABI layout guard, C11 side: the build FAILS when <knp/plugin_api.h> no longer matches the
 * layout pinned in abi_layout.def (sizes, alignments, offsets, member types, constants).
 * The executable only reports that it was built.
 */
#include <knp/plugin_api.h>

#include <stdio.h>
#include <string.h>

#if !defined(__x86_64__) || !defined(__LP64__)
#error "abi_layout.def pins the x86_64 LP64 layout; add a table for this target"
#endif

/* clang-format off */
#define KNP_LAYOUT_STRUCT(s, size, align)                                               \
    _Static_assert(sizeof(s) == (size), "sizeof(" #s ") changed");                      \
    _Static_assert(_Alignof(s) == (align), "alignof(" #s ") changed");
#define KNP_LAYOUT_MEMBER(s, m, off, size, ...)                                         \
    _Static_assert(offsetof(s, m) == (off), "offsetof(" #s ", " #m ") changed");        \
    _Static_assert(sizeof(((s*)0)->m) == (size), "sizeof(" #s "." #m ") changed");      \
    _Static_assert(__builtin_types_compatible_p(__typeof__(((s*)0)->m), __VA_ARGS__),   \
                   "type of " #s "." #m " changed");
#define KNP_LAYOUT_CONSTANT(name, value, type)                                          \
    _Static_assert((name) == (value), #name " changed value");                          \
    _Static_assert(_Generic((name), type: 1, default: 0), #name " changed type");
/* clang-format on */
#include "abi_layout.def"
#undef KNP_LAYOUT_STRUCT
#undef KNP_LAYOUT_MEMBER
#undef KNP_LAYOUT_CONSTANT

_Static_assert(sizeof(KNP_PLUGIN_ENTRY_SYMBOL) == sizeof("knp_plugin_entry_v1"), "entry symbol changed");
_Static_assert(KNP_HAS_MEMBER(knp_pod, 168, n_ips), "KNP_HAS_MEMBER: a full knp_pod has n_ips");
_Static_assert(!KNP_HAS_MEMBER(knp_pod, 167, n_ips), "KNP_HAS_MEMBER: one byte short has no n_ips");
_Static_assert(KNP_HAS_MEMBER(knp_pod, 8, flags) && !KNP_HAS_MEMBER(knp_pod, 8, name),
               "KNP_HAS_MEMBER: counts whole members only");

/* Row counts, from the same table. */
#define KNP_LAYOUT_STRUCT(s, size, align) +1
#define KNP_LAYOUT_MEMBER(s, m, off, size, ...)
#define KNP_LAYOUT_CONSTANT(name, value, type)
static const int n_structs = 0
#include "abi_layout.def"
    ;
#undef KNP_LAYOUT_STRUCT
#undef KNP_LAYOUT_MEMBER
#define KNP_LAYOUT_STRUCT(s, size, align)
#define KNP_LAYOUT_MEMBER(s, m, off, size, ...) +1
static const int n_members = 0
#include "abi_layout.def"
    ;

int main(void) {
    if (strcmp(KNP_PLUGIN_ENTRY_SYMBOL, "knp_plugin_entry_v1") != 0) {
        fprintf(stderr, "KNP_PLUGIN_ENTRY_SYMBOL is \"%s\", pinned \"knp_plugin_entry_v1\"\n", KNP_PLUGIN_ENTRY_SYMBOL);
        return 1;
    }
    printf("abi layout (C11): %d structs, %d members pinned: OK\n", n_structs, n_members);
    return 0;
}
