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

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_FREE_IDS_HPP
