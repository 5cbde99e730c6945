// tests/networkpolicy: plugins/common — label selectors, ports and named ports, CIDR sets, id
// sets, the IP hash map and copy-on-write vectors, tested directly (no plugin, no ABI).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <knp/types.hpp>

#include <boost/json.hpp>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "common/addr_map.hpp"
#include "common/cidr_set.hpp"
#include "common/cow_vector.hpp"
#include "common/id_set.hpp"
#include "common/json_util.hpp"
#include "common/label_selector.hpp"
#include "common/ports.hpp"

using knp::policy::AddrMap;
using knp::policy::CidrSet;
using knp::policy::IdSet;
using knp::policy::JsonError;
using knp::policy::LabelSelector;
using knp::policy::PortSet;
using knp::policy::PortSpec;

namespace {

// Sorted labels as the host hands them out; the map owns the text.
struct Labels {
    explicit Labels(std::map<std::string, std::string> m) : store(std::move(m)) {
        for (const auto& [k, v] : store) view.push_back({knp::toC(k), knp::toC(v)});
    }
    std::map<std::string, std::string> store;
    std::vector<knp_label> view;
};

LabelSelector selector(std::string_view json) { return LabelSelector::parse(boost::json::parse(json), "/sel"); }

bool matches(std::string_view sel, std::map<std::string, std::string> labels) {
    Labels l(std::move(labels));
    return selector(sel).matches(l.view);
}

// The pointer of the JsonError that parsing `json` throws ("" when it does not throw).
std::string selectorError(std::string_view json) {
    try {
        selector(json);
    } catch (const JsonError& e) {
        return e.pointer();
    }
    return "";
}

knp_addr ip(std::string_view s) { return *knp::parseAddr(s); }
knp_cidr cidr(std::string_view s) { return *knp::parseCidr(s); }

knp_container_port containerPort(const char* name, uint16_t port, uint8_t proto) {
    knp_container_port p{};
    p.name = knp::toC(name);
    p.port = port;
    p.protocol = proto;
    return p;
}

}  // namespace

TEST_CASE("label selectors: matchLabels and every operator") {
    CHECK(matches("{}", {}));
    CHECK(matches("{}", {{"a", "1"}}));
    CHECK(matches(R"({"matchLabels": {"app": "web"}})", {{"app", "web"}, {"tier", "x"}}));
    CHECK_FALSE(matches(R"({"matchLabels": {"app": "web"}})", {{"app", "db"}}));
    CHECK_FALSE(matches(R"({"matchLabels": {"app": "web"}})", {}));
    // matchLabels and matchExpressions are ANDed.
    const char* both = R"({"matchLabels": {"app": "web"},
                           "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]}]})";
    CHECK(matches(both, {{"app", "web"}, {"tier", "b"}}));
    CHECK_FALSE(matches(both, {{"app", "web"}, {"tier", "c"}}));
    CHECK_FALSE(matches(both, {{"app", "web"}}));

    const char* notIn = R"({"matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]})";
    CHECK(matches(notIn, {{"env", "dev"}}));
    CHECK(matches(notIn, {}));  // NotIn matches objects without the key
    CHECK_FALSE(matches(notIn, {{"env", "prod"}}));

    CHECK(matches(R"({"matchExpressions": [{"key": "k", "operator": "Exists"}]})", {{"k", ""}}));
    CHECK_FALSE(matches(R"({"matchExpressions": [{"key": "k", "operator": "Exists"}]})", {{"j", "1"}}));
    CHECK(matches(R"({"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]})", {{"j", "1"}}));
    CHECK_FALSE(matches(R"({"matchExpressions": [{"key": "k", "operator": "DoesNotExist"}]})", {{"k", "1"}}));

    // Many values: binary search over the sorted values.
    std::string many = R"({"matchExpressions": [{"key": "n", "operator": "In", "values": [)";
    for (int i = 0; i < 100; ++i) many += (i ? ",\"" : "\"") + std::to_string(i) + "\"";
    many += "]}]}";
    CHECK(matches(many, {{"n", "57"}}));
    CHECK_FALSE(matches(many, {{"n", "570"}}));
}

