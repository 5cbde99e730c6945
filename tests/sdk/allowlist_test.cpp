// tests/sdk: the allowlist plugin, loaded from the built allowlist.so (KNP_ALLOWLIST_SO) and
// driven only through the C ABI by knp::testing::Harness.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <knp/testing.hpp>

#include <boost/json.hpp>

#include <cerrno>
#include <cstdlib>
#include <memory>
#include <new>
#include <random>
#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#ifndef KNP_ALLOWLIST_SO
#error "KNP_ALLOWLIST_SO must name the built allowlist.so (tests/sdk/meson.build sets it)"
#endif

using knp::Verdict;
using knp::testing::Harness;
using knp::testing::makePacket;
using knp::testing::OwnedPod;

#include "../alloc_counter.hpp"

using knp_test::tAllocations;

namespace {

// A harness with an instance and its one snapshot; REQUIREs that the config is accepted.
std::unique_ptr<Harness> load(std::string_view config) {
    auto h = std::make_unique<Harness>(std::string(KNP_ALLOWLIST_SO));
    knp::testing::Status s = h->init(config, "allowlist-test");
    INFO("init: ", s.message, " at ", s.pointer);
    REQUIRE(s.ok());
    REQUIRE(h->update().newSnapshot);
    return h;
}

knp::testing::Status initStatus(std::string_view config) {
    Harness h{std::string(KNP_ALLOWLIST_SO)};
    return h.init(config);
}

std::vector<std::string> cidrs(const std::vector<knp_cidr>& cs) {
    std::vector<std::string> out;
    for (const knp_cidr& c : cs) out.push_back(knp::formatCidr(c));
    return out;
}

std::vector<std::string> ports(const std::vector<knp_port_range>& ps) {
    std::vector<std::string> out;
    for (const knp_port_range& p : ps)
        out.push_back(p.first == p.last ? std::to_string(p.first)
                                        : std::to_string(p.first) + "-" + std::to_string(p.last));
    return out;
}

}  // namespace

TEST_CASE("descriptor: name, both directions, a JSON Schema that parses") {
    Harness h{std::string(KNP_ALLOWLIST_SO)};
    const knp_plugin_descriptor& d = h.descriptor();
    CHECK(std::string(d.name) == "allowlist");
    CHECK(d.capabilities == (KNP_CAP_INGRESS | KNP_CAP_EGRESS));
    REQUIRE(d.config_schema != nullptr);
    boost::system::error_code ec;
    boost::json::value schema = boost::json::parse(d.config_schema, ec);
    CHECK_FALSE(ec);
    CHECK(schema.at("properties").as_object().contains("rules"));
}

