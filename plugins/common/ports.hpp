// knp policy common — which (protocol, destination port) pairs a policy rule allows: numbers,
// inclusive ranges, whole protocols, and named ports resolved on the destination pod.
//
// SPDX-License-Identifier: Apache-2.0
//
// A named port matches only when the destination pod declares a container port with that
// name, the connection's protocol and the connection's destination port, so one name may mean
// different numbers on different pods and a name with the wrong protocol matches nothing
// (NetworkPolicy, AdminNetworkPolicy and ClusterNetworkPolicy agree on this). A destination
// that is not a pod has no container ports: named ports never match it.
// THREAD: immutable once built; matches() is allocation-free and safe on data threads.
#ifndef KNP_POLICY_COMMON_PORTS_HPP
#define KNP_POLICY_COMMON_PORTS_HPP

#include <knp/plugin_api.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace knp::policy {

// A Kubernetes port name (IANA_SVC_NAME): 1..15 of [a-z0-9-], at least one letter, no '-' at
// either end and no "--".
bool validPortName(std::string_view name) noexcept;

// One allowed entry, defaults already applied.
struct PortSpec {
    uint8_t protocol = KNP_PROTO_TCP;  // KNP_PROTO_TCP, _UDP or _SCTP
    uint16_t first = 1;                // numeric: first..last inclusive; 1..65535 = every port
    uint16_t last = 65535;
    std::string name;  // non-empty: a named port (first/last unused)
};

class PortSet {
public:
    // Every port of every protocol (a rule without ports; ICMP included).
    static PortSet all();
    // Exactly the entries given (an empty span allows nothing).
    static PortSet of(std::span<const PortSpec> specs);

    bool matchesAll() const noexcept { return all_; }
    // `dstPorts` are the destination pod's container ports; empty when it is not a pod.
    bool matches(uint8_t protocol, uint16_t dstPort, std::span<const knp_container_port> dstPorts) const noexcept;

private:
    struct Named {
        std::string name;
        uint8_t protocol;
    };
    bool all_ = false;
    std::vector<knp_port_range> ranges_[3];  // TCP, UDP, SCTP: sorted, merged
    std::vector<Named> named_;
};

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_PORTS_HPP
