// networkpolicy — the control thread's mutable index: applies policy changes and pod-walk
// differences incrementally, then publishes an immutable Snapshot that shares every part it
// did not change.
//
// SPDX-License-Identifier: Apache-2.0
//
// One update is: walkPods() (when the host's pod index changed), setPolicy()/removePolicy()
// for each changed object, then publish(). Work is proportional to what changed:
//  - a policy change re-evaluates its podSelector over the identities of its namespace, and
//    computes the members of peers no other policy had (interned by selector text);
//  - a pod change costs, from a 1.1 host, only the pods it lists as changed (from a 1.0 host a
//    fingerprint per pod in a walk of every pod view), and for a pod whose namespace or labels
//    really changed, one identity's subject policies and peer memberships.
// Unchanged identities, peers and policies stay shared with earlier snapshots (CowVector).
// THREAD: control thread only (constructor to destructor); snapshots it returns are immutable.
#ifndef KNP_NETWORKPOLICY_MODEL_HPP
#define KNP_NETWORKPOLICY_MODEL_HPP

#include <knp/plugin.hpp>

#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "networkpolicy/index.hpp"
#include "networkpolicy/policy.hpp"
#include "networkpolicy/snapshot.hpp"

namespace knp::netpol {

// Lets string-keyed maps be searched with a string_view, without building a std::string.
struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <class V>
using StringMap = std::unordered_map<std::string, V, StringHash, std::equal_to<>>;

struct ModelStats {
    size_t policies = 0;
    size_t pods = 0;
    size_t identities = 0;
    size_t peers = 0;
    size_t localIngressIsolated = 0;
    size_t localEgressIsolated = 0;
};

class Model {
public:
    // Snapshots count index misses in metric `misses` of `host` (see Snapshot).
    Model(knp::Host host, uint32_t misses);
    Model(const Model&) = delete;
    Model& operator=(const Model&) = delete;

    // Adds the policy, or replaces the one with the same key.
    void setPolicy(std::shared_ptr<const PolicySpec> spec);
    void removePolicy(const std::string& key);

    // Reads every pod from the host (inside update() only). Pods on `nodeName` are the local
    // ones the interest names; with an empty node name there are none. Returns true when some
    // pod's identity or IPs, or the set of local pods, changed.
    bool walkPods(const knp::Host& host, std::string_view nodeName);
    // The same from the host's list of changed pods (ABI 1.1, u.hasPodChanges()): work in
    // proportion to the pods that changed, not to the cluster. Falls back to walkPods() when a
    // pod takes an address another live pod still holds.
    bool applyPodChanges(const knp::Update& u, std::string_view nodeName);

    // Completes the pending work of this update and returns a snapshot of the result.
    std::unique_ptr<Snapshot> publish();

    ModelStats stats() const;

private:
    struct NsModel;
    struct PeerModel {
        std::string key;
        uint32_t refs = 0;
        bool fresh = false;  // created this update: members not computed yet
        bool cluster = false;
        uint32_t pos = 0;                   // in clusterPeers_ or its namespace's scopedPeers
        NsModel* scope = nullptr;           // the namespace of a peer without namespaceSelector
        std::vector<uint32_t> add, remove;  // membership changes waiting for publish()
        bool touched = false;
    };
    struct IdentityModel {
        std::shared_ptr<const IdentityCore> core;
        uint64_t hash = 0;
        uint32_t pods = 0;
        NsModel* ns = nullptr;
        uint32_t nsPos = 0;
        std::vector<uint32_t> peers;  // the peers whose members hold it, to leave them on death
        bool alive = false;
        bool pending = false;  // created this update: subjects and peers not computed yet
    };
    struct NsModel {
        std::string name;
        std::shared_ptr<const policy::OwnedLabels> labels;
        std::vector<uint32_t> identities;   // alive identities
        std::vector<uint32_t> policies;     // slots, by policy key
        std::vector<uint32_t> scopedPeers;  // peers without namespaceSelector in this namespace
        bool policiesChanged = false;
    };
    struct PodRec {
        uint64_t fingerprint = 0;
        uint64_t entry = 0;  // what its addresses map to: policy::packPodEntry(identity, pod tag)
        uint32_t identity = kNoId;
        uint32_t gen = 0;
        uint32_t next = kNoId;      // the record walked after this one last time
        std::vector<knp_addr> ips;  // ips[0] is the key in podByIp_
        std::string key;            // namespace/name, the key in recByName_
    };
    struct Local {
        std::vector<knp_addr> ips;
        uint32_t identity;
        bool operator==(const Local& o) const noexcept;
    };
    static bool localLess(const Local& a, const Local& b) noexcept;  // by first address

