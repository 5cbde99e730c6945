// networkpolicy — one immutable snapshot: the index as of one update, and the per-direction
// verdicts of policy-semantics.md §1.8.
//
// SPDX-License-Identifier: Apache-2.0
//
// Each end of a packet is resolved through the index: its IP gives an identity and a tag
// naming the pod that held the address at the last update. When the view the host passed is
// that pod, the identity decides (its labels and namespace labels as of that update: "label
// changes apply on the next update", which the host sends with KNP_UPDATE_PODS_CHANGED before
// it publishes pod views that carry them). A pod the index does not know — new since the last
// update, or on an address recycled from another pod — is matched directly from its view
// against the selectors (the policies of its namespace, each peer's selectors): slower, same
// verdicts. Comparing names rather than labels keeps a decision to a few cache lines.
// THREAD: immutable; evaluateIngress/evaluateEgress run concurrently on data threads, without
// locks or allocation.
#ifndef KNP_NETWORKPOLICY_SNAPSHOT_HPP
#define KNP_NETWORKPOLICY_SNAPSHOT_HPP

#include <knp/plugin.hpp>

#include "networkpolicy/index.hpp"

namespace knp::netpol {

class Snapshot {
public:
    // `misses` counts ends the index could not vouch for (a metric id of `host`): near zero in
    // steady state; a climbing count means updates lag behind the host's pod views.
    Snapshot(IndexView index, knp::Host host, uint32_t misses) noexcept
        : index_(std::move(index)), host_(host), missMetric_(misses) {}

    knp::Interest interest;  // the SDK finalizes it when update() returns

    knp::Decision evaluateIngress(const knp::EvalArgs& a) const noexcept;
    knp::Decision evaluateEgress(const knp::EvalArgs& a) const noexcept;

    const IndexView& index() const noexcept { return index_; }

private:
    // One end of the packet: a pod (or nothing) and, when the index knows it, its identity.
    struct End {
        const knp_pod* pod = nullptr;
        const Identity* identity = nullptr;
        uint32_t id = kNoId;
    };
    End resolve(const knp_pod* pod, const knp_addr& ip) const noexcept;
    const NsPolicies* namespacePolicies(knp_str ns) const noexcept;
    bool peerMatches(uint32_t peerId, const End& remote) const noexcept;
    bool ruleMatches(const CompiledRule& r, const End& remote, const knp_addr& remoteIp, uint8_t protocol,
                     uint16_t dstPort, std::span<const knp_container_port> dstPorts) const noexcept;
    knp::Decision decide(bool ingress, const End& local, const End& remote, const knp_addr& remoteIp,
                         const knp::PacketView& packet, std::span<const knp_container_port> dstPorts,
                         bool fromOwnNode) const noexcept;

    IndexView index_;
    knp::Host host_;
    uint32_t missMetric_;
};

}  // namespace knp::netpol

#endif  // KNP_NETWORKPOLICY_SNAPSHOT_HPP
