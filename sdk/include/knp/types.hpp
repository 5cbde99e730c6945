// knp C++ SDK — value helpers over the C ABI types: strings, addresses, CIDRs, pod and packet views.
//
// SPDX-License-Identifier: Apache-2.0
//
// Everything here is allocation-free except the to-string helpers, and safe on data threads.
// The host uses these same helpers, so plugins and host parse addresses identically.
#ifndef KNP_TYPES_HPP
#define KNP_TYPES_HPP

#include <knp/plugin_api.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

namespace knp {

constexpr std::string_view toView(knp_str s) noexcept {
    return s.len ? std::string_view(s.data, s.len) : std::string_view();
}
constexpr knp_str toC(std::string_view s) noexcept { return knp_str{s.data(), s.size()}; }

// ---------------------------------------------------------------------------------------------
// Addresses
// ---------------------------------------------------------------------------------------------

// Parses "10.1.2.3" or "fd00::1" into a knp_addr (IPv4 stored IPv4-mapped).
inline std::optional<knp_addr> parseAddr(std::string_view text) noexcept {
    char buf[INET6_ADDRSTRLEN + 1];
    if (text.empty() || text.size() >= sizeof buf) return std::nullopt;
    std::memcpy(buf, text.data(), text.size());
    buf[text.size()] = '\0';
    knp_addr a{};
    if (inet_pton(AF_INET, buf, a.bytes + 12) == 1) {
        a.family = KNP_FAMILY_IPV4;
        a.bytes[10] = 0xff;
        a.bytes[11] = 0xff;
        return a;
    }
    if (inet_pton(AF_INET6, buf, a.bytes) == 1) {
        a.family = KNP_FAMILY_IPV6;
        return a;
    }
    return std::nullopt;
}

inline std::string formatAddr(const knp_addr& a) {
    char buf[INET6_ADDRSTRLEN];
    if (a.family == KNP_FAMILY_IPV4) {
        inet_ntop(AF_INET, a.bytes + 12, buf, sizeof buf);
    } else {
        inet_ntop(AF_INET6, a.bytes, buf, sizeof buf);
    }
    return buf;
}

inline bool operator==(const knp_addr& a, const knp_addr& b) noexcept {
    return a.family == b.family && std::memcmp(a.bytes, b.bytes, 16) == 0;
}

// Parses "10.0.0.0/8", "fd00::/64", or a bare address (a host prefix). Host bits must be zero
// unless `allowHostBits` (Kubernetes ipBlock accepts "10.0.0.1/8"; the SDK masks them off).
inline std::optional<knp_cidr> parseCidr(std::string_view text, bool allowHostBits = true) noexcept {
    size_t slash = text.find('/');
    auto addr = parseAddr(text.substr(0, slash));
    if (!addr) return std::nullopt;
    unsigned maxLen = addr->family == KNP_FAMILY_IPV4 ? 32 : 128;
    unsigned len = maxLen;
    if (slash != std::string_view::npos) {
        std::string_view digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3) return std::nullopt;
        len = 0;
        for (char c : digits) {
            if (c < '0' || c > '9') return std::nullopt;
            len = len * 10 + static_cast<unsigned>(c - '0');
        }
        if (len > maxLen) return std::nullopt;
    }
    knp_cidr c{};
    c.addr = *addr;
    c.prefix_len = static_cast<uint8_t>(len);
    // Mask host bits in the 128-bit form.
    unsigned bits = len + (addr->family == KNP_FAMILY_IPV4 ? 96 : 0);
    bool hadHostBits = false;
    for (unsigned i = 0; i < 16; ++i) {
        unsigned keep = bits >= (i + 1) * 8 ? 8 : (bits > i * 8 ? bits - i * 8 : 0);
        uint8_t mask = keep == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
        if ((c.addr.bytes[i] & ~mask) != 0) hadHostBits = true;
        c.addr.bytes[i] &= mask;
    }
    if (hadHostBits && !allowHostBits) return std::nullopt;
    return c;
}

// True when `a` lies in `c`. Families never cross.
inline bool cidrContains(const knp_cidr& c, const knp_addr& a) noexcept {
    if (c.addr.family != a.family) return false;
    unsigned bits = c.prefix_len + (a.family == KNP_FAMILY_IPV4 ? 96u : 0u);
    unsigned full = bits / 8;
    if (std::memcmp(c.addr.bytes, a.bytes, full) != 0) return false;
    unsigned rest = bits % 8;
    if (rest == 0) return true;
    uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
    return (c.addr.bytes[full] & mask) == (a.bytes[full] & mask);
}

inline std::string formatCidr(const knp_cidr& c) { return formatAddr(c.addr) + "/" + std::to_string(c.prefix_len); }

// ---------------------------------------------------------------------------------------------
// Protocols
// ---------------------------------------------------------------------------------------------

