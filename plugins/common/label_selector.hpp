// knp policy common — Kubernetes label selectors (metav1.LabelSelector): parsed and validated
// like the API server does, matched over a pod's or namespace's sorted label array.
//
// SPDX-License-Identifier: Apache-2.0
//
// matchLabels {k: v} is kept as the requirement `k In (v)`, so a selector is one sorted list of
// requirements, all ANDed; the empty selector matches everything. `canonical()` is equal for
// selectors that select the same objects by construction (same requirements, any order), which
// lets plugins intern selectors and compute each one's matches once.
// THREAD: immutable after parse(); matches() is allocation-free and safe on data threads.
#ifndef KNP_POLICY_COMMON_LABEL_SELECTOR_HPP
#define KNP_POLICY_COMMON_LABEL_SELECTOR_HPP

#include <knp/plugin_api.h>

#include <boost/json/value.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace knp::policy {

// Limits on one selector (house style: every user-controlled size is bounded).
constexpr size_t kMaxSelectorRequirements = 256;
constexpr size_t kMaxSelectorValues = 1024;  // values of one In/NotIn expression

// A label key: an optional DNS-subdomain prefix and "/", then a name of 1..63 characters
// (alphanumerics, '-', '_', '.'; alphanumeric at both ends). As the API server checks it.
bool validLabelKey(std::string_view key) noexcept;
// A label value: empty, or 1..63 characters of the name alphabet above.
bool validLabelValue(std::string_view value) noexcept;

class LabelSelector {
public:
    enum class Op : uint8_t { In, NotIn, Exists, DoesNotExist };
    struct Requirement {
        std::string key;
        Op op = Op::Exists;
        std::vector<std::string> values;  // sorted, unique; empty for Exists/DoesNotExist
    };

    // The empty selector: matches every object.
    LabelSelector() = default;

    // A metav1.LabelSelector object ({matchLabels, matchExpressions}); throws JsonError
    // naming the bad field under `ptr`.
    static LabelSelector parse(const boost::json::value& v, const std::string& ptr);

    bool matchesEverything() const noexcept { return reqs_.empty(); }
    // `labels` sorted by key, as the host hands them out.
    bool matches(std::span<const knp_label> labels) const noexcept;
    // "app In (web);tier Exists", "" for the empty selector.
    const std::string& canonical() const noexcept { return canonical_; }
    std::span<const Requirement> requirements() const noexcept { return reqs_; }

private:
    std::vector<Requirement> reqs_;  // sorted by (key, op, values)
    std::string canonical_;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_LABEL_SELECTOR_HPP
