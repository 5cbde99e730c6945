// knp policy common — an open-addressing hash map from IP address to a 64-bit value (a pod's
// identity and a tag naming the pod, a record index), for the one lookup every evaluation
// starts with: the value sits in the slot, so a hit costs one cache line.
//
// SPDX-License-Identifier: Apache-2.0
//
// Flat and trivially copyable: a snapshot shares one map through shared_ptr<const AddrMap>,
// and the control thread copies it (one memcpy-like copy) before changing it while a snapshot
// still holds it. Linear probing at load <= 1/2, backward-shift deletion (no tombstones).
// IPv4 and IPv6 never collide: the family is part of the key.
// THREAD: const methods are allocation-free and safe from any thread; mutators are not.
#ifndef KNP_POLICY_COMMON_ADDR_MAP_HPP
#define KNP_POLICY_COMMON_ADDR_MAP_HPP

#include <knp/plugin_api.h>

#include <cstdint>
#include <cstring>
#include <vector>

namespace knp::policy {

class AddrMap {
public:
    static constexpr uint64_t kNone = UINT64_MAX;

    // The value of `a`, or kNone.
    uint64_t find(const knp_addr& a) const noexcept {
        if (size_ == 0) return kNone;
        for (size_t i = home(a);; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (!s.used) return kNone;
            if (same(s, a)) return s.value;
        }
    }

    // Inserts or overwrites; `value` must not be kNone.
    void set(const knp_addr& a, uint64_t value) {
        if ((size_ + 1) * 2 > slots_.size()) grow();
        for (size_t i = home(a);; i = (i + 1) & mask_) {
            Slot& s = slots_[i];
            if (!s.used) {
                std::memcpy(s.bytes, a.bytes, 16);
                s.family = a.family;
                s.used = 1;
                s.value = value;
                ++size_;
                return;
            }
            if (same(s, a)) {
                s.value = value;
                return;
            }
        }
    }

    bool erase(const knp_addr& a) noexcept {
        if (size_ == 0) return false;
        size_t i = home(a);
        for (;; i = (i + 1) & mask_) {
            if (!slots_[i].used) return false;
            if (same(slots_[i], a)) break;
        }
        // Backward shift: pull later entries of the probe run into the hole when their home
        // slot does not lie strictly between the hole and them.
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; slots_[j].used; j = (j + 1) & mask_) {
            size_t h = homeOf(slots_[j]);
            if (((j - h) & mask_) >= ((j - hole) & mask_)) {
                slots_[hole] = slots_[j];
                hole = j;
            }
        }
        slots_[hole] = Slot{};
        --size_;
        return true;
    }

    size_t size() const noexcept { return size_; }
    size_t bytes() const noexcept { return slots_.size() * sizeof(Slot); }

    // How many slots a lookup of `a` reads (tests keep the hash honest with it).
    size_t probeLength(const knp_addr& a) const noexcept {
        if (size_ == 0) return 0;
        size_t n = 1;
        for (size_t i = home(a); slots_[i].used && !same(slots_[i], a); i = (i + 1) & mask_) ++n;
        return n;
    }

private:
    struct Slot {  // 32 bytes: two to a cache line
        uint8_t bytes[16];
        uint64_t value;
        uint8_t family;
        uint8_t used;
    };

    // Every input bit must reach the low bits the mask keeps: an IPv4 address lives in the
    // top four bytes of the second word (IPv4-mapped), so a multiply alone, which only carries
    // bits upwards, would put a whole /16 of pods into one probe run. murmur3's finalizer.
    static size_t hashOf(const uint8_t* bytes, uint8_t family) noexcept {
        uint64_t lo, hi;
        std::memcpy(&lo, bytes, 8);
        std::memcpy(&hi, bytes + 8, 8);
        uint64_t h = (lo * 0x9E3779B97F4A7C15ull) ^ hi ^ family;
        h ^= h >> 33;
        h *= 0xFF51AFD7ED558CCDull;
        h ^= h >> 33;
        h *= 0xC4CEB9FE1A85EC53ull;
        h ^= h >> 33;
        return static_cast<size_t>(h);
    }
    size_t home(const knp_addr& a) const noexcept { return hashOf(a.bytes, a.family) & mask_; }
    size_t homeOf(const Slot& s) const noexcept { return hashOf(s.bytes, s.family) & mask_; }
    static bool same(const Slot& s, const knp_addr& a) noexcept {
        return s.family == a.family && std::memcmp(s.bytes, a.bytes, 16) == 0;
    }

    void grow() {
        std::vector<Slot> old = std::move(slots_);
        slots_.assign(old.empty() ? 16 : old.size() * 2, Slot{});
        mask_ = slots_.size() - 1;
        size_ = 0;
        for (const Slot& s : old) {
            if (!s.used) continue;
            knp_addr a{};
            a.family = s.family;
            std::memcpy(a.bytes, s.bytes, 16);
            set(a, s.value);
        }
    }

    std::vector<Slot> slots_;
    size_t mask_ = 0;
    size_t size_ = 0;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_ADDR_MAP_HPP
