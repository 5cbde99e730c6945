// policyapi — one AdminNetworkPolicy, BaselineAdminNetworkPolicy (policy.networking.k8s.io/v1alpha1)
// or ClusterNetworkPolicy (v1alpha2) as read from its raw JSON, in one shape for all three.
//
// SPDX-License-Identifier: Apache-2.0
//
// policy-semantics.md §3 "Unified model": ANP → Admin tier, BANP → Baseline tier with no Pass,
// CNP direct; `Allow` is read as Accept. Validation follows the CRDs (ranges, list sizes, the
// BANP singleton name, "exactly one of" fields, the CEL rule that a named port cannot share a
// rule with networks/nodes/domainNames) and fails with the JSON pointer of the bad field.
// A peer or port entry that carries only fields this implementation does not know (a newer
// CRD) is not an error: it is kept as Unknown and fails closed when compiled (§5 #33).
// THREAD: plain values; parsing runs on the control thread.
#ifndef KNP_POLICYAPI_SPEC_HPP
#define KNP_POLICYAPI_SPEC_HPP

#include <knp/plugin_api.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/label_selector.hpp"
#include "common/ports.hpp"

namespace knp::papi {

enum class Api : uint8_t { AdminNetworkPolicy, BaselineAdminNetworkPolicy, ClusterNetworkPolicy };
enum class Tier : uint8_t { Admin, Baseline };
enum class Action : uint8_t { Accept, Deny, Pass };

// Limits on one object (house style); the CRDs' own limits are tighter and checked too.
constexpr size_t kMaxObjectBytes = 4 << 20;
// Policies in force at once per instance; one more is logged and evaluated as absent.
constexpr size_t kMaxPolicies = 100000;

std::string_view kindName(Api api) noexcept;
std::string_view actionName(Action a) noexcept;

struct PeerSpec {
    enum class Kind : uint8_t { Namespaces, Pods, Nodes, Networks, DomainNames, Unknown };
    Kind kind = Kind::Unknown;
    policy::LabelSelector namespaceSelector;  // Namespaces, Pods
    policy::LabelSelector podSelector;        // Pods
    policy::LabelSelector nodeSelector;       // Nodes
    std::vector<knp_cidr> networks;           // Networks
    std::string unknownField;                 // Unknown: the field we did not know
};

struct RuleSpec {
    std::string name;
    Action action = Action::Deny;
    std::vector<PeerSpec> peers;
    bool allPorts = true;                 // `ports`/`protocols` absent: all traffic
    std::vector<policy::PortSpec> ports;  // a named port appears once per protocol
    bool unknownPort = false;             // some entry had no known field: fail closed
};

struct PolicySpec {
    Api api = Api::AdminNetworkPolicy;
    Tier tier = Tier::Admin;
    std::string name;
    std::string key;  // `Kind "name"`, for messages
    int32_t priority = 0;
    bool subjectIsNamespaces = true;
    policy::LabelSelector subjectNamespaces;  // namespaces, or pods.namespaceSelector
    policy::LabelSelector subjectPods;        // pods.podSelector
    std::vector<RuleSpec> ingress;
    std::vector<RuleSpec> egress;
    bool usesDomainNames = false;
};

// Parses one object of `api`; `eventName` stands in for a missing metadata.name. Throws
// policy::JsonError naming the offending field by JSON pointer.
PolicySpec parsePolicy(Api api, std::string_view json, std::string_view eventName);

}  // namespace knp::papi

#endif  // KNP_POLICYAPI_SPEC_HPP
