// knp policy common — a 32-bit tag naming a pod (namespace, name, uid), for IP maps that must
// tell the pod they were built for from another that has taken its address since.
//
// SPDX-License-Identifier: Apache-2.0
//
// An index maps a pod IP to (its identity, its tag). At evaluation the tag of the pod view the
// host passes is compared with the map's: equal means the index describes this pod; different
// means a recycled address (or a pod newer than the index), which the plugin then judges from
// the view itself. A collision only costs the check, never a wrong pod: views are compared by
// names, which the host never reuses for a different pod at the same time.
// THREAD: pure functions, allocation-free.
#ifndef KNP_POLICY_COMMON_POD_TAG_HPP
#define KNP_POLICY_COMMON_POD_TAG_HPP

#include <knp/plugin_api.h>

#include <cstdint>

#include "common/hash.hpp"

namespace knp::policy {

inline uint32_t podTagOf(const knp_pod& p) noexcept {
    Hasher h;
    h.bytes(p.pod_namespace.data, p.pod_namespace.len);
    h.bytes(p.name.data, p.name.len);
    h.bytes(p.uid.data, p.uid.len);
    return static_cast<uint32_t>(h.done());
}

// An IP map value: the identity in the low half, the pod's tag in the high half.
constexpr uint64_t packPodEntry(uint32_t identity, uint32_t tag) noexcept { return uint64_t(tag) << 32 | identity; }

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_POD_TAG_HPP
