// tests/networkpolicy: the NetworkPolicy plugin, loaded from the built networkpolicy.so
// (KNP_NETWORKPOLICY_SO) and driven only through the C ABI: knp::testing::Harness, plus a raw
// driver where a test must hold several snapshots at once.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <knp/testing.hpp>

#include <boost/json.hpp>

#include <array>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <vector>

#ifndef KNP_NETWORKPOLICY_SO
#error "KNP_NETWORKPOLICY_SO must name the built networkpolicy.so (tests/networkpolicy/meson.build sets it)"
#endif

namespace json = boost::json;
using knp::Verdict;
using knp::testing::Harness;
using knp::testing::makePacket;
using knp::testing::OwnedPod;

#include "../alloc_counter.hpp"

using knp_test::tAllocations;

namespace {

constexpr const char* kSo = KNP_NETWORKPOLICY_SO;

// A pod as the test describes it; pod() turns it into the host's view. Changing a field and
// re-adding the pod to the FakeHost is how a test relabels it.
struct PodDef {
    std::string ns, name, node;
    std::map<std::string, std::string> labels, nsLabels;
    std::vector<std::string> ips;
    std::vector<std::tuple<std::string, uint16_t, uint8_t>> ports;  // name, port, protocol
    bool hostNetwork = false;

    OwnedPod pod() const {
        OwnedPod p(ns, name);
        for (const auto& [k, v] : labels) p.label(k, v);
        for (const auto& [k, v] : nsLabels) p.namespaceLabel(k, v);
        p.node(node);
        int n = node.empty() ? 0 : node.back() - '0';
        p.nodeAddress("192.168.1." + std::to_string(n)).nodeAddress("fd00:192:168:1::" + std::to_string(n));
        for (const auto& [pn, port, proto] : ports) p.containerPort(port, proto, pn);
        for (const auto& ip : ips) p.ip(ip);
        p.hostNetwork(hostNetwork);
        return p;
    }
};

// The e2e model in small: namespaces x, y (labelled ns=<name>), pods a, b in each.
std::vector<PodDef> smallCluster() {
    std::vector<PodDef> pods;
    int i = 0;
    for (std::string ns : {"x", "y"}) {
        for (std::string name : {"a", "b"}) {
            ++i;
            PodDef d;
            d.ns = ns;
            d.name = name;
            d.node = "node-" + std::to_string(name == "a" ? 1 : 2);
            d.labels = {{"pod", name}};
            d.nsLabels = {{"ns", ns}};
            d.ips = {"10.0.0." + std::to_string(i), "fd00::" + std::to_string(i)};
            d.ports = {{"serve-80-tcp", 80, KNP_PROTO_TCP}, {"serve-81-udp", 81, KNP_PROTO_UDP}};
            pods.push_back(d);
        }
    }
    return pods;
}

std::string policyJson(const std::string& ns, const std::string& name, const std::string& spec) {
    return R"({"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy", "metadata": {"name": ")" + name +
           R"(", "namespace": ")" + ns + R"("}, "spec": )" + spec + "}";
}

struct Fixture {
    explicit Fixture(std::vector<PodDef> defs = smallCluster(), std::string node = "node-1") : pods(std::move(defs)) {
        h = std::make_unique<Harness>(std::string(kSo));
        h->host().setNodeName(node);
        for (const PodDef& d : pods) h->host().addPod(d.pod());
        knp::testing::Status s = h->init();
        REQUIRE(s.ok());
    }
    void add(const std::string& ns, const std::string& name, const std::string& spec) {
        h->added(0, policyJson(ns, name, spec), ns, name);
    }
    void modify(const std::string& ns, const std::string& name, const std::string& spec) {
        h->modified(0, policyJson(ns, name, spec), ns, name);
    }
    void remove(const std::string& ns, const std::string& name) { h->deleted(0, policyJson(ns, name, "{}"), ns, name); }
    knp::testing::UpdateStatus update(bool podsChanged = true) {
        auto s = h->update(podsChanged);
        INFO(s.message);
        REQUIRE(s.ok());
        return s;
    }
    PodDef& def(const std::string& key) {
        for (PodDef& d : pods)
            if (d.ns + "/" + d.name == key) return d;
        FAIL("no pod " << key);
        throw;
    }
    // Replaces the host's copy of a pod with its current definition.
    void repost(const std::string& key) {
        PodDef& d = def(key);
        h->host().removePod(d.ns, d.name);
        h->host().addPod(d.pod());
    }
    knp::testing::Evaluation ingress(const std::string& src, const std::string& dst, uint8_t proto, uint16_t port,
                                     bool v6 = false) {
        OwnedPod s = def(src).pod(), d = def(dst).pod();
        return h->evaluateIngress(makePacket(def(src).ips[v6], def(dst).ips[v6], proto, port), s.get(), d.get());
    }
    knp::testing::Evaluation egress(const std::string& src, const std::string& dst, uint8_t proto, uint16_t port) {
        OwnedPod s = def(src).pod(), d = def(dst).pod();
        return h->evaluateEgress(makePacket(def(src).ips[0], def(dst).ips[0], proto, port), s.get(), d.get());
    }
    double misses() const {
        auto m = h->host().metric("networkpolicy_index_misses");
        return m ? m->value : -1;
    }