TEST_CASE("every config error names the key by JSON pointer and the value in one line") {
    struct Case {
        const char* config;
        const char* pointer;
        const char* message;
    };
    // One valid rule to embed where the error is elsewhere.
    const Case cases[] = {
        {"[1]", "", "expected an object, got [1]"},
        {"{}", "", "config has no \"rules\""},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"]}],"extra":1})", "/extra", "unknown key \"extra\""},
        {R"({"a/b~":1})", "/a~1b~0", "unknown key \"a/b~\""},
        {R"({"action":"allow","rules":[{"cidrs":["10.0.0.0/8"]}]})", "/action",
         "unknown action \"allow\" (expected accept or deny)"},
        {R"({"action":1,"rules":[{"cidrs":["10.0.0.0/8"]}]})", "/action", "expected a string, got 1"},
        {R"({"rules":{}})", "/rules", "expected an array, got {}"},
        {R"({"rules":[]})", "/rules", "expected a non-empty array, got []"},
        {R"({"rules":[1]})", "/rules/0", "expected an object, got 1"},
        {R"({"rules":[{}]})", "/rules/0", "rule has no \"cidrs\""},
        {R"({"rules":[{"cidr":["10.0.0.0/8"]}]})", "/rules/0/cidr", "unknown key \"cidr\""},
        {R"({"rules":[{"cidrs":[]}]})", "/rules/0/cidrs", "expected a non-empty array, got []"},
        {R"({"rules":[{"cidrs":"10.0.0.0/8"}]})", "/rules/0/cidrs", "expected an array, got \"10.0.0.0/8\""},
        {R"({"rules":[{"cidrs":["10.0.0.0/8","10.0.0.0/33"]}]})", "/rules/0/cidrs/1", "bad CIDR \"10.0.0.0/33\""},
        {R"({"rules":[{"cidrs":["fd00::/129"]}]})", "/rules/0/cidrs/0", "bad CIDR \"fd00::/129\""},
        {R"({"rules":[{"cidrs":["banana"]}]})", "/rules/0/cidrs/0", "bad CIDR \"banana\""},
        {R"({"rules":[{"cidrs":["10.0.0.1/8"]}]})", "/rules/0/cidrs/0", "CIDR \"10.0.0.1/8\" has host bits set"},
        {R"({"rules":[{"cidrs":[10]}]})", "/rules/0/cidrs/0", "expected a string, got 10"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"]},{"cidrs":["x"]}]})", "/rules/1/cidrs/0", "bad CIDR \"x\""},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"direction":"in"}]})", "/rules/0/direction",
         "unknown direction \"in\" (expected ingress, egress or both)"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"protocols":["GRE"]}]})", "/rules/0/protocols/0",
         "unknown protocol \"GRE\" (expected TCP, UDP, SCTP, ICMP or ICMPv6)"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"protocols":"TCP"}]})", "/rules/0/protocols",
         "expected an array, got \"TCP\""},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"protocols":[]}]})", "/rules/0/protocols",
         "expected a non-empty array, got []"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[53],"protocols":["TCP","ICMP"]}]})", "/rules/0/protocols/1",
         "protocol \"ICMP\" has no ports, but the rule lists \"ports\""},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[0]}]})", "/rules/0/ports/0", "port 0 is out of range 1..65535"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[65536]}]})", "/rules/0/ports/0",
         "port 65536 is out of range 1..65535"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[-1]}]})", "/rules/0/ports/0",
         "port -1 is out of range 1..65535"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[18446744073709551615]}]})", "/rules/0/ports/0",
         "port 18446744073709551615 is out of range 1..65535"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[53,"100-70000"]}]})", "/rules/0/ports/1",
         "port 70000 is out of range 1..65535"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":["8100-8000"]}]})", "/rules/0/ports/0",
         "port range \"8100-8000\" is reversed"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":["80-"]}]})", "/rules/0/ports/0", "bad port range \"80-\""},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":["+80"]}]})", "/rules/0/ports/0", "bad port range \"+80\""},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[true]}]})", "/rules/0/ports/0",
         "expected a port number or a \"first-last\" string, got true"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[53.0]}]})", "/rules/0/ports/0",
         "expected a port number or a \"first-last\" string, got 5.3E1"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"name":""}]})", "/rules/0/name", "rule name must not be empty"},
        {R"({"rules":[{"cidrs":["10.0.0.0/8"],"name":5}]})", "/rules/0/name", "expected a string, got 5"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.config);
        knp::testing::Status s = initStatus(c.config);
        CHECK(s.rc == -EINVAL);
        CHECK(s.pointer == c.pointer);
        CHECK(s.message == c.message);
    }

    knp::testing::Status bad = initStatus("{");
    CHECK(bad.rc == -EINVAL);
    CHECK(bad.pointer == "");
    CHECK(bad.message.rfind("config is not valid JSON: ", 0) == 0);

    // Limits: every user-controlled size is bounded.
    std::string many = R"({"rules":[{"cidrs":[)";
    for (int i = 0; i < 1025; ++i) many += std::string(i ? "," : "") + "\"10.0.0.0/8\"";
    many += "]}]}";
    knp::testing::Status big = initStatus(many);
    CHECK(big.pointer == "/rules/0/cidrs");
    CHECK(big.message == "has 1025 entries, the limit is 1024");
}

