// The union of interests as sets: merging, groups by filter, LOCAL_PODS and divert-all.
#include <doctest/doctest.h>
#include <knp/types.hpp>

#include "dataplane/ruleset.hpp"

using namespace knp::host;

namespace {
knp_cidr cidr(const char* s) { return *knp::parseCidr(s); }
KeyRange v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t e, uint8_t f, uint8_t g, uint8_t h) {
    KeyRange r;
    r.first = {a, b, c, d};
    r.last = {e, f, g, h};
    return r;
}
}  // namespace

TEST_CASE("ranges merge when they overlap or touch, and stay apart otherwise") {
    auto m = mergeRanges({v4(10, 0, 0, 5, 10, 0, 0, 5), v4(10, 0, 0, 0, 10, 0, 0, 3), v4(10, 0, 0, 4, 10, 0, 0, 4),
                          v4(10, 0, 1, 0, 10, 0, 1, 255)},
                         4);
    REQUIRE(m.size() == 2);
    CHECK(m[0] == v4(10, 0, 0, 0, 10, 0, 0, 5));
    CHECK(m[1] == v4(10, 0, 1, 0, 10, 0, 1, 255));
    // The top of the key space does not overflow.
    auto top = mergeRanges({v4(255, 255, 255, 0, 255, 255, 255, 255), v4(0, 0, 0, 0, 255, 255, 255, 255)}, 4);
    REQUIRE(top.size() == 1);
}

TEST_CASE("interests with the same filter share a group; others get their own") {
    InterestSet a, b, c;
    a.ingress.local = {cidr("10.0.0.1/32")};
    b.egress.local = {cidr("10.0.0.2/32")};
    c.egress.remote = {cidr("192.0.2.0/24"), cidr("192.0.2.128/25")};
    c.egress.protocols = KNP_PROTO_BIT_UDP;
    c.egress.dstPorts = {{53, 53}};
    auto d = desiredRuleset({&a, &b, &c}, {});
    REQUIRE(d.groups.size() == 2);
    CHECK(d.sets.at("g0-ingress-local-v4").second.size() == 1);
    CHECK(d.sets.at("g0-egress-local-v4").second.size() == 1);
    CHECK(d.sets.at("g1-egress-remote-v4").second.size() == 1);  // merged: the /25 is inside
    CHECK(d.sets.at("g1-ports").second.size() == 1);
    CHECK(d.sets.count("g0-ports") == 0);
    CHECK(d.sets.size() == 8 + 8 + 1);
}

TEST_CASE("divert-all and LOCAL_PODS become addresses") {
    InterestSet all, pods;
    all.egress.divertAll = true;
    pods.ingress.localPods = true;
    auto d = desiredRuleset({&all, &pods}, {*knp::parseAddr("10.0.0.7"), *knp::parseAddr("fd00::7")});
    REQUIRE(d.groups.size() == 1);
    const auto& v4all = d.sets.at("g0-egress-local-v4").second;
    REQUIRE(v4all.size() == 1);
    CHECK(v4all[0] == v4(0, 0, 0, 0, 255, 255, 255, 255));
    CHECK(d.sets.at("g0-egress-local-v6").second.size() == 1);
    CHECK(d.sets.at("g0-ingress-local-v4").second.size() == 1);
    CHECK(d.sets.at("g0-ingress-local-v6").second.size() == 1);
    CHECK(d.sets.at("g0-ingress-remote-v4").second.empty());
}