    std::vector<PodDef> pods;
    std::unique_ptr<Harness> h;
};

std::vector<std::string> localCidrs(const std::optional<knp::DirectionInterest>& d) {
    std::vector<std::string> out;
    if (!d) return out;
    CHECK_FALSE(d->divertAll);
    CHECK_FALSE(d->localPods);
    for (const knp_cidr& c : d->local) out.push_back(knp::formatCidr(c));
    std::sort(out.begin(), out.end());
    return out;
}

}  // namespace

TEST_CASE("descriptor, config and watches") {
    Harness h{std::string(kSo)};
    CHECK(std::string(h.descriptor().name) == "networkpolicy");
    CHECK((h.descriptor().capabilities & (KNP_CAP_INGRESS | KNP_CAP_EGRESS)) == (KNP_CAP_INGRESS | KNP_CAP_EGRESS));
    Harness bad{std::string(kSo)};
    knp::testing::Status s = bad.init(R"({"strict": true})");
    CHECK(s.rc == -EINVAL);
    CHECK(s.pointer == "/strict");
    REQUIRE(h.init().ok());
    REQUIRE(h.watches().size() == 1);
    CHECK(h.watches()[0].group == "networking.k8s.io");
    CHECK(h.watches()[0].version == "v1");
    CHECK(h.watches()[0].resource == "networkpolicies");
    CHECK(h.watches()[0].kind == "NetworkPolicy");
    // The first update yields a snapshot even with no policies: nothing is isolated.
    REQUIRE(h.update().newSnapshot);
    CHECK(h.interest() != nullptr);
    CHECK_FALSE(h.ingressInterest());
    CHECK_FALSE(h.egressInterest());
}

TEST_CASE("ADDED, MODIFIED and DELETED events") {
    Fixture f;
    f.add("x", "allow-from-b", R"({"podSelector": {"matchLabels": {"pod": "a"}},
                                   "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})");
    CHECK(f.update().newSnapshot);
    auto r = f.ingress("x/b", "x/a", KNP_PROTO_TCP, 80);
    CHECK(r.verdict == Verdict::Accept);
    CHECK(r.reason == "allowed by x/allow-from-b ingress rule 0");
    CHECK(r.rule == "x/allow-from-b");
    r = f.ingress("y/b", "x/a", KNP_PROTO_TCP, 80);
    CHECK(r.verdict == Verdict::Deny);
    CHECK(r.rule == "x/allow-from-b");
    CHECK(r.reason.find("isolated for ingress by x/allow-from-b") != std::string::npos);
    CHECK(f.ingress("x/a", "x/b", KNP_PROTO_TCP, 80).verdict == Verdict::Next);  // x/b is not isolated
    CHECK(f.egress("x/a", "y/b", KNP_PROTO_TCP, 80).verdict == Verdict::Next);   // nor is any egress

    f.modify("x", "allow-from-b", R"({"podSelector": {"matchLabels": {"pod": "a"}},
                                      "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})");
    f.update(false);
    CHECK(f.ingress("x/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.ingress("y/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Accept);

    f.remove("x", "allow-from-b");
    f.update(false);
    CHECK(f.ingress("x/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    CHECK(f.misses() == 0);
}

TEST_CASE("policy types, ports, own node and non-pod ends") {
    Fixture f;
    f.add("x", "egress-dns", R"({"podSelector": {}, "policyTypes": ["Egress"],
        "egress": [{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"pod": "b"}}}],
                    "ports": [{"protocol": "UDP", "port": "serve-81-udp"}]},
                   {"to": [{"ipBlock": {"cidr": "203.0.113.0/24", "except": ["203.0.113.128/25"]}}]}]})");
    f.add("y", "ingress-tcp", R"({"podSelector": {"matchLabels": {"pod": "a"}}, "ingress": [{"ports": [{}]}]})");
    f.update();
    CHECK(f.egress("x/a", "y/b", KNP_PROTO_UDP, 81).verdict == Verdict::Accept);
    CHECK(f.egress("x/a", "y/b", KNP_PROTO_TCP, 81).verdict == Verdict::Deny);
    CHECK(f.egress("x/a", "y/a", KNP_PROTO_UDP, 81).verdict == Verdict::Deny);
    CHECK(f.ingress("x/a", "y/b", KNP_PROTO_UDP, 81).verdict == Verdict::Next);  // egress-only policy

    OwnedPod xa = f.def("x/a").pod();
    auto ext = f.h->evaluateEgress(makePacket("10.0.0.1", "203.0.113.5", KNP_PROTO_TCP, 443), xa.get(), nullptr);
    CHECK(ext.verdict == Verdict::Accept);
    CHECK(ext.reason == "allowed by x/egress-dns egress rule 1");
    CHECK(f.h->evaluateEgress(makePacket("10.0.0.1", "203.0.113.200", KNP_PROTO_TCP, 443), xa.get(), nullptr).verdict ==
          Verdict::Deny);
    CHECK(f.h->evaluateEgress(makePacket("10.0.0.1", "203.0.113.5", KNP_PROTO_ICMP), xa.get(), nullptr).verdict ==
          Verdict::Accept);  // a rule without ports takes every protocol

    // `ports: [{}]` is every TCP port and nothing else: not UDP, not ICMP.
    OwnedPod ya = f.def("y/a").pod();
    CHECK(
        f.h->evaluateIngress(makePacket("198.51.100.1", "10.0.0.3", KNP_PROTO_TCP, 1234), nullptr, ya.get()).verdict ==
        Verdict::Accept);
    CHECK(
        f.h->evaluateIngress(makePacket("198.51.100.1", "10.0.0.3", KNP_PROTO_UDP, 1234), nullptr, ya.get()).verdict ==
        Verdict::Deny);
    CHECK(f.h->evaluateIngress(makePacket("198.51.100.1", "10.0.0.3", KNP_PROTO_ICMP), nullptr, ya.get()).verdict ==
          Verdict::Deny);
    // Its own node (node-1) may always reach it; node-2 may not.
    auto own = f.h->evaluateIngress(makePacket("192.168.1.1", "10.0.0.3", KNP_PROTO_UDP, 1), nullptr, ya.get());
    CHECK(own.verdict == Verdict::Accept);
    CHECK(own.reason.find("own node") != std::string::npos);
    CHECK(f.h->evaluateIngress(makePacket("192.168.1.2", "10.0.0.3", KNP_PROTO_UDP, 1), nullptr, ya.get()).verdict ==
          Verdict::Deny);
    CHECK(
        f.h->evaluateIngress(makePacket("fd00:192:168:1::1", "fd00::3", KNP_PROTO_UDP, 1), nullptr, ya.get()).verdict ==
        Verdict::Accept);

    // A hostNetwork end is not a pod even if a host passed it as one: NEXT for its direction.
    PodDef hn = f.def("y/a");
    hn.hostNetwork = true;
    OwnedPod hnPod = hn.pod();
    CHECK(
        f.h->evaluateIngress(makePacket("198.51.100.1", "10.0.0.3", KNP_PROTO_UDP, 1), nullptr, hnPod.get()).verdict ==
        Verdict::Next);
}

