// policyapi — the immutable index a snapshot evaluates against, and the snapshot itself.
//
// SPDX-License-Identifier: Apache-2.0
//
// Built by Model::build() from the valid policies of one instance (sorted by priority, then
// name) and the Model's copy of the host's pods (walked, or kept current from the host's list of
// changed pods):
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
//    index does not know (new since the last update, or on a recycled address) is judged from its view
//    by walking the policies directly: slower, same verdicts.
// THREAD: immutable once built; Snapshot::evaluate* are allocation- and lock-free.
#ifndef KNP_POLICYAPI_INDEX_HPP
#define KNP_POLICYAPI_INDEX_HPP

#include <knp/plugin.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <span>
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
    std::vector<uint32_t> peers;         // every selector peer its rules name, sorted, unique
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

// A pod on this node: what the interest names.
struct LocalPod {
    uint32_t identity;
    std::vector<knp_addr> ips;
};

struct Index {
    std::shared_ptr<const std::vector<std::shared_ptr<const Peer>>> peers;  // by peer id; null: free
    std::vector<std::shared_ptr<const CompiledPolicy>> policies;            // precedence order: (priority, name)
    std::vector<std::shared_ptr<const RuleTable>> tables;                   // by table id; null: free
    std::vector<IdentityIndex> identities;                                  // by identity id; a free id has none
    std::shared_ptr<const policy::AddrMap> ipMap;                           // pod IP → packPodEntry(identity, tag)
    std::vector<LocalPod> locals;                                           // by namespace/name
    size_t localSubjects[2] = {0, 0};
    // What is live (free ids excluded), for the debug line; tests compare them.
    size_t pods = 0, identityCount = 0, peerCount = 0, tableCount = 0;
};

// The control thread's side of the index: what survives from one update to the next. Its own
// copy of the cluster (namespaces, identities with a pod count each, nodes, this node's pods),
// compiled policies (by spec object), interned peers (each identity knows the peers it belongs
// to), the identities each subject selector selects, the rule tables (by the list of compiled
// policies they are made of, counted by the identities using them), the IP map.
//  - A policy change compiles that policy alone, computes the members of the peers it brings,
//    drops the peers no policy names any more (peers are counted by the compiled policies
//    naming them), and builds the tables of the policy sets it is part of; the rest is looked up.
//  - walk() (the first update, a 1.0 host, after a failed update, or when applyPodChanges()
//    cannot) reads every pod and recomputes peer members, subjects and the IP map; compiled
//    policies and rule tables survive it unless the nodes changed (`nodes` peers compile to
//    node addresses).
//  - applyPodChanges() (ABI 1.1) touches only the listed pods: their IP map entries (on a
//    copy-on-write copy of the map), their identities (a new one computes its peers, the
//    policies selecting it and its tables; one left without pods gives its tables back), this
//    node's pods. It declines (and the caller walks) when a pod's node is new, gone or changed
//    (`nodes` peers would change), when an address is claimed by two live pods (which one
//    keeps it is the walk's order), or when a listed pod's old view is not what the index holds.
// Results are the same either way (tests/policyapi compares them on random churn).
// THREAD: control thread only; the indexes it returns are immutable.
class Model {
public:
    Model() = default;
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // True once walk() has run: applyPodChanges() has something to apply the changes to.
    bool hasCluster() const noexcept { return walked_; }
    // Reads every pod from the host (inside update() only); pods on `nodeName` are local.
    void walk(const knp::Host& host, std::string_view nodeName);
    // Applies the host's list of changed pods (u.hasPodChanges()). Returns false when it cannot
    // (see above): the caller then walks, which starts the cluster side over.
    bool applyPodChanges(const knp::Update& u, std::string_view nodeName);
    // `specs` in precedence order. Allocates freely.
    std::shared_ptr<const Index> build(const std::vector<std::shared_ptr<const PolicySpec>>& specs);

private:
    struct Namespace {
        std::string name;
        std::shared_ptr<const policy::OwnedLabels> labels;  // the latest a pod brought
        std::vector<uint32_t> identities;                   // alive ones
        uint32_t stale = 0;  // of them, those holding older labels (mid-relabel): tested alone
    };
    struct Identity {
        uint32_t ns = kNone;
        std::shared_ptr<const policy::OwnedLabels> nsLabels;
        std::unique_ptr<const policy::OwnedLabels> labels;
        uint64_t hash = 0;
        uint32_t pods = 0;
        uint32_t nsPos = 0;
        bool alive = false;
    };
    struct Node {
        Node(std::span<const knp_label> l, std::span<const knp_addr> a) : labels(l), addresses(a.begin(), a.end()) {}
        bool same(std::span<const knp_label> l, std::span<const knp_addr> a) const noexcept;
        policy::OwnedLabels labels;
        std::vector<knp_addr> addresses;
        uint32_t pods = 0;  // hostNetwork pods included
    };
    struct NsGroup {  // the peers sharing one namespaceSelector
        policy::LabelSelector selector;
        std::vector<uint32_t> peers;
    };
    struct TableSlot {
        std::shared_ptr<const RuleTable> table;
        std::vector<const CompiledPolicy*> key;
        int dir = 0;
        uint32_t refs = 0;  // identities using it
    };