TEST_CASE("the remote peer is the destination for egress and the source for ingress") {
    auto h = load(R"({"rules":[{"name":"net10","cidrs":["10.0.0.0/8"]}]})");
    CHECK(h->host().logged("loaded 1 rule, action accept", KNP_LOG_INFO));
    knp_packet out = makePacket("192.168.1.1", "10.1.2.3", KNP_PROTO_TCP, 443);
    knp_packet in = makePacket("10.1.2.3", "192.168.1.1", KNP_PROTO_TCP, 443);

    auto e = h->evaluateEgress(out);
    CHECK(e.rc == 0);
    CHECK(e.verdict == Verdict::Accept);
    CHECK(e.reason == "allowlist rule \"net10\" (10.0.0.0/8)");
    CHECK(e.rule == "net10");
    CHECK(h->evaluateIngress(out).verdict == Verdict::Next);  // source 192.168.1.1 is the peer
    CHECK(h->evaluateIngress(in).verdict == Verdict::Accept);
    CHECK(h->evaluateEgress(in).verdict == Verdict::Next);

    // The pods at either end do not matter: only addresses do.
    auto pod = OwnedPod("shop", "web").ip("192.168.1.1");
    CHECK(h->evaluateEgress(out, pod.get(), nullptr).verdict == Verdict::Accept);
}

TEST_CASE("direction limits a rule to ingress or egress") {
    auto h = load(R"({"rules":[{"cidrs":["10.0.0.0/8"],"direction":"ingress"},
                               {"cidrs":["172.16.0.0/12"],"direction":"egress"}]})");
    CHECK(h->evaluateIngress(makePacket("10.0.0.1", "192.168.0.1", KNP_PROTO_UDP, 53)).verdict == Verdict::Accept);
    CHECK(h->evaluateEgress(makePacket("192.168.0.1", "10.0.0.1", KNP_PROTO_UDP, 53)).verdict == Verdict::Next);
    auto e = h->evaluateEgress(makePacket("192.168.0.1", "172.16.5.5", KNP_PROTO_UDP, 53));
    CHECK(e.verdict == Verdict::Accept);
    CHECK(e.reason == "allowlist rule #1 (172.16.0.0/12)");  // unnamed: its index
    CHECK(e.rule == "#1");
    CHECK(h->evaluateIngress(makePacket("172.16.5.5", "192.168.0.1", KNP_PROTO_UDP, 53)).verdict == Verdict::Next);
}

TEST_CASE("IPv4 and IPv6 prefixes; families never cross") {
    auto h = load(R"({"rules":[{"name":"v6","cidrs":["fd00::/64"]},{"name":"v4all","cidrs":["0.0.0.0/0"]},
                               {"name":"host","cidrs":["2001:db8::1"]}]})");
    auto in6 = h->evaluateEgress(makePacket("fd00:1::1", "fd00::abcd", KNP_PROTO_TCP, 80));
    CHECK(in6.verdict == Verdict::Accept);
    CHECK(in6.reason == "allowlist rule \"v6\" (fd00::/64)");
    CHECK(h->evaluateEgress(makePacket("fd00::1", "fd00:0:0:1::1", KNP_PROTO_TCP, 80)).verdict == Verdict::Next);
    // 0.0.0.0/0 is every IPv4 address and no IPv6 one (not even ::ffff:0:0/96 spelled as IPv6).
    CHECK(h->evaluateEgress(makePacket("fd00::1", "2001:db8::2", KNP_PROTO_TCP, 80)).verdict == Verdict::Next);
    CHECK(h->evaluateEgress(makePacket("fd00::1", "::ffff:1.2.3.4", KNP_PROTO_TCP, 80)).verdict == Verdict::Next);
    CHECK(h->evaluateEgress(makePacket("10.0.0.1", "1.2.3.4", KNP_PROTO_TCP, 80)).rule == "v4all");
    // A bare address is a host prefix.
    auto host = h->evaluateEgress(makePacket("fd00::1", "2001:db8::1", KNP_PROTO_TCP, 80));
    CHECK(host.rule == "host");
    CHECK(host.reason == "allowlist rule \"host\" (2001:db8::1/128)");

    auto v6only = load(R"({"rules":[{"cidrs":["::/0"]}]})");
    CHECK(v6only->evaluateEgress(makePacket("10.0.0.1", "1.2.3.4", KNP_PROTO_TCP, 80)).verdict == Verdict::Next);
}