TEST_CASE("label changes apply at the next update; pods the index does not know are judged from their views") {
    Fixture f;
    f.add("x", "from-b", R"({"podSelector": {"matchLabels": {"pod": "a"}},
                             "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}},
                                                    "podSelector": {"matchLabels": {"pod": "b"}}}]}]})");
    f.update();
    CHECK(f.ingress("y/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Accept);
    CHECK(f.ingress("y/a", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.misses() == 0);

    // y/a becomes pod=b: the index knows y/a as it was until the host reports podsChanged.
    f.def("y/a").labels["pod"] = "b";
    f.repost("y/a");
    CHECK(f.ingress("y/a", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.update(true).newSnapshot);
    CHECK(f.ingress("y/a", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Accept);
    // x/a stops being pod=a: no policy selects it any more.
    f.def("x/a").labels["pod"] = "q";
    f.repost("x/a");
    f.update(true);
    CHECK(f.ingress("y/a", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    f.def("x/a").labels["pod"] = "a";
    f.repost("x/a");
    f.update(true);
    CHECK(f.misses() == 0);

    // A pod the index has never seen is judged from its view at once (the slow path)...
    PodDef fresh = f.def("y/b");
    fresh.name = "fresh";
    fresh.ips = {"10.0.0.9", "fd00::9"};
    f.pods.push_back(fresh);
    CHECK(f.ingress("y/fresh", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Accept);
    CHECK(f.misses() == 1);
    // ...and so is a pod on an address recycled from another: here y/b's address, taken by a
    // pod with other labels before the plugin heard of it. It is judged as itself, not as y/b.
    PodDef taker = f.def("y/b");
    taker.name = "taker";
    taker.labels["pod"] = "z";
    f.pods.push_back(taker);
    CHECK(f.ingress("y/taker", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.misses() == 2);
    CHECK(f.ingress("y/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Accept);
    CHECK(f.misses() == 2);

    // A namespace label change: y is relabelled, so no pod of it matches ns=y any more.
    for (PodDef& d : f.pods) {
        if (d.ns != "y" || d.name == "fresh" || d.name == "taker") continue;
        d.nsLabels["ns"] = "q";
        f.repost(d.ns + "/" + d.name);
    }
    f.update(true);
    CHECK(f.ingress("y/a", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.ingress("y/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.misses() == 2);

    // Nothing changed: no new snapshot.
    CHECK_FALSE(f.update(true).newSnapshot);
    CHECK_FALSE(f.update(false).newSnapshot);
}

TEST_CASE("interest: the local pods isolated per direction, as host CIDRs") {
    Fixture f;  // node-1 hosts x/a and y/a
    f.update();
    CHECK_FALSE(f.h->ingressInterest());
    f.add("x", "deny-in", R"({"podSelector": {}})");
    f.add("y", "deny-out", R"({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"]})");
    f.update(false);
    CHECK(localCidrs(f.h->ingressInterest()) == std::vector<std::string>{"10.0.0.1/32", "fd00::1/128"});
    CHECK(localCidrs(f.h->egressInterest()) == std::vector<std::string>{"10.0.0.3/32", "fd00::3/128"});
    CHECK(f.h->ingressInterest()->protocols == 0);

    // A pod moving onto the node joins; a pod leaving goes.
    f.def("x/b").node = "node-1";
    f.repost("x/b");
    f.h->host().removePod("y", "a");
    f.update(true);
    CHECK(localCidrs(f.h->ingressInterest()) ==
          std::vector<std::string>{"10.0.0.1/32", "10.0.0.2/32", "fd00::1/128", "fd00::2/128"});
    CHECK_FALSE(f.h->egressInterest());
    f.remove("x", "deny-in");
    f.update(false);
    CHECK_FALSE(f.h->ingressInterest());
}

TEST_CASE("invalid policies: logged once with the field, evaluated as absent") {
    Fixture f;
    f.add("x", "good", R"({"podSelector": {"matchLabels": {"pod": "a"}}})");
    f.add("x", "bad", R"({"podSelector": {}, "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                                                      "podSelector": {}}]}]})");
    f.update();
    auto count = [&](std::string_view needle) {
        size_t n = 0;
        for (const auto& l : f.h->host().logs())
            if (l.message.find(needle) != std::string::npos) ++n;
        return n;
    };
    CHECK(count("NetworkPolicy x/bad is invalid and ignored: /spec/ingress/0/from/0: ipBlock may not be combined") ==
          1);
    CHECK(f.h->host().logged("x/bad", KNP_LOG_WARNING));
    CHECK(f.ingress("x/a", "x/b", KNP_PROTO_TCP, 80).verdict == Verdict::Next);  // x/bad would isolate x/b
    CHECK(f.ingress("x/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);  // x/good still works
    auto gauge = f.h->host().metric("networkpolicies_invalid");
    REQUIRE(gauge);
    CHECK(gauge->value == 1);

    // Later updates do not repeat the message.
    f.def("y/b").labels["extra"] = "1";
    f.repost("y/b");
    f.update(true);
    CHECK(count("x/bad is invalid") == 1);

    // A valid policy turned invalid is gone (as if deleted); fixed again, it is back.
    f.modify("x", "good", R"({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Sideways"]})");
    f.update(false);
    CHECK(count("x/good is invalid and ignored: /spec/policyTypes/0") == 1);
    CHECK(f.ingress("x/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    f.modify("x", "good", R"({"podSelector": {"matchLabels": {"pod": "a"}}})");
    f.update(false);
    CHECK(f.h->host().logged("x/good is valid again"));
    CHECK(f.ingress("x/b", "x/a", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    // Deleting the invalid one clears it from the gauge.
    f.remove("x", "bad");
    f.update(false);
    CHECK(f.h->host().metric("networkpolicies_invalid")->value == 0);
    // Not even JSON: one line naming the object.
    f.h->added(0, "{not json", "x", "garbage");
    f.update(false);
    CHECK(count("NetworkPolicy x/garbage is invalid and ignored: not valid JSON") == 1);
}

TEST_CASE("evaluation does not allocate, on the indexed path or the slow one") {
    Fixture f;
    f.add("x", "p", R"({"podSelector": {}, "policyTypes": ["Ingress", "Egress"],
                        "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}},
                                               {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.0.0.2/32"]}}],
                                      "ports": [{"port": "serve-80-tcp"}, {"port": 1000, "endPort": 2000}]}],
                        "egress": [{"to": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})");
    f.update();
    const knp_plugin_descriptor& d = f.h->descriptor();
    OwnedPod xa = f.def("x/a").pod(), xb = f.def("x/b").pod(), yb = f.def("y/b").pod();
    PodDef stale = f.def("y/b");
    stale.name = "taker";  // another pod on y/b's address, unknown to the index: the slow path
    stale.labels["new"] = "label";
    OwnedPod yStale = stale.pod();
    struct Probe {
        const knp_pod* src;
        const knp_pod* dst;
        knp_packet pkt;
    };
    std::vector<Probe> probes{
        {yb.get(), xa.get(), makePacket("10.0.0.4", "10.0.0.1", KNP_PROTO_TCP, 80)},
        {xb.get(), xa.get(), makePacket("10.0.0.2", "10.0.0.1", KNP_PROTO_TCP, 1500)},
        {yStale.get(), xa.get(), makePacket("10.0.0.4", "10.0.0.1", KNP_PROTO_TCP, 81)},
        {nullptr, xa.get(), makePacket("192.168.1.1", "10.0.0.1", KNP_PROTO_UDP, 9)},
        {xa.get(), xb.get(), makePacket("10.0.0.1", "10.0.0.2", KNP_PROTO_TCP, 80)},
        {xa.get(), yStale.get(), makePacket("10.0.0.1", "10.0.0.4", KNP_PROTO_TCP, 80)},
    };
    std::vector<int32_t> verdicts;
    verdicts.reserve(2 * probes.size());
    size_t before = tAllocations;
    for (int i = 0; i < 100; ++i) {
        for (const Probe& p : probes) {
            knp_eval_args a{sizeof a, 0, &p.pkt, p.src, p.dst};
            knp_eval_result in{sizeof in, 0, {}, {}}, out{sizeof out, 0, {}, {}};
            REQUIRE(d.evaluate_ingress(f.h->snapshot(), &a, &in) == 0);
            REQUIRE(d.evaluate_egress(f.h->snapshot(), &a, &out) == 0);
            if (i == 0) {
                verdicts.push_back(in.verdict);
                verdicts.push_back(out.verdict);
            }
        }
    }
    CHECK(tAllocations - before == 0);
    CHECK(f.misses() > 0);  // the slow path was taken, and did not allocate either
    std::string got;
    for (int32_t v : verdicts) got += std::to_string(v) + " ";
    INFO("verdicts: ", got);
    // (ingress, egress) per probe: y/b→x/a by namespace and named port; x/b→x/a excepted from the
    // ipBlock, and x/b may only send to pod=b; y/taker→x/a on 81 matches no port; x/a's own
    // node; x/a→x/b by ipBlock both ways; x/a→y/taker is outside egress's own namespace.
    CHECK(verdicts == std::vector<int32_t>{KNP_VERDICT_ACCEPT, KNP_VERDICT_NEXT, KNP_VERDICT_DENY, KNP_VERDICT_DENY,
                                           KNP_VERDICT_DENY, KNP_VERDICT_NEXT, KNP_VERDICT_ACCEPT, KNP_VERDICT_NEXT,
                                           KNP_VERDICT_ACCEPT, KNP_VERDICT_ACCEPT, KNP_VERDICT_NEXT, KNP_VERDICT_DENY});
}

// ---------------------------------------------------------------------------------------------
// Old snapshots stay as they were: a raw driver holds several at once.
// ---------------------------------------------------------------------------------------------

namespace {

class RawDriver {
public:
    RawDriver() {
        void* lib = dlopen(kSo, RTLD_NOW | RTLD_LOCAL);
        REQUIRE(lib != nullptr);
        auto entry = reinterpret_cast<knp_plugin_entry_fn>(dlsym(lib, KNP_PLUGIN_ENTRY_SYMBOL));
        REQUIRE(static_cast<bool>(entry));
        d_ = entry();
        knp_init_args a{};
        a.struct_size = sizeof a;
        a.host_abi_minor = KNP_ABI_MINOR;
        a.instance_name = knp::toC("raw");
        a.config_json = knp::toC("{}");
        a.host = host.api();
        a.host_ctx = host.ctx();
        REQUIRE(d_->init(&a, &plugin_, nullptr) == 0);
    }
    ~RawDriver() {
        for (void* s : held_) d_->release_snapshot(plugin_, s);
        d_->destroy(plugin_);
    }
    // Applies events; returns the new snapshot (kept until the driver dies) or null.
    const void* update(const std::vector<std::pair<uint32_t, std::string>>& events, bool podsChanged) {
        std::vector<knp_event> cs;
        for (const auto& [type, obj] : events) {
            knp_event e{};
            e.struct_size = sizeof e;
            e.type = type;
            e.object = knp::toC(obj);
            cs.push_back(e);
        }
        std::vector<const knp_event*> ptrs;
        for (const knp_event& e : cs) ptrs.push_back(&e);
        knp_update_args a{};
        a.struct_size = sizeof a;
        a.flags = podsChanged ? KNP_UPDATE_PODS_CHANGED : 0u;
        a.events = ptrs.data();
        a.n_events = ptrs.size();
        knp_update_result out{};
        out.struct_size = sizeof out;
        knp::testing::FakeHost::UpdateScope scope(host);
        REQUIRE(d_->update(plugin_, &a, &out, nullptr) == 0);
        if (out.snapshot != nullptr) held_.push_back(out.snapshot);
        return out.snapshot;
    }
    int32_t ingress(const void* snap, const OwnedPod& src, const OwnedPod& dst, std::string_view srcIp,
                    std::string_view dstIp) {
        knp_packet p = makePacket(srcIp, dstIp, KNP_PROTO_TCP, 80);
        knp_eval_args a{sizeof a, 0, &p, src.get(), dst.get()};
        knp_eval_result r{sizeof r, 0, {}, {}};
        REQUIRE(d_->evaluate_ingress(snap, &a, &r) == 0);
        return r.verdict;
    }
    knp::testing::FakeHost host;

private:
    const knp_plugin_descriptor* d_ = nullptr;
    knp_plugin* plugin_ = nullptr;
    std::vector<void*> held_;
};

}  // namespace

TEST_CASE("snapshots are immutable: old ones keep their verdicts after later updates") {
    RawDriver r;
    std::vector<PodDef> defs = smallCluster();
    for (const PodDef& d : defs) r.host.addPod(d.pod());
    OwnedPod xa = defs[0].pod(), xb = defs[1].pod(), ya = defs[2].pod();
    const void* s0 = r.update({}, true);
    REQUIRE(s0 != nullptr);
    const void* s1 = r.update({{KNP_EVENT_ADDED, policyJson("x", "p", R"({"podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}}]}]})")}},
                              false);
    REQUIRE(s1 != nullptr);
    // Relabel x/b so it no longer matches, and widen the policy to namespace y.
    defs[1].labels["pod"] = "bb";
    r.host.removePod("x", "b");
    r.host.addPod(defs[1].pod());
    const void* s2 =
        r.update({{KNP_EVENT_MODIFIED, policyJson("x", "p", R"({"podSelector": {"matchLabels": {"pod": "a"}},
        "ingress": [{"from": [{"podSelector": {"matchLabels": {"pod": "b"}}},
                              {"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]})")}},
                 true);
    REQUIRE(s2 != nullptr);
    OwnedPod xbNew = defs[1].pod();
    const void* s3 = r.update({{KNP_EVENT_DELETED, policyJson("x", "p", "{}")}}, false);
    REQUIRE(s3 != nullptr);
    CHECK(r.ingress(s0, xb, xa, "10.0.0.2", "10.0.0.1") == KNP_VERDICT_NEXT);
    CHECK(r.ingress(s1, xb, xa, "10.0.0.2", "10.0.0.1") == KNP_VERDICT_ACCEPT);
    CHECK(r.ingress(s1, ya, xa, "10.0.0.3", "10.0.0.1") == KNP_VERDICT_DENY);
    CHECK(r.ingress(s2, xbNew, xa, "10.0.0.2", "10.0.0.1") == KNP_VERDICT_DENY);
    CHECK(r.ingress(s2, ya, xa, "10.0.0.3", "10.0.0.1") == KNP_VERDICT_ACCEPT);
    CHECK(r.ingress(s3, ya, xa, "10.0.0.3", "10.0.0.1") == KNP_VERDICT_NEXT);
    // The old views still get the old snapshots' answers.
    CHECK(r.ingress(s1, xb, xa, "10.0.0.2", "10.0.0.1") == KNP_VERDICT_ACCEPT);
}

// ---------------------------------------------------------------------------------------------
// Randomized: the incremental index, a freshly built index and the slow path must agree.
// ---------------------------------------------------------------------------------------------

namespace {

class RandomWorld {
public:
    explicit RandomWorld(unsigned seed) : rng_(seed) {
        for (int n = 0; n < 4; ++n) nsLabels_["n" + std::to_string(n)] = randomNsLabels();
        for (int i = 0; i < 28; ++i) pods_.push_back(randomPod(i));
        for (int i = 0; i < 22; ++i) policies_["n" + std::to_string(pick(4)) + "/p" + std::to_string(i)] = randomSpec();
    }

    // One round of churn: policies added, changed and deleted; pods relabelled, moved, removed,
    // added; a namespace relabelled. Returns the policy events it implies.
    std::vector<std::pair<uint32_t, std::string>> churn() {
        std::vector<std::pair<uint32_t, std::string>> events;
        for (int k = 0; k < 4; ++k) {
            auto it = std::next(policies_.begin(), static_cast<long>(pick(policies_.size())));
            switch (pick(3)) {
                case 0:
                    it->second = randomSpec();
                    events.push_back({KNP_EVENT_MODIFIED, objectOf(it->first)});
                    break;
                case 1:
                    events.push_back({KNP_EVENT_DELETED, objectOf(it->first)});
                    policies_.erase(it);
                    break;
                default: {
                    std::string key = "n" + std::to_string(pick(4)) + "/q" + std::to_string(next_++);
                    policies_[key] = randomSpec();
                    events.push_back({KNP_EVENT_ADDED, objectOf(key)});
                }
            }
        }
        for (int k = 0; k < 5; ++k) {
            PodDef& d = pods_[pick(pods_.size())];
            d.labels = randomLabels();
        }
        // A pod goes and another comes, often on the addresses of the pod that went in the
        // previous round (IPs are reused, once the index has forgotten the old owner) or in
        // this one (the index sees the change of owner in one walk).
        auto gone = pods_.begin() + static_cast<long>(pick(pods_.size()));
        std::vector<std::string> freedNow = gone->ips;
        pods_.erase(gone);
        pods_.push_back(randomPod(100 + next_++));
        if (!freed_.empty() && coin(70)) {
            pods_.back().ips = freed_;
        } else if (coin(50)) {
            pods_.back().ips = freedNow;
            freedNow.clear();
        }
        freed_ = freedNow;
        if (pick(2) == 0) {
            std::string ns = "n" + std::to_string(pick(4));
            nsLabels_[ns] = randomNsLabels();
            for (PodDef& d : pods_)
                if (d.ns == ns) d.nsLabels = nsLabels_[ns];
        }
        return events;
    }

    std::vector<std::pair<uint32_t, std::string>> allAdded() const {
        std::vector<std::pair<uint32_t, std::string>> events;
        for (const auto& [key, spec] : policies_) events.push_back({KNP_EVENT_ADDED, objectOf(key)});
        return events;
    }

    const std::vector<PodDef>& pods() const { return pods_; }

private:
    size_t pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }
    bool coin(int percent) { return pick(100) < static_cast<size_t>(percent); }

    std::map<std::string, std::string> randomNsLabels() {
        std::map<std::string, std::string> l{{"env", coin(50) ? "prod" : "dev"}};
        if (coin(50)) l["team"] = coin(50) ? "a" : "b";
        return l;
    }
    std::map<std::string, std::string> randomLabels() {
        static const char* apps[] = {"web", "db", "cache"};
        std::map<std::string, std::string> l;
        if (coin(90)) l["app"] = apps[pick(3)];
        if (coin(50)) l["tier"] = coin(50) ? "fe" : "be";
        if (coin(20)) l["role"] = "x";
        return l;
    }
    PodDef randomPod(int i) {
        PodDef d;
        d.ns = "n" + std::to_string(pick(4));
        d.name = "pod" + std::to_string(i);
        d.node = "node-" + std::to_string(1 + pick(3));
        d.labels = randomLabels();
        d.nsLabels = nsLabels_[d.ns];
        d.ips = {"10.1." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1),
                 "fd00:1::" + std::to_string(i + 1)};
        if (coin(70)) d.ports.push_back({"http", static_cast<uint16_t>(coin(50) ? 80 : 8080), KNP_PROTO_TCP});
        if (coin(50)) d.ports.push_back({"dns", 53, coin(70) ? KNP_PROTO_UDP : KNP_PROTO_TCP});
        if (coin(30)) d.ports.push_back({"sig", 80, KNP_PROTO_SCTP});
        return d;
    }

    json::value randomSelector() {
        static const char* keys[] = {"app", "tier", "role"};
        static const char* values[] = {"web", "db", "cache", "fe", "be", "x"};
        json::object s;
        if (coin(25)) return s;
        if (coin(50)) s["matchLabels"] = json::object{{keys[pick(2)], values[pick(6)]}};
        json::array exprs;
        for (size_t n = pick(3); n > 0; --n) {
            static const char* ops[] = {"In", "NotIn", "Exists", "DoesNotExist"};
            std::string op = ops[pick(4)];
            json::object e{{"key", keys[pick(3)]}, {"operator", op}};
            if (op == "In" || op == "NotIn") e["values"] = json::array{values[pick(6)], values[pick(6)]};
            exprs.push_back(e);
        }
        if (!exprs.empty()) s["matchExpressions"] = exprs;
        return s;
    }
    json::value randomNsSelector() {
        if (coin(30)) return json::object{};
        json::object s{{"matchLabels", json::object{{coin(60) ? "env" : "team", coin(50) ? "prod" : "a"}}}};
        if (coin(20)) s["matchLabels"] = json::object{{"kubernetes.io/metadata.name", "n" + std::to_string(pick(4))}};
        return s;
    }
    json::value randomPeer() {
        switch (pick(4)) {
            case 0:
                return json::object{{"podSelector", randomSelector()}};
            case 1:
                return json::object{{"namespaceSelector", randomNsSelector()}};
            case 2:
                return json::object{{"podSelector", randomSelector()}, {"namespaceSelector", randomNsSelector()}};
            default: {
                json::object b{{"cidr", coin(70) ? "10.1.0.0/16" : "fd00:1::/64"}};
                if (coin(60)) b["except"] = json::array{coin(70) ? "10.1.0.0/28" : "10.1.0.16/28"};
                if (b["cidr"] == "fd00:1::/64" && b.contains("except")) b["except"] = json::array{"fd00:1::/124"};
                return json::object{{"ipBlock", b}};
            }
        }
    }
    json::value randomPorts() {
        json::array ports;
        for (size_t n = 1 + pick(2); n > 0; --n) {
            json::object p;
            static const char* protos[] = {"TCP", "UDP", "SCTP"};
            if (coin(70)) p["protocol"] = protos[pick(3)];
            switch (pick(4)) {
                case 0:
                    p["port"] = coin(50) ? 80 : 53;
                    break;
                case 1:
                    p["port"] = 79;
                    p["endPort"] = 8080;
                    break;
                case 2:
                    p["port"] = coin(50) ? "http" : (coin(50) ? "dns" : "sig");
                    break;
                default:
                    break;  // every port of the protocol
            }
            ports.push_back(p);
        }
        return ports;
    }
    json::value randomRules(const char* peersKey) {
        json::array rules;
        for (size_t n = pick(3); n > 0; --n) {
            json::object r;
            if (coin(60)) r["ports"] = randomPorts();
            if (coin(85)) {
                json::array peers;
                for (size_t k = 1 + pick(2); k > 0; --k) peers.push_back(randomPeer());
                r[peersKey] = peers;
            }
            rules.push_back(r);
        }
        return rules;
    }
    std::string randomSpec() {
        json::object spec;
        if (coin(85)) spec["podSelector"] = randomSelector();
        switch (pick(4)) {
            case 0:
                spec["policyTypes"] = json::array{"Ingress"};
                break;
            case 1:
                spec["policyTypes"] = json::array{"Egress"};
                break;
            case 2:
                spec["policyTypes"] = json::array{"Ingress", "Egress"};
                break;
            default:
                break;  // defaulted
        }
        if (coin(70)) spec["ingress"] = randomRules("from");
        if (coin(60)) spec["egress"] = randomRules("to");
        return json::serialize(spec);
    }
    std::string objectOf(const std::string& key) const {
        size_t slash = key.find('/');
        auto it = policies_.find(key);
        return policyJson(key.substr(0, slash), key.substr(slash + 1), it != policies_.end() ? it->second : "{}");
    }

    std::mt19937 rng_;
    std::map<std::string, std::map<std::string, std::string>> nsLabels_;
    std::vector<PodDef> pods_;
    std::map<std::string, std::string> policies_;  // key → spec JSON
    std::vector<std::string> freed_;               // addresses of the pod removed last round
    int next_ = 0;
};

// A harness holding `pods` (or none: every evaluation then takes the slow path).
std::unique_ptr<Harness> harnessWith(const std::vector<PodDef>& pods, bool indexed) {
    auto h = std::make_unique<Harness>(std::string(kSo));
    h->host().setNodeName("node-1");
    if (indexed)
        for (const PodDef& d : pods) h->host().addPod(d.pod());
    REQUIRE(h->init().ok());
    return h;
}

void feed(Harness& h, const std::vector<std::pair<uint32_t, std::string>>& events, bool podsChanged) {
    for (const auto& [type, obj] : events) {
        if (type == KNP_EVENT_ADDED) h.added(0, obj);
        if (type == KNP_EVENT_MODIFIED) h.modified(0, obj);
        if (type == KNP_EVENT_DELETED) h.deleted(0, obj);
    }
    auto s = h.update(podsChanged);
    INFO(s.message);
    REQUIRE(s.ok());
}

// Every ordered pair of pods, both directions, a handful of protocol/port probes and both
// families: the three harnesses must give identical verdicts, reasons and rules.
// The sizes the plugin's last debug line reports ("N policies (...), N pods in N identities, N
// peers; local pods isolated ..."), without the timing.
std::string indexSizes(Harness& h) {
    std::string last;
    for (const auto& l : h.host().logs())
        if (l.level == KNP_LOG_DEBUG && l.message.find(" identities, ") != std::string::npos) last = l.message;
    REQUIRE_FALSE(last.empty());
    return last.substr(0, last.find("; update took"));
}

// Returns how many evaluations gave NEXT, ACCEPT and DENY, so the caller can check the random
// worlds exercise all three.
std::array<size_t, 3> compareAll(const std::vector<PodDef>& pods, Harness& incremental, Harness& fresh, Harness& slow) {
    struct P {
        uint8_t proto;
        uint16_t port;
    };
    const P probes[] = {{KNP_PROTO_TCP, 80}, {KNP_PROTO_TCP, 8080}, {KNP_PROTO_UDP, 53},
                        {KNP_PROTO_TCP, 53}, {KNP_PROTO_SCTP, 80},  {KNP_PROTO_ICMP, 0}};
    std::vector<OwnedPod> views;
    for (const PodDef& d : pods) views.push_back(d.pod());
    std::array<size_t, 3> mix{};
    size_t differing = 0;
    for (size_t s = 0; s < pods.size(); ++s) {
        for (size_t d = 0; d < pods.size(); ++d) {
            if (s == d) continue;
            for (const P& p : probes) {
                for (int fam = 0; fam < 2; ++fam) {
                    knp_packet pkt = makePacket(pods[s].ips[fam], pods[d].ips[fam], p.proto, p.port);
                    for (bool in : {true, false}) {
                        auto eval = [&](Harness& h) {
                            return in ? h.evaluateIngress(pkt, views[s].get(), views[d].get())
                                      : h.evaluateEgress(pkt, views[s].get(), views[d].get());
                        };
                        auto a = eval(incremental), b = eval(fresh), c = eval(slow);
                        ++mix[static_cast<size_t>(a.verdict)];
                        bool same = a.verdict == b.verdict && a.verdict == c.verdict && a.reason == b.reason &&
                                    a.reason == c.reason && a.rule == c.rule;
                        if (!same && ++differing <= 5) {
                            INFO(pods[s].ns << "/" << pods[s].name << " -> " << pods[d].ns << "/" << pods[d].name
                                            << " proto " << int(p.proto) << "/" << p.port
                                            << (in ? " ingress" : " egress") << ": incremental " << int(a.verdict)
                                            << " " << a.reason << "; fresh " << int(b.verdict) << " " << b.reason
                                            << "; slow " << int(c.verdict) << " " << c.reason);
                            CHECK(same);
                        }
                    }
                }
            }
        }
    }
    CHECK(differing == 0);
    return mix;
}

}  // namespace

TEST_CASE("randomized: incremental index, fresh index and slow path agree") {
    std::array<size_t, 3> mix{};
    for (unsigned seed = 1; seed <= 6; ++seed) {
        CAPTURE(seed);
        RandomWorld w(seed);
        auto incremental = harnessWith(w.pods(), true);
        // Even seeds learn pod changes from the host's list (ABI 1.1), odd ones by walking.
        incremental->host().setPodChanges(seed % 2 == 0);
        feed(*incremental, w.allAdded(), true);
        for (int round = 0; round < 5; ++round) {
            CAPTURE(round);
            if (round > 0) {
                auto events = w.churn();
                incremental->host().clearPods();
                for (const PodDef& d : w.pods()) incremental->host().addPod(d.pod());
                feed(*incremental, events, true);
            }
            auto fresh = harnessWith(w.pods(), true);
            feed(*fresh, w.allAdded(), true);
            auto slow = harnessWith(w.pods(), false);
            feed(*slow, w.allAdded(), true);
            auto m = compareAll(w.pods(), *incremental, *fresh, *slow);
            for (size_t i = 0; i < 3; ++i) mix[i] += m[i];
            // Same sizes: churn leaks no identities, peers or pods into the incremental index.
            CHECK(indexSizes(*incremental) == indexSizes(*fresh));
            // The indexed harnesses never had to bypass their index.
            CHECK(incremental->host().metric("networkpolicy_index_misses")->value == 0);
            CHECK(fresh->host().metric("networkpolicy_index_misses")->value == 0);
            CHECK(slow->host().metric("networkpolicy_index_misses")->value > 0);
        }
    }
    MESSAGE("evaluations: ", mix[0], " NEXT, ", mix[1], " ACCEPT, ", mix[2], " DENY");
    // Each verdict at least a twentieth of the time: the worlds are neither all-open nor all-closed.
    size_t total = mix[0] + mix[1] + mix[2];
    for (size_t v : mix) CHECK(v * 20 > total);
}
