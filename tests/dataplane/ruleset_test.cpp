// The ruleset against the real kernel, inside the test's own network namespace.
#include <doctest/doctest.h>
#include <knp/types.hpp>

#include <array>
#include <cstdio>
#include <memory>
#include <string>

#include "dataplane/ruleset.hpp"

using namespace knp::host;

namespace {

std::string sh(const std::string& cmd) {
    std::string out;
    std::unique_ptr<FILE, int (*)(FILE*)> p(popen((cmd + " 2>&1").c_str(), "r"), pclose);
    REQUIRE(p);
    std::array<char, 4096> buf{};
    while (size_t n = fread(buf.data(), 1, buf.size(), p.get())) out.append(buf.data(), n);
    return out;
}

knp_cidr cidr(const char* s) { return *knp::parseCidr(s); }
knp_addr addr(const char* s) { return *knp::parseAddr(s); }

RulesetOptions options() {
    RulesetOptions o;
    o.table = "knp-test";
    o.queueNum = 7;
    return o;
}

}  // namespace

TEST_CASE("the kernel's queue method is detected and the probe leaves nothing behind") {
    auto m = detectQueueMethod();
    if (!m) FAIL(m.error().message);
    MESSAGE("queue method: " << queueMethodName(*m));
    CHECK(sh("nft list tables").find("knp-probe") == std::string::npos);
}

TEST_CASE("install, delta update and removal") {
    auto m = detectQueueMethod();
    REQUIRE(m.ok());
    Ruleset rs(options(), *m);

    InterestSet np;  // a NetworkPolicy-like interest: local pod IPs, everything
    np.ingress.local = {cidr("10.0.0.2/32"), cidr("fd00::2/128")};
    np.egress.local = {cidr("10.0.0.3/32")};
    InterestSet allow;  // an allowlist-like interest: remote CIDRs, TCP/22 only
    allow.egress.remote = {cidr("203.0.113.0/24")};
    allow.egress.protocols = KNP_PROTO_BIT_TCP;
    allow.egress.dstPorts = {{22, 22}};
    InterestSet guard;  // LOCAL_PODS
    guard.ingress.localPods = true;

    auto d1 = desiredRuleset({&np, &allow, &guard}, {addr("10.0.0.9")});
    REQUIRE(d1.groups.size() == 2);
    REQUIRE(rs.apply(d1).ok());
    std::string listing = sh("nft list table inet knp-test");
    INFO(listing);
    CHECK(listing.find("hook postrouting priority srcnat - 5") != std::string::npos);
    CHECK(listing.find("hook input priority 101") != std::string::npos);
    CHECK(listing.find("10.0.0.2") != std::string::npos);
    CHECK(listing.find("10.0.0.9") != std::string::npos);  // from LOCAL_PODS
    CHECK(listing.find("fd00::2") != std::string::npos);
    CHECK(listing.find("203.0.113.0/24") != std::string::npos);
    CHECK(listing.find("queue") != std::string::npos);
    CHECK(listing.find("bypass") != std::string::npos);
    CHECK(rs.fullLoads() == 1);

    // A pod goes, another comes: set deltas only.
    np.ingress.local = {cidr("10.0.0.4/32"), cidr("fd00::2/128")};
    auto d2 = desiredRuleset({&np, &allow, &guard}, {addr("10.0.0.9")});
    REQUIRE(rs.apply(d2).ok());
    CHECK(rs.fullLoads() == 1);
    CHECK(rs.transactions() == 2);
    listing = sh("nft list table inet knp-test");
    CHECK(listing.find("10.0.0.4") != std::string::npos);
    CHECK(listing.find("10.0.0.2") == std::string::npos);

    // Nothing changed: no transaction at all.
    REQUIRE(rs.apply(d2).ok());
    CHECK(rs.transactions() == 2);

    // A new filter shape: a full reload, still one transaction.
    allow.egress.dstPorts = {{22, 23}};
    REQUIRE(rs.apply(desiredRuleset({&np, &allow, &guard}, {})).ok());
    CHECK(rs.fullLoads() == 2);

    // A second ruleset object (a restarted knpd) takes the table over without deleting it.
    Ruleset again(options(), *m);
    REQUIRE(again.apply(d2).ok());
    listing = sh("nft list table inet knp-test");
    CHECK(listing.find("10.0.0.4") != std::string::npos);

    REQUIRE(again.remove().ok());
    CHECK(sh("nft list tables").find("knp-test") == std::string::npos);
}

TEST_CASE("a refused transaction applies nothing and names what was refused") {
    auto m = detectQueueMethod();
    REQUIRE(m.ok());
    Ruleset rs(options(), *m);
    REQUIRE(rs.apply(desiredRuleset({}, {})).ok());
    NftTransaction tx(1 /* NFPROTO_INET */, "knp-test");
    tx.addChain("extra");
    tx.flushSet("no-such-set");
    auto s = tx.commit();
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().message.find("flush set no-such-set") != std::string::npos);
    CHECK(sh("nft list table inet knp-test").find("chain extra") == std::string::npos);
    REQUIRE(rs.remove().ok());
}