TEST_CASE("ports, ranges and protocols, SCTP and ICMP included") {
    auto h = load(R"({"rules":[
        {"name":"dns","cidrs":["10.0.0.0/8"],"protocols":["udp","TCP"],"ports":[53]},
        {"name":"web","cidrs":["10.0.0.0/8"],"ports":["8000-8100","443"]},
        {"name":"ping","cidrs":["10.0.0.0/8"],"protocols":["ICMP"]},
        {"name":"ping6","cidrs":["fd00::/64"],"protocols":["icmpv6"]},
        {"name":"any","cidrs":["192.168.0.0/16"]}]})");
    auto egress = [&](std::string_view dst, uint8_t proto, uint16_t port) {
        std::string src = dst.find(':') != std::string_view::npos ? "fd00::99" : "172.16.0.1";
        return h->evaluateEgress(makePacket(src, dst, proto, port)).rule;
    };
    CHECK(egress("10.0.0.1", KNP_PROTO_UDP, 53) == "dns");  // protocols are case-insensitive
    CHECK(egress("10.0.0.1", KNP_PROTO_TCP, 53) == "dns");
    CHECK(egress("10.0.0.1", KNP_PROTO_SCTP, 53) == "");  // not in dns's protocols, not in web's ports
    CHECK(egress("10.0.0.1", KNP_PROTO_TCP, 54) == "");
    CHECK(egress("10.0.0.1", KNP_PROTO_TCP, 7999) == "");
    CHECK(egress("10.0.0.1", KNP_PROTO_TCP, 8000) == "web");
    CHECK(egress("10.0.0.1", KNP_PROTO_UDP, 8100) == "web");
    CHECK(egress("10.0.0.1", KNP_PROTO_SCTP, 8050) == "web");  // ports without protocols: TCP/UDP/SCTP
    CHECK(egress("10.0.0.1", KNP_PROTO_TCP, 8101) == "");
    CHECK(egress("10.0.0.1", KNP_PROTO_TCP, 443) == "web");
    CHECK(egress("10.0.0.1", KNP_PROTO_ICMP, 0) == "ping");  // web has ports: never ICMP
    CHECK(egress("10.0.0.1", 47, 0) == "");                  // GRE: no rule for 10/8 allows it
    CHECK(egress("fd00::1", KNP_PROTO_ICMPV6, 0) == "ping6");
    CHECK(egress("fd00::1", KNP_PROTO_ICMP, 0) == "");  // ICMPv6 is not ICMP
    CHECK(egress("192.168.3.3", 47, 0) == "any");       // no protocols, no ports: everything
    CHECK(egress("192.168.3.3", KNP_PROTO_SCTP, 9) == "any");

    auto sctp = load(R"({"rules":[{"name":"sig","cidrs":["10.0.0.0/8"],"protocols":["SCTP"],"ports":["3868-3869"]}]})");
    CHECK(sctp->evaluateIngress(makePacket("10.0.0.1", "10.9.9.9", KNP_PROTO_SCTP, 3869)).rule == "sig");
    CHECK(sctp->evaluateIngress(makePacket("10.0.0.1", "10.9.9.9", KNP_PROTO_TCP, 3869)).rule == "");
}

TEST_CASE("the first matching rule decides; deny mode denies") {
    auto h = load(R"({"action":"deny","rules":[{"name":"narrow","cidrs":["203.0.113.0/25"],"ports":[22]},
                                               {"name":"wide","cidrs":["203.0.113.0/24"]}]})");
    CHECK(h->host().logged("loaded 2 rules, action deny"));
    auto a = h->evaluateEgress(makePacket("10.0.0.1", "203.0.113.5", KNP_PROTO_TCP, 22));
    CHECK(a.verdict == Verdict::Deny);
    CHECK(a.rule == "narrow");
    CHECK(h->evaluateEgress(makePacket("10.0.0.1", "203.0.113.5", KNP_PROTO_TCP, 23)).rule == "wide");
    CHECK(h->evaluateEgress(makePacket("10.0.0.1", "198.51.100.1", KNP_PROTO_TCP, 22)).verdict == Verdict::Next);
}