TEST_CASE("label selectors: canonical text ignores order and duplicates") {
    auto a = selector(R"({"matchLabels": {"b": "2", "a": "1"},
                          "matchExpressions": [{"key": "c", "operator": "In", "values": ["y", "x", "x"]}]})");
    auto b = selector(R"({"matchExpressions": [{"key": "c", "operator": "In", "values": ["x", "y"]},
                                              {"key": "a", "operator": "In", "values": ["1"]}],
                          "matchLabels": {"b": "2"}})");
    CHECK(a.canonical() == b.canonical());
    CHECK(a.canonical() == "a In (1);b In (2);c In (x,y)");
    CHECK(selector("{}").canonical().empty());
    CHECK(selector(R"({"matchLabels": null})").matchesEverything());
}

TEST_CASE("label selectors: validation names the field") {
    CHECK(selectorError(R"({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["1"]}]})") ==
          "/sel/matchExpressions/0/operator");
    CHECK(selectorError(R"({"matchExpressions": [{"key": "a", "operator": "In"}]})") ==
          "/sel/matchExpressions/0/values");
    CHECK(selectorError(R"({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["1"]}]})") ==
          "/sel/matchExpressions/0/values");
    CHECK(selectorError(R"({"matchExpressions": [{"operator": "Exists"}]})") == "/sel/matchExpressions/0/key");
    CHECK(selectorError(R"({"matchLabels": {"bad key": "1"}})") == "/sel/matchLabels/bad key");
    CHECK(selectorError(R"({"matchLabels": {"a": "-bad"}})") == "/sel/matchLabels/a");
    CHECK(selectorError(R"({"matchLabels": {"a": 1}})") == "/sel/matchLabels/a");
    CHECK(selectorError(R"({"matchLabels": []})") == "/sel/matchLabels");
    CHECK(selectorError("[]") == "/sel");
    CHECK(selectorError(R"({"matchLabels": {"example.com/app": "web", "kubernetes.io/metadata.name": "x"}})").empty());

    CHECK(knp::policy::validLabelKey("app"));
    CHECK(knp::policy::validLabelKey("app.kubernetes.io/name"));
    CHECK_FALSE(knp::policy::validLabelKey("/app"));
    CHECK_FALSE(knp::policy::validLabelKey("Example.com/app"));
    CHECK_FALSE(knp::policy::validLabelKey("a/b/c"));
    CHECK_FALSE(knp::policy::validLabelKey(std::string(64, 'a')));
    CHECK(knp::policy::validLabelValue(""));
    CHECK(knp::policy::validLabelValue("v1.2_x-y"));
    CHECK_FALSE(knp::policy::validLabelValue("x-"));
}

TEST_CASE("ports: numbers, ranges, whole protocols") {
    std::vector<PortSpec> specs{{KNP_PROTO_TCP, 80, 80, ""},
                                {KNP_PROTO_TCP, 8000, 8100, ""},
                                {KNP_PROTO_UDP, 1, 65535, ""},
                                {KNP_PROTO_SCTP, 81, 81, ""}};
    PortSet s = PortSet::of(specs);
    CHECK(s.matches(KNP_PROTO_TCP, 80, {}));
    CHECK_FALSE(s.matches(KNP_PROTO_TCP, 81, {}));
    CHECK(s.matches(KNP_PROTO_TCP, 8000, {}));
    CHECK(s.matches(KNP_PROTO_TCP, 8100, {}));
    CHECK_FALSE(s.matches(KNP_PROTO_TCP, 8101, {}));
    CHECK(s.matches(KNP_PROTO_UDP, 53, {}));
    CHECK(s.matches(KNP_PROTO_SCTP, 81, {}));
    CHECK_FALSE(s.matches(KNP_PROTO_SCTP, 80, {}));
    CHECK_FALSE(s.matches(KNP_PROTO_ICMP, 0, {}));  // entries are per protocol; ICMP has none

    CHECK(PortSet::all().matches(KNP_PROTO_ICMP, 0, {}));
    CHECK_FALSE(PortSet::of({}).matches(KNP_PROTO_TCP, 80, {}));

    // Overlapping and adjacent ranges merge without losing anything.
    std::vector<PortSpec> overlap{{KNP_PROTO_TCP, 10, 20, ""},
                                  {KNP_PROTO_TCP, 15, 30, ""},
                                  {KNP_PROTO_TCP, 31, 31, ""},
                                  {KNP_PROTO_TCP, 5, 5, ""}};
    PortSet o = PortSet::of(overlap);
    for (uint16_t p : {5, 10, 20, 25, 30, 31}) CHECK(o.matches(KNP_PROTO_TCP, p, {}));
    for (uint16_t p : {4, 6, 9, 32}) CHECK_FALSE(o.matches(KNP_PROTO_TCP, p, {}));
}

