#include "common/ports.hpp"

#include <algorithm>
#include <cstring>

namespace knp::policy {

namespace {
// Index into PortSet::ranges_, or -1 for a protocol without ports.
int protocolIndex(uint8_t p) noexcept {
    switch (p) {
        case KNP_PROTO_TCP:
            return 0;
        case KNP_PROTO_UDP:
            return 1;
        case KNP_PROTO_SCTP:
            return 2;
        default:
            return -1;
    }
}
}  // namespace

bool validPortName(std::string_view n) noexcept {
    if (n.empty() || n.size() > 15 || n.front() == '-' || n.back() == '-') return false;
    if (n.find("--") != std::string_view::npos) return false;
    bool letter = false;
    for (char c : n) {
        if (c >= 'a' && c <= 'z') {
            letter = true;
        } else if (!(c >= '0' && c <= '9') && c != '-') {
            return false;
        }
    }
    return letter;
}

PortSet PortSet::all() {
    PortSet s;
    s.all_ = true;
    return s;
}

PortSet PortSet::of(std::span<const PortSpec> specs) {
    PortSet s;
    for (const PortSpec& p : specs) {
        int i = protocolIndex(p.protocol);
        if (i < 0) continue;  // callers validate protocols; an unknown one allows nothing
        if (!p.name.empty()) {
            s.named_.push_back({p.name, p.protocol});
        } else {
            s.ranges_[i].push_back({p.first, p.last});
        }
    }
    for (auto& r : s.ranges_) {
        std::sort(r.begin(), r.end(),
                  [](const knp_port_range& a, const knp_port_range& b) { return a.first < b.first; });
        std::vector<knp_port_range> merged;
        for (const knp_port_range& x : r) {
            if (!merged.empty() && x.first <= static_cast<uint32_t>(merged.back().last) + 1) {
                merged.back().last = std::max(merged.back().last, x.last);
            } else {
                merged.push_back(x);
            }
        }
        r = std::move(merged);
    }
    return s;
}

bool PortSet::matches(uint8_t protocol, uint16_t dstPort, std::span<const knp_container_port> dstPorts) const noexcept {
    if (all_) return true;
    int i = protocolIndex(protocol);
    if (i < 0) return false;
    const std::vector<knp_port_range>& r = ranges_[i];
    // The last range starting at or below the port is the only one that can hold it.
    auto it = std::upper_bound(r.begin(), r.end(), dstPort,
                               [](uint16_t port, const knp_port_range& x) { return port < x.first; });
    if (it != r.begin() && dstPort <= std::prev(it)->last) return true;
    for (const Named& n : named_) {
        if (n.protocol != protocol) continue;
        for (const knp_container_port& cp : dstPorts) {
            if (cp.protocol == protocol && cp.port == dstPort && cp.name.len == n.name.size() &&
                std::memcmp(cp.name.data, n.name.data(), n.name.size()) == 0)
                return true;
        }
    }
    return false;
}

}  // namespace knp::policy