TEST_CASE("the peer index agrees with a plain scan over random nested and overlapping rules") {
    // The plugin indexes rules by CIDR; this reference scans them in order. Random configs
    // with nested prefixes (/0 to /32, /128), both families and port filters must agree on
    // every packet, including which rule decided.
    std::mt19937 rng(7);
    struct RefRule {
        std::string name;
        std::vector<knp_cidr> cidrs;
        uint16_t port;  // 0 = every port
    };
    auto v4 = [&](unsigned len) {
        knp_cidr c = *knp::parseCidr("10.0.0.0/8");
        uint32_t a = 0x0a000000u | (rng() & 0x0003ffffu);
        c.addr.bytes[12] = static_cast<uint8_t>(a >> 24);
        c.addr.bytes[13] = static_cast<uint8_t>(a >> 16);
        c.addr.bytes[14] = static_cast<uint8_t>(a >> 8);
        c.addr.bytes[15] = static_cast<uint8_t>(a);
        std::string text = knp::formatAddr(c.addr) + "/" + std::to_string(len);
        return *knp::parseCidr(text, true);
    };
    for (int round = 0; round < 20; ++round) {
        std::vector<RefRule> ref;
        std::string cfg = R"({"action":"deny","rules":[)";
        int n = 1 + static_cast<int>(rng() % 40);
        for (int i = 0; i < n; ++i) {
            RefRule r{"r" + std::to_string(i), {}, static_cast<uint16_t>(rng() % 3 == 0 ? 80 + rng() % 2 : 0)};
            int k = 1 + static_cast<int>(rng() % 3);
            for (int j = 0; j < k; ++j) {
                static const unsigned lens[] = {0, 8, 14, 16, 20, 24, 28, 32};
                if (rng() % 8 == 0) {
                    r.cidrs.push_back(*knp::parseCidr(rng() % 2 ? "fd00::/8" : "fd00:0:0:1::/64"));
                } else {
                    r.cidrs.push_back(v4(lens[rng() % 8]));
                }
            }
            cfg += std::string(i ? "," : "") + R"({"name":")" + r.name + R"(","cidrs":[)";
            for (size_t j = 0; j < r.cidrs.size(); ++j)
                cfg += std::string(j ? "," : "") + "\"" + knp::formatCidr(r.cidrs[j]) + "\"";
            cfg += "]";
            if (r.port != 0) cfg += R"(,"ports":[)" + std::to_string(r.port) + "]";
            cfg += "}";
            ref.push_back(std::move(r));
        }
        cfg += "]}";
        auto h = load(cfg);
        for (int t = 0; t < 400; ++t) {
            knp_cidr probe = v4(32);
            std::string dst = rng() % 10 == 0 ? "fd00::1:2" : knp::formatAddr(probe.addr);
            uint16_t port = static_cast<uint16_t>(80 + rng() % 3);
            const char* src = dst.find(':') != std::string::npos ? "fd00:9::1" : "192.168.0.1";
            auto got = h->evaluateEgress(makePacket(src, dst.c_str(), KNP_PROTO_TCP, port));
            std::string want;
            knp_addr peer = *knp::parseAddr(dst);
            for (const RefRule& r : ref) {
                if (r.port != 0 && r.port != port) continue;
                if (std::any_of(r.cidrs.begin(), r.cidrs.end(),
                                [&](const knp_cidr& c) { return knp::cidrContains(c, peer); })) {
                    want = r.name;
                    break;
                }
            }
            CAPTURE(cfg);
            CAPTURE(dst);
            CAPTURE(port);
            CHECK(std::string(got.rule) == want);
            CHECK(got.verdict == (want.empty() ? Verdict::Next : Verdict::Deny));
        }
    }
}

