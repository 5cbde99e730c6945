// networkpolicy — one networking.k8s.io/v1 NetworkPolicy as read from its raw JSON: validated
// like the API server validates it, with the API server's defaults applied.
//
// SPDX-License-Identifier: Apache-2.0
//
// Defaults (policy-semantics.md §1.1): policyTypes absent or empty is [Ingress], plus Egress
// when spec.egress has rules; a port entry without protocol is TCP; an absent podSelector is
// {} (every pod of the namespace). Rules of a direction the defaulted policyTypes do not list
// are validated and then dropped: they can never allow anything.
// THREAD: plain values; parsing runs on the control thread.
#ifndef KNP_NETWORKPOLICY_POLICY_HPP
#define KNP_NETWORKPOLICY_POLICY_HPP

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/cidr_set.hpp"
#include "common/label_selector.hpp"
#include "common/ports.hpp"

namespace knp::netpol {

// Limits on one object (house style). Far above anything written by hand, far below what
// would let one object stall the control thread.
constexpr size_t kMaxObjectBytes = 4 << 20;
constexpr size_t kMaxRules = 1024;   // per direction
constexpr size_t kMaxPeers = 1024;   // per rule
constexpr size_t kMaxPorts = 1024;   // per rule
constexpr size_t kMaxExcept = 1024;  // per ipBlock
// Policies in force at once: 20× the 10,000 the index is tuned for. One more is logged and
// evaluated as absent, like an invalid one, so a runaway controller cannot exhaust the node.
constexpr size_t kMaxPolicies = 200000;

// Exactly one of: ipBlock, or podSelector and/or namespaceSelector.
struct PeerSpec {
    std::optional<policy::LabelSelector> podSelector;
    std::optional<policy::LabelSelector> namespaceSelector;
    std::optional<policy::IpBlock> ipBlock;
};

struct RuleSpec {
    bool allPorts = true;  // `ports` absent or empty: every port and protocol
    std::vector<policy::PortSpec> ports;
    bool allPeers = true;  // `from`/`to` absent or empty: every endpoint, external ones too
    std::vector<PeerSpec> peers;
};

struct PolicySpec {
    std::string ns;
    std::string name;
    std::string key;  // "ns/name"
    policy::LabelSelector podSelector;
    bool ingress = false;  // defaulted policyTypes
    bool egress = false;
    std::vector<RuleSpec> ingressRules;  // empty unless `ingress`
    std::vector<RuleSpec> egressRules;   // empty unless `egress`
};

// Parses one object; `eventNamespace`/`eventName` stand in for missing metadata. Throws
// policy::JsonError naming the offending field by JSON pointer.
PolicySpec parseNetworkPolicy(std::string_view json, std::string_view eventNamespace, std::string_view eventName);

}  // namespace knp::netpol

#endif  // KNP_NETWORKPOLICY_POLICY_HPP
