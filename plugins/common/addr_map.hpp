// knp policy common — an open-addressing hash map from IP address to a 64-bit value (a pod's
// identity and a tag naming the pod, a record index), for the one lookup every evaluation
// starts with: the value sits in the slot, so a hit costs one cache line.
//
// SPDX-License-Identifier: Apache-2.0
//
// Copy-on-write by page: the slots live in pages of kPageSlots held by shared_ptr, so copying a
// map (the control thread does before changing one a snapshot still holds) copies only the page
// pointers, and a change then clones just the pages it writes. A 200,000-address map was a
// 16 MB copy per pod update; now one update touching a few addresses clones a few 64 KB pages.
// A lookup pays one extra pointer read (the page table is small and stays in cache).
// Linear probing at load <= 1/2, backward-shift deletion (no tombstones).
// IPv4 and IPv6 never collide: the family is part of the key.
// THREAD: const methods are allocation-free and safe from any thread; mutators are not.
#ifndef KNP_POLICY_COMMON_ADDR_MAP_HPP
#define KNP_POLICY_COMMON_ADDR_MAP_HPP

#include <knp/plugin_api.h>

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

namespace knp::policy {

class AddrMap {
public:
    static constexpr uint64_t kNone = UINT64_MAX;

    // The value of `a`, or kNone.
    uint64_t find(const knp_addr& a) const noexcept {
        if (size_ == 0) return kNone;
        for (size_t i = home(a);; i = (i + 1) & mask_) {
            const Slot& s = slot(i);
            if (!s.used) return kNone;
            if (same(s, a)) return s.value;
        }
    }

    // Inserts or overwrites; `value` must not be kNone.
    void set(const knp_addr& a, uint64_t value) {
        if ((size_ + 1) * 2 > capacity_) grow();
        for (size_t i = home(a);; i = (i + 1) & mask_) {
            const Slot& s = slot(i);
            if (!s.used) {
                Slot& w = writable(i);
                std::memcpy(w.bytes, a.bytes, 16);
                w.family = a.family;
                w.used = 1;
                w.value = value;
                ++size_;
                return;
            }
            if (same(s, a)) {
                if (s.value != value) writable(i).value = value;
                return;
            }
        }
    }

    bool erase(const knp_addr& a) noexcept {
        if (size_ == 0) return false;
        size_t i = home(a);
        for (;; i = (i + 1) & mask_) {
            if (!slot(i).used) return false;
            if (same(slot(i), a)) break;
        }
        // Backward shift: pull later entries of the probe run into the hole when their home
        // slot does not lie strictly between the hole and them.
        size_t hole = i;
        for (size_t j = (i + 1) & mask_; slot(j).used; j = (j + 1) & mask_) {
            size_t h = homeOf(slot(j));
            if (((j - h) & mask_) >= ((j - hole) & mask_)) {
                writable(hole) = slot(j);
                hole = j;
            }
        }
        writable(hole) = Slot{};
        --size_;
        return true;
    }

    size_t size() const noexcept { return size_; }
    size_t bytes() const noexcept { return capacity_ * sizeof(Slot); }

    // How many slots a lookup of `a` reads (tests keep the hash honest with it).
    size_t probeLength(const knp_addr& a) const noexcept {
        if (size_ == 0) return 0;
        size_t n = 1;
        for (size_t i = home(a); slot(i).used && !same(slot(i), a); i = (i + 1) & mask_) ++n;
        return n;
    }

private:
    struct Slot {  // 32 bytes: two to a cache line
        uint8_t bytes[16];
        uint64_t value;
        uint8_t family;
        uint8_t used;
    };
    static constexpr size_t kPageShift = 11;
    static constexpr size_t kPageSlots = size_t{1} << kPageShift;  // 2,048 slots, 64 KB
    // A small map is one page of its own size, so an empty or tiny map stays tiny.
    struct Page {
        explicit Page(size_t n) : slots(n) {}
        std::vector<Slot> slots;
    };

    const Slot& slot(size_t i) const noexcept { return pages_[i >> kPageShift]->slots[i & (kPageSlots - 1)]; }
    // The slot, in a page this map owns alone (cloned first if a copy still shares it).
    Slot& writable(size_t i) {
        std::shared_ptr<Page>& p = pages_[i >> kPageShift];
        if (p.use_count() != 1) p = std::make_shared<Page>(*p);
        return p->slots[i & (kPageSlots - 1)];
    }

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
        std::vector<std::shared_ptr<Page>> old = std::move(pages_);
        capacity_ = capacity_ == 0 ? 16 : capacity_ * 2;
        mask_ = capacity_ - 1;
        size_ = 0;
        pages_.clear();
        for (size_t n = 0; n < capacity_; n += kPageSlots)
            pages_.push_back(std::make_shared<Page>(std::min(kPageSlots, capacity_)));
        for (const auto& page : old) {
            for (const Slot& s : page->slots) {
                if (!s.used) continue;
                knp_addr a{};
                a.family = s.family;
                std::memcpy(a.bytes, s.bytes, 16);
                set(a, s.value);
            }
        }
    }

    std::vector<std::shared_ptr<Page>> pages_;
    size_t capacity_ = 0;  // slots, a power of two
    size_t mask_ = 0;
    size_t size_ = 0;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_ADDR_MAP_HPP
