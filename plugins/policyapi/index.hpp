// policyapi — the immutable index a snapshot evaluates against, and the snapshot itself.
//
// SPDX-License-Identifier: Apache-2.0
//
// Built by Model::build() from the valid policies of one instance (sorted by priority, then
// name) and a walk of the host's pods:
//  - Identity: a distinct (namespace, namespace labels, pod labels); replicas share one. Each
//    knows the selector peers it belongs to (sorted ids) and, per direction, its RuleTable.
//  - Peer: a `namespaces` or `pods` peer, interned by canonical selector text across every
//    policy; membership is computed once per distinct namespaceSelector and namespace.
//  - RuleTable: the ordered rules of the policies selecting an identity in one direction
//    (identities selected by the same policies share one), inverted: (peer id, position)
//    pairs sorted by peer, plus the positions of rules that match by address (networks, the
//    nodes' addresses; with their union, so that most remote ends skip them in one lookup) or
//    match everything (a fail-closed Deny/Pass). A decision intersects
//    the remote identity's few peers with the table and takes the lowest position whose ports
//    also match: it never scans the policies, only the rules that name the remote end.
//  - IP map: pod IP → identity and a tag naming the pod (see common/pod_tag.hpp). A pod the
//    index does not know (new since the walk, or on a recycled address) is judged from its view
//    by walking the policies directly: slower, same verdicts.
// THREAD: immutable once built; Snapshot::evaluate* are allocation- and lock-free.
#ifndef KNP_POLICYAPI_INDEX_HPP
#define KNP_POLICYAPI_INDEX_HPP

#include <knp/plugin.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/addr_map.hpp"
#include "common/cidr_set.hpp"
#include "common/label_selector.hpp"
#include "common/labels.hpp"
#include "common/ports.hpp"
#include "policyapi/spec.hpp"

namespace knp::papi {

constexpr uint32_t kNone = UINT32_MAX;

// The pods, namespaces and nodes of one walk of the host's pod index.
// THREAD: built on the control thread, then immutable and shared by indexes.
struct ClusterView {
    struct Namespace {
        std::string name;
        std::shared_ptr<const policy::OwnedLabels> labels;
        std::vector<uint32_t> identities;
    };
    struct Identity {
        Identity(uint32_t ns, std::span<const knp_label> l) : ns(ns), labels(l) {}
        uint32_t ns;
        policy::OwnedLabels labels;
    };
    struct Pod {
        uint32_t identity;
        uint32_t tag;
        bool local;
        std::vector<knp_addr> ips;
    };
    struct Node {
        Node(std::string n, std::span<const knp_label> l, std::span<const knp_addr> a)
            : name(std::move(n)), labels(l), addresses(a.begin(), a.end()) {}
        std::string name;
        policy::OwnedLabels labels;
        std::vector<knp_addr> addresses;
    };
    std::vector<Namespace> namespaces;
    std::vector<std::unique_ptr<Identity>> identities;
    std::vector<Pod> pods;
    std::vector<std::unique_ptr<Node>> nodes;
};

// Reads every pod from the host (inside update() only). hostNetwork pods are never subjects nor
// selector peers (§2.2, §5 #31): they only contribute their node. Pods on `nodeName` are local.
std::shared_ptr<const ClusterView> walkCluster(const knp::Host& host, std::string_view nodeName);

struct Peer {
    bool podsPeer = false;  // `pods` (namespaceSelector AND podSelector), else `namespaces`
    policy::LabelSelector namespaceSelector;
    policy::LabelSelector podSelector;
    bool matches(std::span<const knp_label> nsLabels, std::span<const knp_label> labels) const noexcept {
        return namespaceSelector.matches(nsLabels) && (!podsPeer || podSelector.matches(labels));
    }
};

struct CompiledRule {
    Action action = Action::Deny;
    policy::PortSet ports;
    bool matchAll = false;                // a fail-closed Deny/Pass peer: every remote end
    policy::CidrSet addresses;            // networks, and the addresses of the selected nodes
    std::vector<policy::IpBlock> blocks;  // the same as written, for RuleTable::anyAddress
    std::vector<uint32_t> peers;          // selector peer ids, sorted, unique
    std::string reason;                   // handed out as a view: lives as long as the index
    std::string id;                       // "name/ingress/2"
};

struct CompiledPolicy {
    std::shared_ptr<const PolicySpec> spec;
    std::vector<CompiledRule> rules[2];  // [0] ingress, [1] egress
};

struct RuleTable {
    std::vector<std::shared_ptr<const CompiledPolicy>> policies;  // what `rules` point into
    std::vector<const CompiledRule*> rules;                       // in precedence order
    std::vector<uint64_t> byPeer;                                 // peer id << 32 | position, sorted
    std::vector<uint32_t> byAddress;                              // positions of address rules, sorted
    policy::CidrSet anyAddress;         // their addresses together: most remote ends skip them
    std::vector<uint32_t> matchingAll;  // positions of fail-closed rules matching every end
};

struct IdentityIndex {
    std::vector<uint32_t> peers;          // sorted
    uint32_t tables[2] = {kNone, kNone};  // RuleTable ids per direction
};

struct Index {
    std::shared_ptr<const ClusterView> cluster;
    std::vector<std::shared_ptr<const Peer>> peers;               // by peer id
    std::vector<std::shared_ptr<const CompiledPolicy>> policies;  // precedence order: (priority, name)
    std::vector<std::shared_ptr<const RuleTable>> tables;
    std::vector<IdentityIndex> identities;
    std::shared_ptr<const policy::AddrMap> ipMap;  // pod IP → packPodEntry(identity, tag)
    size_t localSubjects[2] = {0, 0};
};

// The control thread's side of the index: what survives from one update to the next. While the
// pods stay the same (one ClusterView): compiled policies (by spec object), interned peers and
// their members, the identities each subject selector selects, the rule tables (by the list of
// compiled policies they are made of), the IP map. A policy change then compiles that policy
// alone, computes the members of the peers it brings and builds the tables of the policy sets it
// is part of; the rest is looked up. A new ClusterView (pods, namespaces or nodes changed)
// recomputes peer members, subjects and the IP map; compiled policies and rule tables survive it
// unless the nodes changed (`nodes` peers compile to node addresses). Peers no policy names any
// more are kept (and kept current): their number is bounded by what policies ever named.
// THREAD: control thread only; the indexes it returns are immutable.
class Model {
public:
    // `specs` in precedence order. Allocates freely.
    std::shared_ptr<const Index> build(const std::vector<std::shared_ptr<const PolicySpec>>& specs,
                                       std::shared_ptr<const ClusterView> cluster);

private:
    uint32_t internPeer(const PeerSpec& p);
    std::shared_ptr<const CompiledPolicy> compile(const std::shared_ptr<const PolicySpec>& spec);
    void computeMembers(const std::vector<uint32_t>& peers);
    const std::vector<uint32_t>& subjectMembers(const PolicySpec& s);
    void computeSubjects(Index& idx);

