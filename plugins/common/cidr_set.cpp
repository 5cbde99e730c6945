#include "common/cidr_set.hpp"

#include <knp/types.hpp>

#include <algorithm>

namespace knp::policy {

std::optional<knp_cidr> parseKubeCidr(std::string_view text) noexcept {
    if (text.find('/') == std::string_view::npos) return std::nullopt;
    return knp::parseCidr(text, true);
}

bool strictSubset(const knp_cidr& inner, const knp_cidr& outer) noexcept {
    return inner.addr.family == outer.addr.family && inner.prefix_len > outer.prefix_len &&
           knp::cidrContains(outer, inner.addr);
}

CidrSet::U128 CidrSet::value(const knp_addr& a) noexcept {
    U128 v = 0;
    // IPv4 lives in the last four bytes (IPv4-mapped); its value is those 32 bits alone.
    for (unsigned i = a.family == KNP_FAMILY_IPV4 ? 12 : 0; i < 16; ++i) v = v << 8 | a.bytes[i];
    return v;
}

CidrSet::Range CidrSet::range(const knp_cidr& c) noexcept {
    unsigned width = c.addr.family == KNP_FAMILY_IPV4 ? 32 : 128;
    unsigned hostBits = width - c.prefix_len;
    U128 lo = value(c.addr);
    U128 span = hostBits == 128 ? ~U128(0) : (U128(1) << hostBits) - 1;
    lo &= ~span;  // parseCidr masks host bits already; stay safe for hand-made CIDRs
    return {lo, lo + span};
}

void CidrSet::normalize(std::vector<Range>& rs) {
    std::sort(rs.begin(), rs.end(), [](const Range& a, const Range& b) { return a.lo < b.lo; });
    std::vector<Range> out;
    for (const Range& r : rs) {
        // Merge overlapping and adjacent ranges (hi + 1 cannot overflow when hi < r.lo).
        if (!out.empty() && (r.lo <= out.back().hi || r.lo - 1 == out.back().hi)) {
            out.back().hi = std::max(out.back().hi, r.hi);
        } else {
            out.push_back(r);
        }
    }
    rs = std::move(out);
}

CidrSet CidrSet::of(std::span<const IpBlock> blocks) {
    CidrSet s;
    for (const IpBlock& b : blocks) {
        std::vector<Range> excepts;
        for (const knp_cidr& e : b.except)
            if (e.addr.family == b.cidr.addr.family) excepts.push_back(range(e));
        normalize(excepts);
        // Walk the block from low to high, emitting the gaps between exceptions.
        Range whole = range(b.cidr);
        std::vector<Range>& out = b.cidr.addr.family == KNP_FAMILY_IPV4 ? s.v4_ : s.v6_;
        U128 next = whole.lo;
        bool done = false;
        for (const Range& e : excepts) {
            if (e.hi < whole.lo || e.lo > whole.hi) continue;
            if (e.lo > next) out.push_back({next, e.lo - 1});
            if (e.hi >= whole.hi) {
                done = true;
                break;
            }
            next = std::max(next, e.hi + 1);
        }
        if (!done) out.push_back({next, whole.hi});
    }
    normalize(s.v4_);
    normalize(s.v6_);
    return s;
}

bool CidrSet::contains(const knp_addr& a) const noexcept {
    const std::vector<Range>& rs = a.family == KNP_FAMILY_IPV4 ? v4_ : v6_;
    if (rs.empty()) return false;
    U128 v = value(a);
    auto it = std::upper_bound(rs.begin(), rs.end(), v, [](U128 x, const Range& r) { return x < r.lo; });
    return it != rs.begin() && v <= std::prev(it)->hi;
}

}  // namespace knp::policy
