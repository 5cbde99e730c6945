#include "dataplane/packet.hpp"

#include <cstring>

namespace knp::host {

namespace {

constexpr uint8_t kIpProtoHopOpts = 0;
constexpr uint8_t kIpProtoRouting = 43;
constexpr uint8_t kIpProtoFragment = 44;
constexpr uint8_t kIpProtoEsp = 50;
constexpr uint8_t kIpProtoAh = 51;
constexpr uint8_t kIpProtoDstOpts = 60;
constexpr uint8_t kIpProtoMobility = 135;
constexpr uint8_t kIpProtoHip = 139;
constexpr uint8_t kIpProtoShim6 = 140;
// More extension headers than any legitimate packet carries; bounds the walk.
constexpr int kMaxExtensionHeaders = 16;

uint16_t be16(const uint8_t* p) noexcept { return static_cast<uint16_t>(p[0] << 8 | p[1]); }

void mapV4(knp_addr& a, const uint8_t* p) noexcept {
    std::memset(&a, 0, sizeof a);
    a.family = KNP_FAMILY_IPV4;
    a.bytes[10] = 0xff;
    a.bytes[11] = 0xff;
    std::memcpy(a.bytes + 12, p, 4);
}

void setV6(knp_addr& a, const uint8_t* p) noexcept {
    std::memset(&a, 0, sizeof a);
    a.family = KNP_FAMILY_IPV6;
    std::memcpy(a.bytes, p, 16);
}

// Reads ports or ICMP type/code from the transport header at `l4`.
ParseStatus parseL4(const uint8_t* l4, size_t avail, knp_packet& out) noexcept {
    switch (out.protocol) {
        case KNP_PROTO_TCP:
        case KNP_PROTO_UDP:
        case KNP_PROTO_SCTP:
            // Ports lead all three headers; nothing beyond them is needed for a verdict.
            if (avail < 4) return ParseStatus::Truncated;
            out.src_port = be16(l4);
            out.dst_port = be16(l4 + 2);
            return ParseStatus::Ok;
        case KNP_PROTO_ICMP:
        case KNP_PROTO_ICMPV6:
            if (avail < 2) return ParseStatus::Truncated;
            out.icmp_type = l4[0];
            out.icmp_code = l4[1];
            return ParseStatus::Ok;
        default:
            return ParseStatus::Ok;  // another protocol: addresses and number are all we have
    }
}

ParseStatus parseV4(const uint8_t* d, size_t len, knp_packet& out) noexcept {
    if (len < 20) return ParseStatus::Truncated;
    size_t ihl = static_cast<size_t>(d[0] & 0x0f) * 4;
    if (ihl < 20) return ParseStatus::Malformed;
    size_t total = be16(d + 2);
    if (total < ihl) return ParseStatus::Malformed;
    out.family = KNP_FAMILY_IPV4;
    out.protocol = d[9];
    mapV4(out.src, d + 12);
    mapV4(out.dst, d + 16);
    uint16_t frag = be16(d + 6);
    if ((frag & 0x1fff) != 0) return ParseStatus::NonFirstFragment;
    if (len < ihl) return ParseStatus::Truncated;
    // The kernel may copy less than the packet (copy range); never read past what we have.
    size_t avail = (total < len ? total : len) - ihl;
    return parseL4(d + ihl, avail, out);
}

ParseStatus parseV6(const uint8_t* d, size_t len, knp_packet& out) noexcept {
    if (len < 40) return ParseStatus::Truncated;
    out.family = KNP_FAMILY_IPV6;
    setV6(out.src, d + 8);
    setV6(out.dst, d + 24);
    size_t payload = be16(d + 4);
    size_t end = 40 + payload;
    if (end > len) end = len;  // copy range or a jumbogram's zero length: use what we have
    uint8_t next = d[6];
    size_t off = 40;
    for (int i = 0; i <= kMaxExtensionHeaders; ++i) {
        switch (next) {
            case kIpProtoHopOpts:
            case kIpProtoRouting:
            case kIpProtoDstOpts:
            case kIpProtoMobility:
            case kIpProtoHip:
            case kIpProtoShim6: {
                if (off + 2 > end) return ParseStatus::Truncated;
                size_t hlen = (static_cast<size_t>(d[off + 1]) + 1) * 8;
                next = d[off];
                off += hlen;
                continue;
            }
            case kIpProtoAh: {
                if (off + 2 > end) return ParseStatus::Truncated;
                size_t hlen = (static_cast<size_t>(d[off + 1]) + 2) * 4;
                next = d[off];
                off += hlen;
                continue;
            }
            case kIpProtoFragment: {
                if (off + 8 > end) return ParseStatus::Truncated;
                uint16_t fragOff = be16(d + off + 2) & 0xfff8;
                next = d[off];
                off += 8;
                if (fragOff != 0) {
                    out.protocol = next;
                    return ParseStatus::NonFirstFragment;
                }
                continue;
            }
            case kIpProtoEsp:
            default:
                out.protocol = next;
                if (off > end) return ParseStatus::Truncated;
                return parseL4(d + off, end - off, out);
        }
    }
    return ParseStatus::Malformed;
}

}  // namespace

const char* parseStatusName(ParseStatus s) noexcept {
    switch (s) {
        case ParseStatus::Ok:
            return "ok";
        case ParseStatus::NonFirstFragment:
            return "non-first-fragment";
        case ParseStatus::Truncated:
            return "truncated";
        case ParseStatus::Malformed:
            return "malformed";
    }
    return "malformed";
}

ParseStatus parsePacket(const uint8_t* data, size_t len, knp_packet& out) noexcept {
    std::memset(&out, 0, sizeof out);
    out.struct_size = sizeof out;
    if (data == nullptr || len < 1) return ParseStatus::Truncated;
    out.headers = data;
    out.headers_len = static_cast<uint32_t>(len > UINT32_MAX ? UINT32_MAX : len);
    switch (data[0] >> 4) {
        case 4:
            return parseV4(data, len, out);
        case 6:
            return parseV6(data, len, out);
        default:
            return ParseStatus::Malformed;
    }
}

}  // namespace knp::host
