// knp policy common — dense small-integer ids (identities, peers, tables, pod records) handed
// out again once freed, so that id-indexed vectors stay as large as what is live at most.
//
// SPDX-License-Identifier: Apache-2.0
//
// THREAD: whatever owns the free list (the control thread).
#ifndef KNP_POLICY_COMMON_FREE_IDS_HPP
#define KNP_POLICY_COMMON_FREE_IDS_HPP

#include <cstddef>
#include <cstdint>
#include <vector>

namespace knp::policy {

// A freed id if there is one, else `size` after growing the id space to size + 1 with `grow`.
template <class Grow>
uint32_t reuseOrGrow(std::vector<uint32_t>& freeList, size_t size, Grow&& grow) {
    if (!freeList.empty()) {
        uint32_t id = freeList.back();
        freeList.pop_back();
        return id;
    }
    grow(size + 1);
    return static_cast<uint32_t>(size);
}

// Takes the entry at `pos` out of a dense list of ids in O(1): the last id moves into its place
// and `moved(id, pos)` records where it now is.
template <class Moved>
void swapRemove(std::vector<uint32_t>& list, uint32_t pos, Moved&& moved) {
    uint32_t last = list.back();
    list[pos] = last;
    moved(last, pos);
    list.pop_back();
}

// Erases the one `key -> id` entry of a multimap from keys (hashes) to ids.
template <class Multimap>
void eraseEntry(Multimap& index, const typename Multimap::key_type& key, uint32_t id) {
    for (auto [it, end] = index.equal_range(key); it != end; ++it) {
        if (it->second == id) {
            index.erase(it);
            return;
        }
    }
}

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_FREE_IDS_HPP
