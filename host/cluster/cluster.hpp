// The host's view of the cluster: Pods, Namespaces and Nodes as the watch delivers them, and
// the immutable snapshot (IP → pod view) that evaluation reads.
//
// THREAD: ClusterState is control-thread only. ClusterSnapshot is immutable once built and
// safe to read from any thread; lookups neither lock nor allocate. The one exception is the
// pod delta (podChangesSince), which only the control thread reads and ClusterState drops from
// a snapshot once a newer one exists.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/json/object.hpp>
#include <boost/unordered/unordered_flat_map.hpp>
#include <boost/unordered/unordered_flat_set.hpp>
#include <knp/plugin_api.h>

#include "common/result.hpp"

namespace knp::host {

enum class CoreKind { Pod, Namespace, Node };
// "Pod"/"Namespace"/"Node" with apiVersion "v1"; nullopt otherwise.
std::optional<CoreKind> coreKindOf(std::string_view apiVersion, std::string_view kind);

struct AddrHash {
    size_t operator()(const std::array<uint8_t, 16>& a) const noexcept;
};

class ClusterSnapshot {
public:
    // The pod that owns `ip`, or nullptr (not a pod: external, node, hostNetwork pod).
    const knp_pod* lookup(const knp_addr& ip) const noexcept;
    // True for a node's address (InternalIP/ExternalIP, or a hostNetwork pod's IP): traffic a
    // node's own knpd sees originate or terminate locally.
    bool isNodeAddress(const knp_addr& ip) const noexcept;
    // True for an address this node hosts: a pod on the local node, or one of the local node's
    // own addresses. knpd evaluates egress only for local sources and ingress only for local
    // destinations: each direction once, on the node that hosts that end.
    bool isLocal(const knp_addr& ip) const noexcept;
    // IPs of the (non-hostNetwork) pods on the local node (KNP_INTEREST_LOCAL_PODS).
    const std::vector<knp_addr>& localPodIps() const noexcept { return localPodIps_; }
    // A pod by namespace and name (any phase but terminal), hostNetwork pods included.
    const knp_pod* find(std::string_view ns, std::string_view name) const noexcept;
    // Every non-terminal pod with an IP; `localOnly` restricts to pods on `localNode`.
    int32_t forEachPod(bool localOnly, int32_t (*fn)(void*, const knp_pod*), void* user) const;
    size_t podCount() const noexcept { return pods_.size(); }
    const std::string& localNode() const noexcept { return localNode_; }
    // A pod forEachPod visits (non-terminal, with an IP), by namespace and name; nullptr if not.
    const knp_pod* indexed(std::string_view ns, std::string_view name) const noexcept;

    // Builds of one ClusterState are numbered 1, 2, ...
    uint64_t generation() const noexcept { return generation_; }
    // The pods that entered, left or changed since the build numbered `generation` (ABI 1.1's
    // knp_update_args.pod_changes, each pod once, `before` views kept alive by this snapshot),
    // or nullptr when this snapshot cannot say (`generation` is not the build just before it,
    // or a newer build exists). THREAD: control thread only.
    const std::vector<const knp_pod_change*>* podChangesSince(uint64_t generation) const noexcept;

    struct Labels {
        std::vector<std::pair<std::string, std::string>> store;  // sorted by key
        std::vector<knp_label> view;
        void build(const std::map<std::string, std::string>& m);
    };
    struct NodeEntry {
        std::string name;
        Labels labels;
        std::vector<knp_addr> addresses;
    };
    struct NamespaceEntry {
        std::string name;
        Labels labels;
    };
    struct PodEntry {
        std::string name, ns, uid, nodeName;
        // The entries its view's namespace and node fields point into, kept alive with it.
        std::shared_ptr<const NamespaceEntry> nsRef;
        std::shared_ptr<const NodeEntry> nodeRef;
        Labels labels;
        std::vector<std::string> portNames;
        std::vector<knp_container_port> ports;
        std::vector<knp_addr> ips;
        bool running = false;
        knp_pod view{};
    };

private:
    friend class ClusterState;
    const PodEntry* entry(std::string_view ns, std::string_view name) const noexcept;
    std::string localNode_;
    // Immutable entries, shared with the snapshots built before and after this one.
    std::vector<std::shared_ptr<const NodeEntry>> nodes_;
    std::vector<std::shared_ptr<const PodEntry>> pods_;
    // Open addressing (Boost 1.81's flat containers): one allocation per build instead of one
    // per pod, and a lookup on the data path reads one group of slots.
    boost::unordered_flat_map<std::array<uint8_t, 16>, const PodEntry*, AddrHash> byIp_;
    boost::unordered_flat_set<std::array<uint8_t, 16>, AddrHash> nodeAddresses_;
    boost::unordered_flat_set<std::array<uint8_t, 16>, AddrHash> localAddresses_;
    std::vector<knp_addr> localPodIps_;
    uint64_t generation_ = 0;
    struct Delta {
        uint64_t baseGeneration = 0;
        std::shared_ptr<const ClusterSnapshot> base;  // owns the `before` views
        std::vector<knp_pod_change> changes;
        std::vector<const knp_pod_change*> pointers;  // into `changes`, as the ABI passes them
    };
    // Control thread only (see THREAD above): set when built, reset by the next build, so a
    // chain of snapshots never keeps more than one predecessor alive.
    mutable std::optional<Delta> delta_;
};

class ClusterState {
public:
    // Applies one watch event (KNP_EVENT_ADDED/MODIFIED/DELETED) for a core kind. A malformed
    // object is refused with one line naming it; the state keeps what it had.
    Status apply(uint32_t eventType, CoreKind kind, const boost::json::object& object);
    // A snapshot of the current state, numbered, with the pod delta since the previous build.
    std::shared_ptr<const ClusterSnapshot> build(const std::string& localNode);

    struct Pod {
        std::string name, ns, uid, nodeName, phase;
        std::map<std::string, std::string> labels;
        bool hostNetwork = false;
        struct Port {
            std::string name;
            uint16_t port;
            uint8_t protocol;
        };
        std::vector<Port> ports;
        std::vector<knp_addr> ips;
        // The snapshot entry built from this state; null until the next build, or after a change.
        std::shared_ptr<const ClusterSnapshot::PodEntry> entry;
    };
    struct Namespace {
        std::map<std::string, std::string> labels;
    };
    struct Node {
        std::map<std::string, std::string> labels;
        std::vector<knp_addr> addresses;
    };

private:
    void recordChanges(ClusterSnapshot& next);

    std::map<std::pair<std::string, std::string>, Pod> pods_;
    std::map<std::string, Namespace> namespaces_;
    std::map<std::string, Node> nodes_;
    // What apply() touched since the last build, and that build: the pod delta's inputs.
    std::set<std::pair<std::string, std::string>> dirtyPods_;
    std::set<std::string> dirtyNamespaces_, dirtyNodes_;
    uint64_t generation_ = 0;
    std::shared_ptr<const ClusterSnapshot> last_;
    // The current entries of namespaces and nodes, reused by builds until an event touches them.
    std::map<std::string, std::shared_ptr<const ClusterSnapshot::NamespaceEntry>> nsEntries_;
    std::map<std::string, std::shared_ptr<const ClusterSnapshot::NodeEntry>> nodeEntries_;
};

}  // namespace knp::host
