#include "networkpolicy/snapshot.hpp"

#include <algorithm>

#include "common/pod_tag.hpp"

namespace knp::netpol {

namespace {
constexpr std::string_view kOwnNode = "ingress from the pod's own node is always allowed (kubelet probes)";

std::span<const knp_label> labelsOf(const knp_pod& p) noexcept { return {p.labels, p.n_labels}; }
std::span<const knp_label> nsLabelsOf(const knp_pod& p) noexcept { return {p.namespace_labels, p.n_namespace_labels}; }
}  // namespace

Snapshot::End Snapshot::resolve(const knp_pod* pod, const knp_addr& ip) const noexcept {
    End e;
    // hostNetwork pods are their node's address, never a pod for selectors (§1.7); the host
    // passes NULL for them already, this only guards a host that does not.
    if (pod == nullptr || (pod->flags & KNP_POD_HOST_NETWORK) != 0) return e;
    e.pod = pod;
    uint64_t entry = index_.ipToIdentity ? index_.ipToIdentity->find(ip) : policy::AddrMap::kNone;
    if (entry != policy::AddrMap::kNone && static_cast<uint32_t>(entry >> 32) == policy::podTagOf(*pod)) {
        auto id = static_cast<uint32_t>(entry);
        if (const Identity* identity = id < index_.identities.size() ? index_.identities[id].get() : nullptr) {
            e.identity = identity;
            e.id = id;
            return e;
        }
    }
    // metric_add neither blocks nor allocates (knp_host_api), so it is fine on a data thread.
    host_.add(missMetric_, 1);
    return e;
}

const NsPolicies* Snapshot::namespacePolicies(knp_str ns) const noexcept {
    if (!index_.byNamespace) return nullptr;
    const auto& v = *index_.byNamespace;
    std::string_view name = knp::toView(ns);
    auto it =
        std::lower_bound(v.begin(), v.end(), name,
                         [](const std::shared_ptr<const NsPolicies>& e, std::string_view n) { return e->ns < n; });
    return it != v.end() && (*it)->ns == name ? it->get() : nullptr;
}

bool Snapshot::peerMatches(uint32_t peerId, const End& remote) const noexcept {
    if (remote.identity != nullptr) {
        const std::vector<uint32_t>& in = remote.identity->peers;
        return in.size() <= 8 ? std::find(in.begin(), in.end(), peerId) != in.end()
                              : std::binary_search(in.begin(), in.end(), peerId);
    }
    const Peer* peer = index_.peers[peerId].get();
    if (peer == nullptr) return false;
    const knp_pod& p = *remote.pod;
    return peer->matches(knp::toView(p.pod_namespace), nsLabelsOf(p), labelsOf(p));
}

bool Snapshot::ruleMatches(const CompiledRule& r, const End& remote, const knp_addr& remoteIp, uint8_t protocol,
                           uint16_t dstPort, std::span<const knp_container_port> dstPorts) const noexcept {
    if (!r.ports.matches(protocol, dstPort, dstPorts)) return false;
    if (r.allPeers) return true;
    // ipBlocks match pod IPs too (§1.4); selectors match pods only (§1.3).
    if (!r.ipBlocks.empty() && r.ipBlocks.contains(remoteIp)) return true;
    if (remote.pod == nullptr) return false;
    return std::any_of(r.peers.begin(), r.peers.end(), [&](uint32_t id) { return peerMatches(id, remote); });
}

knp::Decision Snapshot::decide(bool ingress, const End& local, const End& remote, const knp_addr& remoteIp,
                               const knp::PacketView& packet, std::span<const knp_container_port> dstPorts,
                               bool fromOwnNode) const noexcept {
    const CompiledPolicy* isolatedBy = nullptr;
    const CompiledPolicy* allowedBy = nullptr;
    const CompiledRule* rule = nullptr;
    uint16_t port = packet.hasPorts() ? packet.dstPort() : 0;
    // Returns true to stop: allowed, or isolated and exempt as the pod's own node.
    auto visit = [&](const CompiledPolicy& p) {
        if (isolatedBy == nullptr) {
            isolatedBy = &p;
            if (fromOwnNode) return true;
        }
        for (const CompiledRule& r : ingress ? p.ingressRules : p.egressRules) {
            if (ruleMatches(r, remote, remoteIp, packet.protocol(), port, dstPorts)) {
                allowedBy = &p;
                rule = &r;
                return true;
            }
        }
        return false;
    };
    if (local.identity != nullptr) {
        for (uint32_t slot : ingress ? local.identity->ingress : local.identity->egress)
            if (visit(*index_.policies[slot])) break;
    } else if (const NsPolicies* nsp = namespacePolicies(local.pod->pod_namespace)) {
        // The slow path: the index does not know this pod as it is now.
        for (uint32_t slot : nsp->slots) {
            const CompiledPolicy& p = *index_.policies[slot];
            if (!(ingress ? p.spec->ingress : p.spec->egress)) continue;
            if (!p.spec->podSelector.matches(labelsOf(*local.pod))) continue;
            if (visit(p)) break;
        }
    }
    if (isolatedBy == nullptr) return knp::Decision::next();
    if (allowedBy != nullptr) return knp::Decision::accept(rule->reason, allowedBy->spec->key);
    if (fromOwnNode) return knp::Decision::accept(kOwnNode);
    return knp::Decision::deny(ingress ? isolatedBy->denyIngress : isolatedBy->denyEgress, isolatedBy->spec->key);
}

knp::Decision Snapshot::evaluateIngress(const knp::EvalArgs& a) const noexcept {
    knp::PacketView packet = a.packet();
    End local = resolve(a.raw()->dst_pod, packet.dst());
    if (local.pod == nullptr) return knp::Decision::next();
    End remote = resolve(a.raw()->src_pod, packet.src());
    const knp_pod& dst = *local.pod;
    std::span<const knp_addr> node{dst.node_addresses, dst.n_node_addresses};
    bool ownNode = std::any_of(node.begin(), node.end(), [&](const knp_addr& n) { return n == packet.src(); });
    // Named ports resolve on the destination: here the selected pod itself.
    return decide(true, local, remote, packet.src(), packet, {dst.container_ports, dst.n_container_ports}, ownNode);
}

knp::Decision Snapshot::evaluateEgress(const knp::EvalArgs& a) const noexcept {
    knp::PacketView packet = a.packet();
    End local = resolve(a.raw()->src_pod, packet.src());
    if (local.pod == nullptr) return knp::Decision::next();
    End remote = resolve(a.raw()->dst_pod, packet.dst());
    // Named ports resolve on the destination: the remote pod; a non-pod has none.
    std::span<const knp_container_port> dstPorts;
    if (remote.pod != nullptr) dstPorts = {remote.pod->container_ports, remote.pod->n_container_ports};
    return decide(false, local, remote, packet.dst(), packet, dstPorts, false);
}

}  // namespace knp::netpol
