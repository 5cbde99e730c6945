// networkpolicy — the immutable pieces a snapshot is made of, shared between the control
// thread's model and every snapshot that still uses them.
//
// SPDX-License-Identifier: Apache-2.0
//
// The index resolves policies to pods ahead of time, keyed by *identity*: a distinct
// (namespace, namespace labels, pod labels) combination, which is all that NetworkPolicy
// selection looks at. Replicas of a workload share one identity.
//  - Identity → the policy slots that select it, per direction (its isolation and rules).
//  - Peer (a podSelector/namespaceSelector pair, interned across policies) → the identities it
//    matches, as an IdSet; and each identity → the peers it is a member of (what evaluation
//    reads).
//  - Pod IP → identity (and a tag naming the pod, common/pod_tag.hpp), in a flat hash map.
// A decision is then: hash the local end's IP, walk the few rules of the policies selecting it,
// and test the remote end's identity against each rule's peers in O(1)/O(log n).
// THREAD: everything here is immutable once a snapshot references it.
#ifndef KNP_NETWORKPOLICY_INDEX_HPP
#define KNP_NETWORKPOLICY_INDEX_HPP

#include <knp/plugin_api.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/addr_map.hpp"
#include "common/cidr_set.hpp"
#include "common/cow_vector.hpp"
#include "common/id_set.hpp"
#include "common/label_selector.hpp"
#include "common/labels.hpp"
#include "common/pod_tag.hpp"
#include "common/ports.hpp"
#include "networkpolicy/policy.hpp"

namespace knp::netpol {

constexpr uint32_t kNoId = UINT32_MAX;

struct CompiledRule {
    policy::PortSet ports;
    bool allPeers = false;
    std::vector<uint32_t> peers;  // peer ids of the selector peers, sorted, unique
    policy::CidrSet ipBlocks;     // every ipBlock peer of the rule, cidr minus except, unioned
    std::string reason;           // "allowed by ns/name ingress rule 0": evaluation hands out views
};

struct CompiledPolicy {
    std::shared_ptr<const PolicySpec> spec;  // key, namespace, podSelector, types
    std::vector<CompiledRule> ingressRules;
    std::vector<CompiledRule> egressRules;
    std::string denyIngress;  // the reason of a deny this policy's isolation causes
    std::string denyEgress;
};

// A (namespace, namespace labels, pod labels) combination.
struct IdentityCore {
    IdentityCore(std::string_view ns, std::span<const knp_label> labels,
                 std::shared_ptr<const policy::OwnedLabels> nsLabels)
        : ns(ns), labels(labels), nsLabels(std::move(nsLabels)) {}
    std::string ns;
    policy::OwnedLabels labels;
    std::shared_ptr<const policy::OwnedLabels> nsLabels;
};

struct Identity {
    std::shared_ptr<const IdentityCore> core;
    std::vector<uint32_t> ingress;  // slots of the policies selecting it with Ingress, by policy key
    std::vector<uint32_t> egress;   // the same for Egress
    // The peers it is a member of, sorted: when this identity is the remote end, every peer of a
    // rule is tested against this one array (a cache line or two) rather than against each
    // peer's own member set.
    std::vector<uint32_t> peers;
};

// A selector peer: podSelector and/or namespaceSelector; with no namespaceSelector it only
// looks at the policy's own namespace.
struct Peer {
    std::optional<policy::LabelSelector> namespaceSelector;
    std::optional<policy::LabelSelector> podSelector;
    std::string ns;         // the policy's namespace, used when namespaceSelector is absent
    policy::IdSet members;  // the identities it matches

    bool matches(std::string_view podNs, std::span<const knp_label> nsLabels,
                 std::span<const knp_label> labels) const noexcept {
        if (namespaceSelector) {
            if (!namespaceSelector->matches(nsLabels)) return false;
        } else if (podNs != ns) {
            return false;
        }
        return !podSelector || podSelector->matches(labels);
    }
};

// The policies of one namespace, by key: what the slow path walks for a pod the index does not
// know (yet).
struct NsPolicies {
    std::string ns;
    std::vector<uint32_t> slots;
};

// Everything evaluation reads. Copying it shares all structure (CowVector chunks, shared_ptr).
struct IndexView {
    policy::CowVector<std::shared_ptr<const CompiledPolicy>> policies;  // by slot; null = free
    policy::CowVector<std::shared_ptr<const Peer>> peers;               // by peer id; null = free
    policy::CowVector<std::shared_ptr<const Identity>> identities;      // by identity id; null = free
    std::shared_ptr<const policy::AddrMap> ipToIdentity;
    std::shared_ptr<const std::vector<std::shared_ptr<const NsPolicies>>> byNamespace;  // sorted by ns
};

}  // namespace knp::netpol

#endif  // KNP_NETWORKPOLICY_INDEX_HPP