    NsModel& namespaceModel(std::string_view name);
    const CompiledPolicy& policyAt(uint32_t slot) const { return *index_.policies[slot]; }
    std::shared_ptr<const CompiledPolicy> compile(std::shared_ptr<const PolicySpec> spec);
    uint32_t internPeer(const PeerSpec& p, const std::string& policyNs);
    void releasePeer(uint32_t id);
    Identity& work(uint32_t id);
    uint32_t internIdentity(NsModel& ns, std::span<const knp_label> labels);
    void unrefIdentity(uint32_t id);
    void setIps(const std::vector<knp_addr>& ips, uint64_t entry);
    void clearIps(const std::vector<knp_addr>& ips, uint64_t entry);
    static uint64_t podFingerprint(uint64_t nsFingerprint, knp::PodView p);
    // Adopts `nsLabels` as the namespace's labels when they differ; returns their fingerprint.
    static uint64_t syncNamespaceLabels(NsModel& ns, std::span<const knp_label> nsLabels);
    // Points record `r` (kNoId: a new one) at pod `p`; the IP map is set by the caller, after
    // every removal of the update. Returns the record.
    uint32_t indexPod(uint32_t r, NsModel& ns, knp::PodView p, uint64_t fingerprint);
    void dropRecord(uint32_t r);
    policy::AddrMap& ipMap();
    void computeFreshPeers();
    void computePendingIdentities();
    void refreshPeerLists();
    void buryDeadIdentities();
    void applyPeerChanges();
    void sortDirty();
    void rebuildNamespaceIndex();
    void dropEmptyNamespaces();
    knp::Interest interest() const;
    bool peerMatchesIdentity(const Peer& p, const IdentityModel& m) const noexcept;

    knp::Host host_;
    uint32_t missMetric_;
    IndexView index_;
    std::shared_ptr<policy::AddrMap> ipToIdentity_;

    StringMap<uint32_t> slotByKey_;
    std::vector<uint32_t> freeSlots_;

    std::vector<PeerModel> peerModels_;
    StringMap<uint32_t> peerByKey_;
    std::vector<uint32_t> freePeers_;
    std::vector<uint32_t> clusterPeers_;  // peers with a namespaceSelector: any namespace
    std::vector<uint32_t> freshPeers_;
    std::vector<uint32_t> touchedPeers_;

    StringMap<std::unique_ptr<NsModel>> namespaces_;
    std::map<std::string, std::shared_ptr<const NsPolicies>, std::less<>> nsPolicies_;
    bool nsIndexDirty_ = true;

    std::vector<IdentityModel> ids_;
    std::vector<uint32_t> freeIds_;
    std::unordered_multimap<uint64_t, uint32_t> idByHash_;
    std::unordered_map<uint32_t, Identity> dirty_;  // working copies of identities changed this update
    std::vector<uint32_t> pendingIds_;
    std::vector<uint32_t> peersChanged_;  // identities whose peer list changed this update
    std::vector<uint32_t> maybeDead_;

    std::vector<PodRec> pods_;
    std::vector<uint32_t> freePods_;
    policy::AddrMap podByIp_;
    StringMap<uint32_t> recByName_;  // namespace/name → record, for the pod delta
    uint32_t firstRec_ = kNoId;      // the record walked first last time
    uint32_t gen_ = 0;
    bool walked_ = false;
    std::vector<Local> locals_;
};

}  // namespace knp::netpol

#endif  // KNP_NETWORKPOLICY_MODEL_HPP
