// knp policy common — label arrays: comparison, and an owned copy that outlives the host's view.
//
// SPDX-License-Identifier: Apache-2.0
//
// The host hands out labels as borrowed, key-sorted knp_label arrays valid for one call. An
// index that remembers a pod's or namespace's labels keeps an OwnedLabels: one buffer for the
// text and one array of views into it, so it reads back as the same span type the host uses.
// THREAD: OwnedLabels is immutable after construction; the free functions are pure.
#ifndef KNP_POLICY_COMMON_LABELS_HPP
#define KNP_POLICY_COMMON_LABELS_HPP

#include <knp/plugin_api.h>

#include <cstring>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace knp::policy {

// Equal strings; a knp_str may carry a NULL pointer when empty, which memcmp must not see.
inline bool strEqual(knp_str a, knp_str b) noexcept {
    return a.len == b.len && (a.len == 0 || std::memcmp(a.data, b.data, a.len) == 0);
}

// Equal label arrays (both sorted by key, as the host hands them out).
inline bool labelsEqual(std::span<const knp_label> a, std::span<const knp_label> b) noexcept {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (!strEqual(a[i].key, b[i].key) || !strEqual(a[i].value, b[i].value)) return false;
    return true;
}

// OWNERSHIP: owns its text; view() points into this object, hence no copies or moves.
class OwnedLabels {
public:
    explicit OwnedLabels(std::span<const knp_label> labels) {
        size_t n = 0;
        for (const knp_label& l : labels) n += l.key.len + l.value.len;
        text_ = std::make_unique<char[]>(n != 0 ? n : 1);
        char* p = text_.get();
        views_.reserve(labels.size());
        for (const knp_label& l : labels) {
            knp_label v{};
            v.key = copy(p, l.key);
            v.value = copy(p, l.value);
            views_.push_back(v);
        }
    }
    OwnedLabels(const OwnedLabels&) = delete;
    OwnedLabels& operator=(const OwnedLabels&) = delete;

    std::span<const knp_label> view() const noexcept { return views_; }

private:
    static knp_str copy(char*& p, knp_str s) noexcept {
        if (s.len != 0) std::memcpy(p, s.data, s.len);
        knp_str out{p, s.len};
        p += s.len;
        return out;
    }
    std::unique_ptr<char[]> text_;
    std::vector<knp_label> views_;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_LABELS_HPP