TEST_CASE("ports: named ports resolve on the destination pod's container ports") {
    std::vector<PortSpec> specs{{KNP_PROTO_TCP, 1, 65535, "web"}, {KNP_PROTO_UDP, 1, 65535, "dns"}};
    PortSet s = PortSet::of(specs);
    std::vector<knp_container_port> podA{containerPort("web", 8080, KNP_PROTO_TCP),
                                         containerPort("dns", 53, KNP_PROTO_UDP)};
    std::vector<knp_container_port> podB{containerPort("web", 9090, KNP_PROTO_TCP),
                                         containerPort("dns", 53, KNP_PROTO_TCP)};
    CHECK(s.matches(KNP_PROTO_TCP, 8080, podA));
    CHECK_FALSE(s.matches(KNP_PROTO_TCP, 9090, podA));  // per pod, never the union
    CHECK(s.matches(KNP_PROTO_TCP, 9090, podB));
    CHECK(s.matches(KNP_PROTO_UDP, 53, podA));
    CHECK_FALSE(s.matches(KNP_PROTO_UDP, 53, podB));  // podB's dns is TCP: name, number AND protocol
    CHECK_FALSE(s.matches(KNP_PROTO_TCP, 53, podB));  // the rule asks for dns over UDP
    CHECK_FALSE(s.matches(KNP_PROTO_TCP, 8080, {}));  // not a pod: no named ports

    CHECK(knp::policy::validPortName("serve-80-tcp"));
    CHECK(knp::policy::validPortName("http"));
    CHECK_FALSE(knp::policy::validPortName("80"));  // needs a letter
    CHECK_FALSE(knp::policy::validPortName("a--b"));
    CHECK_FALSE(knp::policy::validPortName("-ab"));
    CHECK_FALSE(knp::policy::validPortName("Http"));
    CHECK_FALSE(knp::policy::validPortName("abcdefghijklmnop"));  // 16 characters
}

