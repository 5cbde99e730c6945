// The packet parser on well-formed, truncated, fragmented and hostile input.
#include <doctest/doctest.h>
#include <knp/types.hpp>

#include <random>
#include <vector>

#include "dataplane/packet.hpp"

using namespace knp::host;
using Bytes = std::vector<uint8_t>;

namespace {

Bytes ipv4(uint8_t proto, Bytes l4, uint8_t ihlWords = 5, uint16_t frag = 0) {
    Bytes p(ihlWords * 4u, 0);
    p[0] = static_cast<uint8_t>(0x40 | ihlWords);
    size_t total = p.size() + l4.size();
    p[2] = static_cast<uint8_t>(total >> 8);
    p[3] = static_cast<uint8_t>(total);
    p[6] = static_cast<uint8_t>(frag >> 8);
    p[7] = static_cast<uint8_t>(frag);
    p[8] = 64;
    p[9] = proto;
    Bytes src = {10, 0, 0, 1}, dst = {10, 0, 0, 2};
    std::copy(src.begin(), src.end(), p.begin() + 12);
    std::copy(dst.begin(), dst.end(), p.begin() + 16);
    p.insert(p.end(), l4.begin(), l4.end());
    return p;
}

Bytes ipv6(uint8_t next, Bytes rest) {
    Bytes p(40, 0);
    p[0] = 0x60;
    p[4] = static_cast<uint8_t>(rest.size() >> 8);
    p[5] = static_cast<uint8_t>(rest.size());
    p[6] = next;
    p[7] = 64;
    p[8] = 0xfd;
    p[23] = 1;  // fd00::1
    p[24] = 0xfd;
    p[39] = 2;  // fd00::2
    p.insert(p.end(), rest.begin(), rest.end());
    return p;
}

Bytes ports(uint16_t s, uint16_t d) {
    return {static_cast<uint8_t>(s >> 8),
            static_cast<uint8_t>(s),
            static_cast<uint8_t>(d >> 8),
            static_cast<uint8_t>(d),
            0,
            0,
            0,
            0};
}

ParseStatus parse(const Bytes& b, knp_packet& out) { return parsePacket(b.data(), b.size(), out); }

}  // namespace

TEST_CASE("IPv4 TCP, UDP, SCTP and ICMP") {
    knp_packet p;
    for (uint8_t proto : {KNP_PROTO_TCP, KNP_PROTO_UDP, KNP_PROTO_SCTP}) {
        CAPTURE(int(proto));
        REQUIRE(parse(ipv4(proto, ports(40000, 8080)), p) == ParseStatus::Ok);
        CHECK(p.family == KNP_FAMILY_IPV4);
        CHECK(p.protocol == proto);
        CHECK(p.src_port == 40000);
        CHECK(p.dst_port == 8080);
        CHECK(knp::formatAddr(p.src) == "10.0.0.1");
        CHECK(knp::formatAddr(p.dst) == "10.0.0.2");
    }
    REQUIRE(parse(ipv4(KNP_PROTO_ICMP, {8, 0, 0, 0}), p) == ParseStatus::Ok);
    CHECK(p.icmp_type == 8);
    CHECK(p.dst_port == 0);
}

TEST_CASE("IPv4 options are skipped") {
    knp_packet p;
    REQUIRE(parse(ipv4(KNP_PROTO_TCP, ports(1, 443), 7), p) == ParseStatus::Ok);
    CHECK(p.dst_port == 443);
}

TEST_CASE("IPv4 fragments, truncation and malformed headers") {
    knp_packet p;
    CHECK(parse(ipv4(KNP_PROTO_TCP, ports(1, 80), 5, 0x2000), p) == ParseStatus::Ok);  // MF, offset 0
    CHECK(parse(ipv4(KNP_PROTO_TCP, ports(1, 80), 5, 0x0010), p) == ParseStatus::NonFirstFragment);
    CHECK(knp::formatAddr(p.dst) == "10.0.0.2");
    Bytes b = ipv4(KNP_PROTO_TCP, ports(1, 80));
    CHECK(parsePacket(b.data(), 22, p) == ParseStatus::Truncated);  // ports cut
    CHECK(parsePacket(b.data(), 19, p) == ParseStatus::Truncated);
    b[0] = 0x44;  // IHL 4
    CHECK(parse(b, p) == ParseStatus::Malformed);
    b[0] = 0x55;  // version 5
    CHECK(parse(b, p) == ParseStatus::Malformed);
    CHECK(parsePacket(nullptr, 0, p) == ParseStatus::Truncated);
}

TEST_CASE("IPv6 with extension headers") {
    knp_packet p;
    REQUIRE(parse(ipv6(KNP_PROTO_TCP, ports(5, 80)), p) == ParseStatus::Ok);
    CHECK(p.family == KNP_FAMILY_IPV6);
    CHECK(knp::formatAddr(p.src) == "fd00::1");
    CHECK(p.dst_port == 80);

    // hop-by-hop (8) → destination options (16) → fragment, first (8) → UDP
    Bytes rest = {60, 0, 0, 0, 0, 0, 0, 0};                         // HBH, next = dstopts
    Bytes dst = {44, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};  // next = fragment
    Bytes frag = {KNP_PROTO_UDP, 0, 0, 0, 0, 0, 0, 1};              // offset 0, id 1
    rest.insert(rest.end(), dst.begin(), dst.end());
    rest.insert(rest.end(), frag.begin(), frag.end());
    Bytes udp = ports(53, 5353);
    rest.insert(rest.end(), udp.begin(), udp.end());
    REQUIRE(parse(ipv6(0, rest), p) == ParseStatus::Ok);
    CHECK(p.protocol == KNP_PROTO_UDP);
    CHECK(p.dst_port == 5353);

    Bytes later = {KNP_PROTO_TCP, 0, 0x01, 0x00, 0, 0, 0, 1};  // offset 32: not the first fragment
    REQUIRE(parse(ipv6(44, later), p) == ParseStatus::NonFirstFragment);
    CHECK(p.protocol == KNP_PROTO_TCP);

    REQUIRE(parse(ipv6(KNP_PROTO_ICMPV6, {128, 0, 0, 0}), p) == ParseStatus::Ok);
    CHECK(p.icmp_type == 128);
}

TEST_CASE("IPv6 extension chains that lie are bounded") {
    knp_packet p;
    // 20 hop-by-hop headers chained: more than any real packet, reported as malformed.
    Bytes rest;
    for (int i = 0; i < 20; ++i) rest.insert(rest.end(), {0, 0, 0, 0, 0, 0, 0, 0});
    CHECK(parse(ipv6(0, rest), p) == ParseStatus::Malformed);
    // A header length pointing past the packet.
    CHECK(parse(ipv6(0, {KNP_PROTO_TCP, 200, 0, 0, 0, 0, 0, 0}), p) == ParseStatus::Truncated);
    Bytes short6 = ipv6(KNP_PROTO_TCP, ports(1, 2));
    CHECK(parsePacket(short6.data(), 39, p) == ParseStatus::Truncated);
}

TEST_CASE("random bytes never crash the parser") {
    std::mt19937 rng(42);
    knp_packet p;
    for (int i = 0; i < 200000; ++i) {
        Bytes b(rng() % 120);
        for (auto& x : b) x = static_cast<uint8_t>(rng());
        if (!b.empty()) b[0] = static_cast<uint8_t>((rng() % 2 ? 0x40 : 0x60) | (b[0] & 0x0f));
        (void)parsePacket(b.data(), b.size(), p);
    }
    CHECK(true);
}