// "TCP"/"tcp" → KNP_PROTO_TCP; 0 when unknown. Accepts TCP, UDP, SCTP, ICMP, ICMPv6.
inline uint8_t parseProtocol(std::string_view s) noexcept {
    auto eq = [&](std::string_view w) {
        return s.size() == w.size() && std::equal(s.begin(), s.end(), w.begin(), [](char a, char b) {
                   return (a >= 'a' && a <= 'z' ? a - 32 : a) == b;
               });
    };
    if (eq("TCP")) return KNP_PROTO_TCP;
    if (eq("UDP")) return KNP_PROTO_UDP;
    if (eq("SCTP")) return KNP_PROTO_SCTP;
    if (eq("ICMP")) return KNP_PROTO_ICMP;
    if (eq("ICMPV6")) return KNP_PROTO_ICMPV6;
    return 0;
}

inline std::string_view protocolName(uint8_t p) noexcept {
    switch (p) {
        case KNP_PROTO_TCP:
            return "TCP";
        case KNP_PROTO_UDP:
            return "UDP";
        case KNP_PROTO_SCTP:
            return "SCTP";
        case KNP_PROTO_ICMP:
            return "ICMP";
        case KNP_PROTO_ICMPV6:
            return "ICMPv6";
        default:
            return "OTHER";
    }
}

inline uint32_t protocolBit(uint8_t p) noexcept {
    switch (p) {
        case KNP_PROTO_TCP:
            return KNP_PROTO_BIT_TCP;
        case KNP_PROTO_UDP:
            return KNP_PROTO_BIT_UDP;
        case KNP_PROTO_SCTP:
            return KNP_PROTO_BIT_SCTP;
        case KNP_PROTO_ICMP:
        case KNP_PROTO_ICMPV6:
            return KNP_PROTO_BIT_ICMP;
        default:
            return KNP_PROTO_BIT_OTHER;
    }
}

// ---------------------------------------------------------------------------------------------
// Views
// ---------------------------------------------------------------------------------------------

// Finds `key` in a key-sorted label array (binary search; no allocation).
inline std::optional<std::string_view> findLabel(std::span<const knp_label> labels, std::string_view key) noexcept {
    auto it = std::lower_bound(labels.begin(), labels.end(), key,
                               [](const knp_label& l, std::string_view k) { return toView(l.key) < k; });
    if (it == labels.end() || toView(it->key) != key) return std::nullopt;
    return toView(it->value);
}

// A pod end of a packet, or nothing (operator bool false) when that end is not a pod.
// OWNERSHIP: borrows the host's knp_pod, valid for the call it was passed to; so are the
// string views and spans it returns. THREAD: any. SINCE: 1.0
class PodView {
public:
    PodView() = default;
    explicit PodView(const knp_pod* p) noexcept : p_(p) {}
    explicit operator bool() const noexcept { return p_ != nullptr; }
    const knp_pod* raw() const noexcept { return p_; }

    std::string_view name() const noexcept { return toView(p_->name); }
    std::string_view podNamespace() const noexcept { return toView(p_->pod_namespace); }
    std::string_view uid() const noexcept { return toView(p_->uid); }
    std::string_view nodeName() const noexcept { return toView(p_->node_name); }
    bool hostNetwork() const noexcept { return (p_->flags & KNP_POD_HOST_NETWORK) != 0; }

    std::span<const knp_label> labels() const noexcept { return {p_->labels, p_->n_labels}; }
    std::span<const knp_label> namespaceLabels() const noexcept {
        return {p_->namespace_labels, p_->n_namespace_labels};
    }
    std::span<const knp_label> nodeLabels() const noexcept { return {p_->node_labels, p_->n_node_labels}; }
    std::span<const knp_addr> nodeAddresses() const noexcept { return {p_->node_addresses, p_->n_node_addresses}; }
    std::span<const knp_container_port> containerPorts() const noexcept {
        return {p_->container_ports, p_->n_container_ports};
    }
    std::span<const knp_addr> ips() const noexcept { return {p_->ips, p_->n_ips}; }

    std::optional<std::string_view> label(std::string_view key) const noexcept { return findLabel(labels(), key); }
    std::optional<std::string_view> namespaceLabel(std::string_view key) const noexcept {
        return findLabel(namespaceLabels(), key);
    }

private:
    const knp_pod* p_ = nullptr;
};

// The first packet of a connection. OWNERSHIP: borrowed for the call. THREAD: any.
// SINCE: 1.0
class PacketView {
public:
    explicit PacketView(const knp_packet* p) noexcept : p_(p) {}
    uint8_t family() const noexcept { return p_->family; }
    uint8_t protocol() const noexcept { return p_->protocol; }
    const knp_addr& src() const noexcept { return p_->src; }
    const knp_addr& dst() const noexcept { return p_->dst; }
    uint16_t srcPort() const noexcept { return p_->src_port; }
    uint16_t dstPort() const noexcept { return p_->dst_port; }
    bool hasPorts() const noexcept {
        return p_->protocol == KNP_PROTO_TCP || p_->protocol == KNP_PROTO_UDP || p_->protocol == KNP_PROTO_SCTP;
    }
    const knp_packet* raw() const noexcept { return p_; }

private:
    const knp_packet* p_;
};

}  // namespace knp

#endif  // KNP_TYPES_HPP