    uint32_t internPeer(const PeerSpec& p);
    void dropPeers(const std::vector<uint32_t>& dropped);
    std::shared_ptr<const CompiledPolicy> compile(const std::shared_ptr<const PolicySpec>& spec);
    bool nsMatches(const policy::LabelSelector& sel, const Namespace& ns, bool nsMatch, uint32_t ident) const;
    void computeMembers(const std::vector<uint32_t>& peers);
    void computeIdentityPeers(uint32_t ident);
    const std::vector<uint32_t>& subjectMembers(const PolicySpec& s);
    bool selects(const PolicySpec& s, uint32_t ident) const;
    void computeSubjects(const std::vector<std::shared_ptr<const CompiledPolicy>>& policies);
    void assignTables(uint32_t ident, const std::vector<std::shared_ptr<const CompiledPolicy>>& policies);
    uint32_t acquireTable(int dir, const std::vector<const CompiledPolicy*>& key,
                          const std::vector<std::shared_ptr<const CompiledPolicy>>& owners);
    void releaseTable(uint32_t id);
    uint32_t namespaceOf(std::string_view name, std::span<const knp_label> labels, bool adopt);
    uint32_t internIdentity(uint32_t ns, std::span<const knp_label> labels);
    void buryIdentity(uint32_t ident);

    // The cluster.
    bool walked_ = false;
    bool reset_ = false;         // walked since the last build(): the cluster side starts over
    bool nodesChanged_ = false;  // ... and the nodes differ from the ones policies were compiled with
    std::vector<Namespace> namespaces_;
    std::unordered_map<std::string, uint32_t> nsByName_;
    std::vector<Identity> idents_;
    std::vector<uint32_t> freeIdents_;
    std::unordered_multimap<uint64_t, uint32_t> identByHash_;
    std::map<std::string, std::unique_ptr<Node>, std::less<>> nodes_;
    std::map<std::string, LocalPod, std::less<>> locals_;  // by namespace/name
    std::shared_ptr<const policy::AddrMap> ipMap_;
    size_t pods_ = 0;
    size_t lostClaims_ = 0;          // addresses a pod claimed that an earlier one held (walk order)
    std::vector<uint32_t> pending_;  // identities created by applyPodChanges(): no tables yet

    // Policies, peers, tables.
    std::vector<std::shared_ptr<const Peer>> peers_;  // null: free
    std::vector<std::string> peerKeys_;
    std::vector<uint32_t> peerRefs_;  // by peer id: the compiled policies naming it
    std::vector<uint32_t> freePeers_;
    std::unordered_map<std::string, uint32_t> peerByKey_;
    std::vector<uint32_t> freshPeers_;
    std::vector<NsGroup> nsGroups_;
    std::vector<uint32_t> peerGroup_;  // by peer id: its group in nsGroups_
    std::unordered_map<std::string, uint32_t> nsGroupByKey_;
    std::shared_ptr<const std::vector<std::shared_ptr<const Peer>>> peersView_;  // null: rebuild
    std::vector<IdentityIndex> identities_;  // per identity: its peers (sorted) and tables
    std::unordered_map<const PolicySpec*, std::shared_ptr<const CompiledPolicy>> compiled_;
    std::vector<std::shared_ptr<const CompiledPolicy>> lastPolicies_;  // the last build's, held: compared by address
    std::unordered_map<std::string, std::vector<uint32_t>> subjectMembers_;  // subject text → identities
    std::map<std::vector<const CompiledPolicy*>, uint32_t> tableByKey_[2];
    std::vector<TableSlot> tables_;  // by table id
    std::vector<uint32_t> freeTables_;
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
