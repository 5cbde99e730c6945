// ABI layout guard, C++ side: the build FAILS when <knp/plugin_api.h>, seen by a C++ compiler,
// no longer matches abi_layout.def (sizes, alignments, offsets, exact member types, constants).
// It also requires every ABI struct to be standard-layout and trivially copyable, which is what
// lets C++ code (host and SDK) share them with C.
#include <knp/plugin_api.h>

#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

#if !defined(__x86_64__) || !defined(__LP64__)
#error "abi_layout.def pins the x86_64 LP64 layout; add a table for this target"
#endif

namespace {

#define KNP_LAYOUT_STRUCT(s, size, align)                                      \
    static_assert(sizeof(s) == (size), "sizeof(" #s ") changed");              \
    static_assert(alignof(s) == (align), "alignof(" #s ") changed");           \
    static_assert(std::is_standard_layout_v<s>, #s " is not standard-layout"); \
    static_assert(std::is_trivially_copyable_v<s>, #s " is not trivially copyable");
#define KNP_LAYOUT_MEMBER(s, m, off, size, ...)                                 \
    static_assert(offsetof(s, m) == (off), "offsetof(" #s ", " #m ") changed"); \
    static_assert(sizeof(s::m) == (size), "sizeof(" #s "." #m ") changed");     \
    static_assert(std::is_same_v<decltype(s::m), __VA_ARGS__>, "type of " #s "." #m " changed");
#define KNP_LAYOUT_CONSTANT(name, value, type)                \
    static_assert((name) == (value), #name " changed value"); \
    static_assert(std::is_same_v<decltype(name), type>, #name " changed type");
#include "abi_layout.def"
#undef KNP_LAYOUT_STRUCT
#undef KNP_LAYOUT_MEMBER
#undef KNP_LAYOUT_CONSTANT

static_assert(std::string_view(KNP_PLUGIN_ENTRY_SYMBOL) == "knp_plugin_entry_v1", "entry symbol changed");
static_assert(KNP_HAS_MEMBER(knp_pod, 168, n_ips) && !KNP_HAS_MEMBER(knp_pod, 167, n_ips));
static_assert(KNP_HAS_MEMBER(knp_pod, 8, flags) && !KNP_HAS_MEMBER(knp_pod, 8, name));

#define KNP_LAYOUT_STRUCT(s, size, align) +1
#define KNP_LAYOUT_MEMBER(s, m, off, size, ...)
#define KNP_LAYOUT_CONSTANT(name, value, type)
constexpr int kStructs = 0
#include "abi_layout.def"
    ;
#undef KNP_LAYOUT_STRUCT
#undef KNP_LAYOUT_MEMBER
#define KNP_LAYOUT_STRUCT(s, size, align)
#define KNP_LAYOUT_MEMBER(s, m, off, size, ...) +1
constexpr int kMembers = 0
#include "abi_layout.def"
    ;
#undef KNP_LAYOUT_MEMBER
#undef KNP_LAYOUT_CONSTANT
#define KNP_LAYOUT_MEMBER(s, m, off, size, ...)
#define KNP_LAYOUT_CONSTANT(name, value, type) +1
constexpr int kConstants = 0
#include "abi_layout.def"
    ;

}  // namespace

TEST_CASE("plugin_api.h layout matches the pinned x86_64 LP64 table (checked at compile time)") {
    MESSAGE(kStructs << " structs, " << kMembers << " members, " << kConstants << " constants pinned");
    CHECK(kStructs > 0);
    CHECK(kMembers > kStructs);
    CHECK(kConstants > 0);
}
