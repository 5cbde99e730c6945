// knp policy common — a small, fast, non-cryptographic 64-bit hash for control-plane indexing.
//
// SPDX-License-Identifier: Apache-2.0
//
// Used to fingerprint pods (labels, namespace labels, IPs) during the per-update pod walk and
// to key interning tables. Collisions are tolerated by every user (a fingerprint only decides
// whether to look closer, and tables compare the real contents), so speed wins over quality:
// eight bytes per multiply, no tables, no allocation. THREAD: any.
#ifndef KNP_POLICY_COMMON_HASH_HPP
#define KNP_POLICY_COMMON_HASH_HPP

#include <knp/plugin_api.h>

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

namespace knp::policy {

class Hasher {
public:
    explicit Hasher(uint64_t seed = 0x9E3779B97F4A7C15ull) noexcept : h_(seed) {}

    Hasher& bytes(const void* data, size_t n) noexcept {
        const auto* p = static_cast<const unsigned char*>(data);
        // The length goes in first so that ("ab","c") and ("a","bc") differ.
        mix(n);
        while (n >= 8) {
            uint64_t w;
            std::memcpy(&w, p, 8);
            mix(w);
            p += 8;
            n -= 8;
        }
        if (n != 0) {
            uint64_t w = 0;
            std::memcpy(&w, p, n);
            mix(w);
        }
        return *this;
    }
    Hasher& str(std::string_view s) noexcept { return bytes(s.data(), s.size()); }
    Hasher& u64(uint64_t v) noexcept {
        mix(v);
        return *this;
    }
    Hasher& labels(std::span<const knp_label> ls) noexcept {
        mix(ls.size());
        for (const knp_label& l : ls) {
            bytes(l.key.data, l.key.len);
            bytes(l.value.data, l.value.len);
        }
        return *this;
    }
    Hasher& addr(const knp_addr& a) noexcept {
        mix(a.family);
        return bytes(a.bytes, sizeof a.bytes);
    }
    uint64_t done() const noexcept {
        uint64_t h = h_;
        h ^= h >> 33;
        h *= 0xFF51AFD7ED558CCDull;
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 33;
        return h;
    }

private:
    void mix(uint64_t w) noexcept {
        h_ ^= w * 0x87C37B91114253D5ull;
        h_ = (h_ << 31 | h_ >> 33) * 0x4CF5AD432745937Full;
    }
    uint64_t h_;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_HASH_HPP