TEST_CASE("CIDR sets: blocks minus their own exceptions, unioned, per family") {
    knp::policy::IpBlock b1{cidr("10.0.0.0/8"), {cidr("10.1.0.0/16"), cidr("10.2.3.0/24")}};
    knp::policy::IpBlock b2{cidr("10.1.2.0/24"), {}};
    knp::policy::IpBlock b6{cidr("fd00::/16"), {cidr("fd00:1::/32")}};
    std::vector<knp::policy::IpBlock> blocks{b1, b2, b6};
    CidrSet s = CidrSet::of(blocks);
    CHECK(s.contains(ip("10.0.0.1")));
    CHECK(s.contains(ip("10.255.255.255")));
    CHECK_FALSE(s.contains(ip("10.1.0.1")));
    CHECK(s.contains(ip("10.1.2.3")));  // excepted by b1 but held by b2
    CHECK_FALSE(s.contains(ip("10.2.3.4")));
    CHECK(s.contains(ip("10.2.4.0")));
    CHECK_FALSE(s.contains(ip("11.0.0.0")));
    CHECK_FALSE(s.contains(ip("9.255.255.255")));
    CHECK(s.contains(ip("fd00:2::1")));
    CHECK_FALSE(s.contains(ip("fd00:1::1")));
    CHECK_FALSE(s.contains(ip("::ffff:10.0.0.1")));  // an IPv4-mapped IPv6 address is IPv6

    std::vector<knp::policy::IpBlock> all{{cidr("0.0.0.0/0"), {cidr("0.0.0.0/1")}}, {cidr("::/0"), {}}};
    CidrSet a = CidrSet::of(all);
    CHECK(a.contains(ip("255.255.255.255")));
    CHECK(a.contains(ip("128.0.0.0")));
    CHECK_FALSE(a.contains(ip("127.255.255.255")));
    CHECK(a.contains(ip("::")));
    CHECK(a.contains(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")));
    CHECK(CidrSet().empty());

    // An exception covering the whole block leaves nothing.
    std::vector<knp::policy::IpBlock> none{{cidr("10.0.0.0/24"), {cidr("10.0.0.0/25"), cidr("10.0.0.128/25")}}};
    CidrSet n = CidrSet::of(none);
    CHECK_FALSE(n.contains(ip("10.0.0.0")));
    CHECK_FALSE(n.contains(ip("10.0.0.255")));

    CHECK(knp::policy::parseKubeCidr("10.0.0.1/8"));  // host bits allowed, like the API server
    CHECK_FALSE(knp::policy::parseKubeCidr("10.0.0.1"));
    CHECK(knp::policy::strictSubset(cidr("10.1.0.0/16"), cidr("10.0.0.0/8")));
    CHECK_FALSE(knp::policy::strictSubset(cidr("10.0.0.0/8"), cidr("10.0.0.0/8")));
    CHECK_FALSE(knp::policy::strictSubset(cidr("192.168.0.0/16"), cidr("10.0.0.0/8")));
    CHECK_FALSE(knp::policy::strictSubset(cidr("fd00::/64"), cidr("10.0.0.0/8")));
}

TEST_CASE("id sets: sparse and dense forms agree") {
    std::mt19937 rng(7);
    for (uint32_t universe : {10u, 1000u, 100000u}) {
        for (size_t n : {size_t(0), size_t(3), size_t(universe / 40), size_t(universe / 2)}) {
            std::vector<uint32_t> ids;
            for (uint32_t i = 0; i < universe; ++i)
                if (rng() % universe < n) ids.push_back(i);
            IdSet s = IdSet::fromSorted(ids, universe);
            CHECK(s.size() == ids.size());
            CHECK(s.toVector() == ids);
            for (int k = 0; k < 200; ++k) {
                uint32_t q = static_cast<uint32_t>(rng() % (universe + 10));
                CHECK(s.contains(q) == std::binary_search(ids.begin(), ids.end(), q));
            }
            std::vector<uint32_t> add{universe + 5}, remove;
            if (!ids.empty()) remove.push_back(ids.front());
            IdSet t = s.with(add, remove, universe + 6);
            CHECK(t.contains(universe + 5));
            if (!ids.empty()) CHECK_FALSE(t.contains(ids.front()));
            CHECK(s.size() == ids.size());  // the original is unchanged
        }
    }
}

TEST_CASE("address map: insert, overwrite, erase with backward shift") {
    AddrMap m;
    std::mt19937 rng(3);
    std::map<std::string, uint32_t> ref;
    auto key = [&](uint32_t i) {
        return i % 2 ? "10." + std::to_string(i / 65536 % 256) + "." + std::to_string(i / 256 % 256) + "." +
                           std::to_string(i % 256)
                     : "fd00::" + std::to_string(i % 10000);
    };
    for (int round = 0; round < 20000; ++round) {
        std::string k = key(static_cast<uint32_t>(rng() % 5000));
        if (rng() % 3 == 0) {
            CHECK(m.erase(ip(k)) == (ref.erase(k) == 1));
        } else {
            uint32_t v = static_cast<uint32_t>(rng() % 1000);
            m.set(ip(k), v);
            ref[k] = v;
        }
    }
    CHECK(m.size() == ref.size());
    for (uint32_t i = 0; i < 5000; ++i) {
        auto it = ref.find(key(i));
        CHECK(m.find(ip(key(i))) == (it == ref.end() ? AddrMap::kNone : it->second));
    }
    // The family is part of the key: 10.0.0.1 and ::ffff:10.0.0.1 are different addresses.
    m.set(ip("10.0.0.1"), 1);
    m.set(ip("::ffff:10.0.0.1"), 2);
    CHECK(m.find(ip("10.0.0.1")) == 1);
    CHECK(m.find(ip("::ffff:10.0.0.1")) == 2);
}

TEST_CASE("address map: dense pod networks do not collide") {
    // Pods get consecutive addresses of one /16 (and of one IPv6 /64): the layout that would
    // expose a hash mixing too little.
    AddrMap m;
    const uint32_t n = 100000;
    auto v4 = [](uint32_t i) {
        return "10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) + "." +
               std::to_string(i & 255);
    };
    for (uint32_t i = 0; i < n; ++i) {
        m.set(ip(v4(i)), i);
        m.set(ip("fd00::" + std::to_string(i)), i);
    }
    size_t total = 0, worst = 0;
    for (uint32_t i = 0; i < n; ++i) {
        for (const knp_addr& a : {ip(v4(i)), ip("fd00::" + std::to_string(i))}) {
            size_t p = m.probeLength(a);
            total += p;
            worst = std::max(worst, p);
        }
    }
    CHECK(static_cast<double>(total) / (2.0 * n) < 2.0);  // linear probing at load <= 1/2: ~1.5
    CHECK(worst < 64);
}

TEST_CASE("copy-on-write vectors: a copy never changes afterwards") {
    knp::policy::CowVector<int, 2> v;  // chunks of 4
    v.resize(10);
    for (int i = 0; i < 10; ++i) v.set(i, i);
    knp::policy::CowVector<int, 2> snap = v;
    v.set(1, 100);
    v.resize(13);
    v.set(12, 12);
    CHECK(snap.size() == 10);
    CHECK(snap[1] == 1);
    CHECK(v[1] == 100);
    CHECK(v[12] == 12);
    CHECK(v[5] == 5);
    // Once no copy shares a chunk, writes go in place (and still do not leak into old copies).
    knp::policy::CowVector<int, 2> snap2 = v;
    snap2 = knp::policy::CowVector<int, 2>();
    v.set(2, 200);
    CHECK(snap[2] == 2);
    CHECK(v[2] == 200);
}

TEST_CASE("JSON helpers: integers, limits, null as absent") {
    auto v = boost::json::parse(R"({"a": 80, "b": 80.0, "c": 80.5, "d": "80", "e": null, "f": [1, 2, 3]})");
    const auto& o = v.as_object();
    CHECK(knp::policy::asInt(o.at("a"), "/a", 1, 65535) == 80);
    CHECK(knp::policy::asInt(o.at("b"), "/b", 1, 65535) == 80);
    CHECK_THROWS_AS(knp::policy::asInt(o.at("c"), "/c", 1, 65535), JsonError);
    CHECK_THROWS_AS(knp::policy::asInt(o.at("d"), "/d", 1, 65535), JsonError);
    CHECK_THROWS_AS(knp::policy::asInt(o.at("a"), "/a", 81, 90), JsonError);
    CHECK(knp::policy::member(o, "e") == nullptr);
    CHECK(knp::policy::member(o, "zz") == nullptr);
    CHECK_THROWS_AS(knp::policy::asArray(o.at("f"), "/f", 2), JsonError);
    CHECK_THROWS_AS(knp::policy::parseJson(std::string(100, ' '), 10), JsonError);
    try {
        knp::policy::parseJson("{", 100);
        FAIL("accepted broken JSON");
    } catch (const JsonError& e) {
        CHECK(e.pointer().empty());
    }
}
