// knp policy common — an immutable set of small integer ids (identities, pods, policies) with
// O(1)/O(log n) membership: a sorted array while sparse, a bitset once that is smaller.
//
// SPDX-License-Identifier: Apache-2.0
//
// Sets are rebuilt, never edited: with() returns a new set, so one that a snapshot holds never
// changes under a reader. The form switches where the bitset (universe / 8 bytes) becomes
// smaller than the array (4 bytes an id), so memory never exceeds the sorted array's.
// THREAD: immutable; contains() is allocation-free and safe on data threads.
#ifndef KNP_POLICY_COMMON_ID_SET_HPP
#define KNP_POLICY_COMMON_ID_SET_HPP

#include <algorithm>
#include <bit>
#include <cstdint>
#include <iterator>
#include <span>
#include <vector>

namespace knp::policy {

class IdSet {
public:
    IdSet() = default;

    // `ids` sorted and unique, each < `universe` (the id space's current size).
    static IdSet fromSorted(std::vector<uint32_t> ids, uint32_t universe) {
        IdSet s;
        s.size_ = ids.size();
        if (!ids.empty() && ids.back() >= universe) universe = ids.back() + 1;  // stay correct if misused
        if (ids.size() * 32 > universe && universe != 0) {
            s.bits_.assign((universe + 63) / 64, 0);
            for (uint32_t id : ids) s.bits_[id / 64] |= uint64_t(1) << (id % 64);
        } else {
            s.sorted_ = std::move(ids);
        }
        return s;
    }

    bool contains(uint32_t id) const noexcept {
        if (!bits_.empty()) return id / 64 < bits_.size() && (bits_[id / 64] >> (id % 64) & 1) != 0;
        if (sorted_.size() <= 8) return std::find(sorted_.begin(), sorted_.end(), id) != sorted_.end();
        return std::binary_search(sorted_.begin(), sorted_.end(), id);
    }
    size_t size() const noexcept { return size_; }
    bool empty() const noexcept { return size_ == 0; }

    // Calls fn(id) in increasing order.
    template <class Fn>
    void forEach(Fn&& fn) const {
        if (bits_.empty()) {
            for (uint32_t id : sorted_) fn(id);
            return;
        }
        for (size_t w = 0; w < bits_.size(); ++w) {
            for (uint64_t b = bits_[w]; b != 0; b &= b - 1)
                fn(static_cast<uint32_t>(w * 64 + static_cast<unsigned>(std::countr_zero(b))));
        }
    }

    std::vector<uint32_t> toVector() const {
        std::vector<uint32_t> out;
        out.reserve(size_);
        forEach([&](uint32_t id) { out.push_back(id); });
        return out;
    }

    // This set plus `add` minus `remove` (both sorted and unique), in the form that fits.
    IdSet with(std::span<const uint32_t> add, std::span<const uint32_t> remove, uint32_t universe) const {
        std::vector<uint32_t> cur = toVector();
        std::vector<uint32_t> merged;
        merged.reserve(cur.size() + add.size());
        std::set_union(cur.begin(), cur.end(), add.begin(), add.end(), std::back_inserter(merged));
        std::vector<uint32_t> out;
        out.reserve(merged.size());
        std::set_difference(merged.begin(), merged.end(), remove.begin(), remove.end(), std::back_inserter(out));
        return fromSorted(std::move(out), universe);
    }

private:
    std::vector<uint32_t> sorted_;
    std::vector<uint64_t> bits_;  // non-empty: the dense form
    size_t size_ = 0;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_ID_SET_HPP
