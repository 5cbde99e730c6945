// knp policy common — a set of IP addresses built from CIDR blocks with exceptions (a
// NetworkPolicy ipBlock, an AdminNetworkPolicy `networks` list), looked up by binary search.
//
// SPDX-License-Identifier: Apache-2.0
//
// A block contributes its CIDR minus its own exceptions; blocks are then unioned, so an
// address excepted from one block is still in the set when another block holds it (the e2e
// case "IP overlapping both IPBlock.CIDR and IPBlock.Except is allowed"). IPv4 and IPv6 are
// kept apart: families never cross, not even through IPv4-mapped IPv6 prefixes.
// THREAD: immutable once built; contains() is allocation-free and safe on data threads.
#ifndef KNP_POLICY_COMMON_CIDR_SET_HPP
#define KNP_POLICY_COMMON_CIDR_SET_HPP

#include <knp/plugin_api.h>

#include <optional>
#include <span>
#include <string_view>
#include <vector>

namespace knp::policy {

// A CIDR as Kubernetes accepts it: an address, '/', a prefix length (no bare addresses).
// Host bits are allowed and masked off, as the API server's ParseCIDR does.
std::optional<knp_cidr> parseKubeCidr(std::string_view text) noexcept;

// The host prefix of one address: /32 for IPv4, /128 for IPv6 (an interest's local endpoint).
inline knp_cidr hostPrefix(const knp_addr& a) noexcept {
    return knp_cidr{a, uint8_t(a.family == KNP_FAMILY_IPV4 ? 32 : 128), {}};
}

// True when `inner` is a strict subset of `outer`: same family, longer prefix, inside it.
bool strictSubset(const knp_cidr& inner, const knp_cidr& outer) noexcept;

struct IpBlock {
    knp_cidr cidr{};
    std::vector<knp_cidr> except;
};

class CidrSet {
public:
    CidrSet() = default;  // empty
    static CidrSet of(std::span<const IpBlock> blocks);

    bool empty() const noexcept { return v4_.empty() && v6_.empty(); }
    bool contains(const knp_addr& a) const noexcept;

private:
    __extension__ typedef unsigned __int128 U128;
    struct Range {
        U128 lo, hi;  // inclusive
    };
    static U128 value(const knp_addr& a) noexcept;
    static Range range(const knp_cidr& c) noexcept;
    static void normalize(std::vector<Range>& rs);

    std::vector<Range> v4_, v6_;  // sorted, disjoint, non-adjacent
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_CIDR_SET_HPP
