// The host's view of the cluster: Pods, Namespaces and Nodes as the watch delivers them, and
// the immutable snapshot (IP → pod view) that evaluation reads.
//
// THREAD: ClusterState is control-thread only. ClusterSnapshot is immutable once built and
// safe to read from any thread; lookups neither lock nor allocate.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <boost/json/object.hpp>
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
        Labels labels;
        std::vector<std::string> portNames;
        std::vector<knp_container_port> ports;
        std::vector<knp_addr> ips;
        bool running = false;
        knp_pod view{};
    };

private:
    friend class ClusterState;
    std::string localNode_;
    std::vector<std::unique_ptr<NamespaceEntry>> namespaces_;
    std::vector<std::unique_ptr<NodeEntry>> nodes_;
    std::vector<std::unique_ptr<PodEntry>> pods_;
    std::unordered_map<std::array<uint8_t, 16>, const PodEntry*, AddrHash> byIp_;
    std::unordered_set<std::array<uint8_t, 16>, AddrHash> nodeAddresses_;
    std::unordered_set<std::array<uint8_t, 16>, AddrHash> localAddresses_;
    std::vector<knp_addr> localPodIps_;
    std::map<std::pair<std::string_view, std::string_view>, const PodEntry*> byName_;
};

class ClusterState {
public:
    // Applies one watch event (KNP_EVENT_ADDED/MODIFIED/DELETED) for a core kind. A malformed
    // object is refused with one line naming it; the state keeps what it had.
    Status apply(uint32_t eventType, CoreKind kind, const boost::json::object& object);
    std::shared_ptr<const ClusterSnapshot> build(const std::string& localNode) const;

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
    };
    struct Namespace {
        std::map<std::string, std::string> labels;
    };
    struct Node {
        std::map<std::string, std::string> labels;
        std::vector<knp_addr> addresses;
    };

private:
    std::map<std::pair<std::string, std::string>, Pod> pods_;
    std::map<std::string, Namespace> namespaces_;
    std::map<std::string, Node> nodes_;
};

}  // namespace knp::host