TEST_CASE("interest: none in accept mode; peers, protocols and ports in deny mode") {
    auto accept = load(R"({"rules":[{"cidrs":["10.0.0.0/8"],"ports":[53]}]})");
    CHECK_FALSE(accept->ingressInterest());
    CHECK_FALSE(accept->egressInterest());

    auto deny = load(R"({"action":"deny","rules":[
        {"cidrs":["10.0.0.0/8","fd00::/64"],"direction":"egress","protocols":["TCP"],"ports":[53,"8000-8100"]},
        {"cidrs":["198.51.100.0/24"],"direction":"egress","protocols":["ICMP"]},
        {"cidrs":["192.168.0.0/16"],"direction":"ingress","protocols":["UDP"]},
        {"cidrs":["203.0.113.0/24"],"direction":"ingress","ports":[22]}]})");
    auto eg = deny->egressInterest();
    REQUIRE(eg);
    CHECK_FALSE(eg->divertAll);
    CHECK(eg->local.empty());
    CHECK(cidrs(eg->remote) == std::vector<std::string>{"10.0.0.0/8", "fd00::/64", "198.51.100.0/24"});
    CHECK(eg->protocols == (KNP_PROTO_BIT_TCP | KNP_PROTO_BIT_ICMP));
    // ICMP carries no ports, so the portless ICMP rule leaves the port filter in place.
    CHECK(ports(eg->dstPorts) == std::vector<std::string>{"53", "8000-8100"});

    auto in = deny->ingressInterest();
    REQUIRE(in);
    CHECK(cidrs(in->remote) == std::vector<std::string>{"192.168.0.0/16", "203.0.113.0/24"});
    // Ports without protocols mean TCP/UDP/SCTP; the portless UDP rule takes every port.
    CHECK(in->protocols == (KNP_PROTO_BIT_UDP | KNP_PROTO_BIT_TCP | KNP_PROTO_BIT_SCTP));
    CHECK(in->dstPorts.empty());

    auto all = load(R"({"action":"deny","rules":[{"cidrs":["10.0.0.0/8"],"ports":[22]},{"cidrs":["fd00::/8"]}]})");
    for (const auto& d : {all->ingressInterest(), all->egressInterest()}) {
        REQUIRE(d);
        CHECK(d->protocols == 0);  // the second rule allows every protocol
        CHECK(d->dstPorts.empty());
        CHECK(d->remote.size() == 2);
    }
}

TEST_CASE("one snapshot for the instance's life: later updates say unchanged") {
    auto h = load(R"({"rules":[{"cidrs":["10.0.0.0/8"]}]})");
    CHECK(h->watches().empty());
    auto u = h->update(true);
    CHECK(u.ok());
    CHECK_FALSE(u.newSnapshot);
    CHECK(h->snapshotsReleased() == 0);
    CHECK(h->evaluateEgress(makePacket("10.0.0.1", "10.0.0.2", KNP_PROTO_TCP, 1)).verdict == Verdict::Accept);
    CHECK(h->host().violations().empty());
}

TEST_CASE("evaluation allocates nothing and is safe from many threads") {
    auto h = load(R"({"action":"deny","rules":[{"name":"a","cidrs":["10.0.0.0/8","fd00::/64"],"ports":["1-1000"]},
                                               {"name":"b","cidrs":["192.168.0.0/16"],"protocols":["ICMP"]}]})");
    const knp_plugin_descriptor& d = h->descriptor();
    const knp_packet packets[] = {
        makePacket("172.16.0.1", "10.1.1.1", KNP_PROTO_TCP, 80),  // rule a
        makePacket("fd01::1", "fd00::1", KNP_PROTO_UDP, 2000),    // no match: port
        makePacket("172.16.0.1", "192.168.1.1", KNP_PROTO_ICMP),  // rule b
    };
    const int32_t expected[] = {KNP_VERDICT_DENY, KNP_VERDICT_NEXT, KNP_VERDICT_DENY};

    // Raw calls, so the count is the plugin's alone (the harness copies strings out).
    auto run = [&](int rounds) {
        int wrong = 0;
        for (int i = 0; i < rounds; ++i) {
            for (size_t k = 0; k < 3; ++k) {
                knp_eval_args args{sizeof(knp_eval_args), 0, &packets[k], nullptr, nullptr};
                knp_eval_result out{};
                out.struct_size = sizeof out;
                if (d.evaluate_egress(h->snapshot(), &args, &out) != 0 || out.verdict != expected[k]) ++wrong;
            }
        }
        return wrong;
    };
    tAllocations = 0;
    CHECK(run(100) == 0);
    CHECK(tAllocations == 0);

    std::vector<std::thread> threads;
    std::vector<int> wrong(4, -1);
    for (size_t t = 0; t < wrong.size(); ++t) threads.emplace_back([&, t] { wrong[t] = run(20000); });
    for (auto& t : threads) t.join();
    CHECK(wrong == std::vector<int>(4, 0));
}