    std::shared_ptr<const ClusterView> cluster_;
    std::vector<std::shared_ptr<const Peer>> peers_;
    std::unordered_map<std::string, uint32_t> peerByKey_;
    std::vector<uint32_t> freshPeers_;
    std::vector<std::vector<uint32_t>> identityPeers_;  // per identity, sorted
    std::unordered_map<const PolicySpec*, std::shared_ptr<const CompiledPolicy>> compiled_;
    std::unordered_map<std::string, std::vector<uint32_t>> subjectMembers_;  // subject text → identities
    std::map<std::vector<const CompiledPolicy*>, std::shared_ptr<const RuleTable>> tables_[2];
    std::shared_ptr<const policy::AddrMap> ipMap_;
};

// The local endpoints that some policy governs, per direction.
knp::Interest interestOf(const Index& index);

class Snapshot {
public:
    Snapshot(std::shared_ptr<const Index> index, knp::Host host, uint32_t misses) noexcept
        : index_(std::move(index)), host_(host), missMetric_(misses) {}

    knp::Interest interest;  // the SDK finalizes it when update() returns

    knp::Decision evaluateIngress(const knp::EvalArgs& a) const noexcept;
    knp::Decision evaluateEgress(const knp::EvalArgs& a) const noexcept;

    const Index& index() const noexcept { return *index_; }

private:
    struct End {
        const knp_pod* pod = nullptr;
        const IdentityIndex* identity = nullptr;
    };
    End resolve(const knp_pod* pod, const knp_addr& ip) const noexcept;
    bool selectorPeersMatch(const CompiledRule& r, const End& remote) const noexcept;
    bool ruleMatches(const CompiledRule& r, const End& remote, const knp_addr& remoteIp, uint8_t proto, uint16_t port,
                     std::span<const knp_container_port> dstPorts) const noexcept;
    knp::Decision decide(int dir, const End& local, const End& remote, const knp_addr& remoteIp,
                         const knp::PacketView& packet, std::span<const knp_container_port> dstPorts) const noexcept;

    std::shared_ptr<const Index> index_;
    knp::Host host_;
    uint32_t missMetric_;
};

}  // namespace knp::papi

#endif  // KNP_POLICYAPI_INDEX_HPP
