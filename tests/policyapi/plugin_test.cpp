// tests/policyapi: adminnetworkpolicy.so and clusternetworkpolicy.so (KNP_ANP_SO, KNP_CNP_SO),
// loaded as the host loads them and driven only through the C ABI with kt::Harness.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <knp/testing.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "../alloc_counter.hpp"

#ifndef KNP_ANP_SO
#error "KNP_ANP_SO and KNP_CNP_SO must name the built plugins (tests/policyapi/meson.build sets them)"
#endif

namespace kt = knp::testing;
using knp::Verdict;
using knp_test::tAllocations;
using kt::Harness;
using kt::makePacket;
using kt::OwnedPod;

namespace {

// A pod of the house fixture (policy-semantics.md §4.1), as the test describes it.
struct PodDef {
    std::string ns, name, node, ip;
    std::map<std::string, std::string> labels;
    std::string uid = "uid";
    bool hostNetwork = false;
    std::map<std::string, std::string> nodeLabels;

    OwnedPod pod() const {
        OwnedPod p(ns, name);
        p.uid(uid);
        for (const auto& [k, v] : labels) p.label(k, v);
        p.namespaceLabel("conformance-house", ns);  // kubernetes.io/metadata.name comes with OwnedPod
        p.node(node).nodeLabel("kubernetes.io/os", "linux").nodeLabel("kubernetes.io/hostname", node);
        for (const auto& [k, v] : nodeLabels) p.nodeLabel(k, v);
        p.nodeAddress(node == "node-1" ? "192.168.1.1" : "192.168.1.2");
        p.containerPort(80, KNP_PROTO_TCP, "web").containerPort(8080, KNP_PROTO_TCP);
        p.containerPort(53, KNP_PROTO_UDP, "dns").containerPort(5353, KNP_PROTO_UDP);
        p.containerPort(9003, KNP_PROTO_SCTP).containerPort(9005, KNP_PROTO_SCTP);
        p.ip(ip);
        p.hostNetwork(hostNetwork);
        return p;
    }
};

std::vector<PodDef> houses() {
    std::vector<PodDef> pods;
    int h = 0;
    for (auto [ns, who] : std::vector<std::pair<std::string, std::string>>{
             {"gryffindor", "harry"}, {"slytherin", "draco"}, {"hufflepuff", "cedric"}, {"ravenclaw", "luna"}}) {
        ++h;
        for (int i = 0; i < 2; ++i) {
            PodDef d;
            d.ns = ns;
            d.name = who + "-" + std::to_string(i);
            d.node = "node-" + std::to_string(i + 1);
            d.ip = "10.244." + std::to_string(i + 1) + "." + std::to_string(h * 10);
            d.labels = {{"conformance-house", ns}, {"app", who}};
            pods.push_back(d);
        }
    }
    for (int i = 0; i < 2; ++i) {
        PodDef d;
        d.ns = "forbidden-forrest";
        d.name = "centaur-" + std::to_string(i);
        d.node = "node-" + std::to_string(i + 1);
        d.ip = "192.168.1." + std::to_string(i + 1);
        d.hostNetwork = true;
        pods.push_back(d);
    }
    return pods;
}

std::string anp(
    const std::string& name, int priority, const std::string& rest,
    const std::string& subject = R"({"namespaces": {"matchLabels": {"conformance-house": "gryffindor"}}})") {
    return R"({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy", "metadata": {"name": ")" +
           name + R"("}, "spec": {"priority": )" + std::to_string(priority) + R"(, "subject": )" + subject + rest +
           "}}";
}

std::string cnp(const std::string& name, const std::string& tier, int priority, const std::string& rest) {
    return R"({"apiVersion": "policy.networking.k8s.io/v1alpha2", "kind": "ClusterNetworkPolicy", "metadata": {"name": ")" +
           name + R"("}, "spec": {"tier": ")" + tier + R"(", "priority": )" + std::to_string(priority) +
           R"(, "subject": {"namespaces": {"matchLabels": {"conformance-house": "gryffindor"}}})" + rest + "}}";
}

std::string from(const std::string& house) {
    return R"([{"namespaces": {"matchLabels": {"conformance-house": ")" + house + R"("}}}])";
}

struct Fixture {
    explicit Fixture(const char* so, std::string config = "{}", std::string node = "node-1") : pods(houses()) {
        h = std::make_unique<Harness>(std::string(so));
        h->host().setNodeName(node);
        for (const PodDef& d : pods) h->host().addPod(d.pod());
        kt::Status s = h->init(config);
        INFO(s.message);
        REQUIRE(s.ok());
    }
    void add(const std::string& name, const std::string& json) { h->added(0, json, "", name); }
    void modify(const std::string& name, const std::string& json) { h->modified(0, json, "", name); }
    void update(bool podsChanged = false) {
        kt::UpdateStatus s = h->update(podsChanged);
        REQUIRE_MESSAGE(s.ok(), s.message);
    }
    PodDef& def(std::string_view key) {
        auto it = std::find_if(pods.begin(), pods.end(), [&](const PodDef& d) { return d.ns + "/" + d.name == key; });
        REQUIRE_MESSAGE(it != pods.end(), "no pod " << key);
        return *it;
    }
    kt::Evaluation ingress(const std::string& src, const std::string& dst, uint8_t proto, uint16_t port) {
        OwnedPod s = def(src).pod(), d = def(dst).pod();
        return h->evaluateIngress(makePacket(def(src).ip, def(dst).ip, proto, port),
                                  def(src).hostNetwork ? nullptr : s.get(), def(dst).hostNetwork ? nullptr : d.get());
    }
    kt::Evaluation egress(const std::string& src, const std::string& dst, uint8_t proto, uint16_t port) {
        OwnedPod s = def(src).pod(), d = def(dst).pod();
        return h->evaluateEgress(makePacket(def(src).ip, def(dst).ip, proto, port),
                                 def(src).hostNetwork ? nullptr : s.get(), def(dst).hostNetwork ? nullptr : d.get());
    }
    std::vector<PodDef> pods;
    std::unique_ptr<Harness> h;
};

}  // namespace

TEST_CASE("descriptors, configs and watches") {
    {
        Harness h{std::string(KNP_ANP_SO)};
        CHECK(std::string(h.descriptor().name) == "adminnetworkpolicy");
        CHECK((h.descriptor().capabilities & (KNP_CAP_INGRESS | KNP_CAP_EGRESS)) == (KNP_CAP_INGRESS | KNP_CAP_EGRESS));
        REQUIRE(h.init().ok());
        REQUIRE(h.watches().size() == 1);
        CHECK(h.watches()[0].group == "policy.networking.k8s.io");
        CHECK(h.watches()[0].version == "v1alpha1");
        CHECK(h.watches()[0].resource == "adminnetworkpolicies");
        CHECK(h.watches()[0].kind == "AdminNetworkPolicy");
        // No CRD, no objects: the first update still publishes, so the instance is ready.
        REQUIRE(h.update().newSnapshot);
        CHECK_FALSE(h.ingressInterest());
        CHECK_FALSE(h.egressInterest());
    }
    {
        Harness h{std::string(KNP_ANP_SO)};
        REQUIRE(h.init(R"({"tier": "baseline"})").ok());
        CHECK(h.watches()[0].resource == "baselineadminnetworkpolicies");
        CHECK(h.watches()[0].kind == "BaselineAdminNetworkPolicy");
    }
    {
        Harness h{std::string(KNP_CNP_SO)};
        REQUIRE(h.init(R"({"tier": "Baseline"})").ok());
        CHECK(std::string(h.descriptor().name) == "clusternetworkpolicy");
        CHECK(h.watches()[0].version == "v1alpha2");
        CHECK(h.watches()[0].resource == "clusternetworkpolicies");
    }
    for (const char* so : {KNP_ANP_SO, KNP_CNP_SO}) {
        Harness bad{std::string(so)};
        kt::Status s = bad.init(R"({"tier": "middle"})");
        CHECK(s.rc == -EINVAL);
        CHECK(s.pointer == "/tier");
        Harness bad2{std::string(so)};
        s = bad2.init(R"({"tiers": "Admin"})");
        CHECK(s.rc == -EINVAL);
        CHECK(s.pointer == "/tiers");
    }
}

TEST_CASE("ANP: first matching rule, actions, reasons, priority and name order") {
    Fixture f(KNP_ANP_SO);
    f.add("a", anp("a", 10,
                   R"(, "ingress": [
        {"name": "allow-ravenclaw", "action": "Allow", "from": )" +
                       from("ravenclaw") + R"(},
        {"name": "deny-ravenclaw", "action": "Deny", "from": )" +
                       from("ravenclaw") + R"(},
        {"name": "pass-slytherin-80", "action": "Pass", "from": )" +
                       from("slytherin") +
                       R"(, "ports": [{"portNumber": {"port": 80}}]},
        {"name": "deny-slytherin", "action": "Deny", "from": )" +
                       from("slytherin") + "}]"));
    f.update();
    CHECK(f.h->hasSnapshot());
    auto r = f.ingress("ravenclaw/luna-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80);
    CHECK(r.verdict == Verdict::Accept);
    CHECK(r.reason == R"(AdminNetworkPolicy "a" ingress rule 0 "allow-ravenclaw": Accept)");
    CHECK(r.rule == "a/ingress/0");
    r = f.ingress("slytherin/draco-1", "gryffindor/harry-0", KNP_PROTO_TCP, 80);
    CHECK(r.verdict == Verdict::Next);  // Pass: NEXT, with the passing rule as the reason
    CHECK(r.rule == "a/ingress/2");
    CHECK(f.ingress("slytherin/draco-1", "gryffindor/harry-0", KNP_PROTO_TCP, 8080).verdict == Verdict::Deny);
    CHECK(f.ingress("slytherin/draco-1", "gryffindor/harry-0", KNP_PROTO_UDP, 80).verdict == Verdict::Deny);
    CHECK(f.ingress("hufflepuff/cedric-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    // Not a subject, not a pod, hostNetwork: NEXT.
    CHECK(f.ingress("ravenclaw/luna-0", "slytherin/draco-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    CHECK(f.ingress("forbidden-forrest/centaur-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    CHECK(f.egress("gryffindor/harry-0", "ravenclaw/luna-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);

    // A lower priority number wins; equal priorities are ordered by name.
    f.add("b", anp("b", 5, R"(, "ingress": [{"name": "deny", "action": "Deny", "from": )" + from("ravenclaw") + "}]"));
    f.update();
    CHECK(f.ingress("ravenclaw/luna-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).rule == "b/ingress/0");
    f.modify("b",
             anp("b", 10, R"(, "ingress": [{"name": "deny", "action": "Deny", "from": )" + from("ravenclaw") + "}]"));
    f.update();
    CHECK(f.ingress("ravenclaw/luna-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).rule == "a/ingress/0");
    f.h->deleted(0, anp("a", 10, ""), "", "a");
    f.update();
    CHECK(f.ingress("ravenclaw/luna-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).rule == "b/ingress/0");
}

TEST_CASE("interest: the local subject pods per direction, never divert-all") {
    Fixture f(KNP_ANP_SO, "{}", "node-1");
    f.add("in", anp("in", 10, R"(, "ingress": [{"action": "Deny", "from": )" + from("ravenclaw") + "}]"));
    f.add("out", anp("out", 10, R"(, "egress": [{"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}])",
                     R"({"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": "luna"}}}})"));
    f.update(true);
    auto in = f.h->ingressInterest();
    REQUIRE(in);
    CHECK_FALSE(in->divertAll);
    CHECK_FALSE(in->localPods);
    REQUIRE(in->local.size() == 1);
    CHECK(knp::formatCidr(in->local[0]) == "10.244.1.10/32");  // harry-0 on node-1
    auto out = f.h->egressInterest();
    REQUIRE(out);
    REQUIRE(out->local.size() == 1);
    CHECK(knp::formatCidr(out->local[0]) == "10.244.1.40/32");  // luna-0 on node-1
}

TEST_CASE("invalid objects: one line naming object and field; the rest keeps working") {
    Fixture f(KNP_ANP_SO);
    f.add("good", anp("good", 10, R"(, "ingress": [{"action": "Deny", "from": )" + from("slytherin") + "}]"));
    f.add("bad", anp("bad", 1001, R"(, "ingress": [{"action": "Deny", "from": [{"namespaces": {}}]}])"));
    f.update();
    CHECK(f.h->host().logged(
        R"(AdminNetworkPolicy "bad" is invalid and ignored: /spec/priority: 1001 is out of range 0..1000)",
        KNP_LOG_WARNING));
    CHECK(f.ingress("hufflepuff/cedric-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    CHECK(f.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    // A valid object turned invalid is treated as absent; fixed, it is back and says so.
    f.modify("good", anp("good", 10, R"(, "ingress": [{"action": "Refuse", "from": )" + from("slytherin") + "}]"));
    f.update();
    CHECK(f.h->host().logged(R"(AdminNetworkPolicy "good" is invalid and ignored: /spec/ingress/0/action)"));
    CHECK(f.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    f.modify("good", anp("good", 10, R"(, "ingress": [{"action": "Deny", "from": )" + from("slytherin") + "}]"));
    f.update();
    CHECK(f.h->host().logged(R"(AdminNetworkPolicy "good" is valid again)"));
    CHECK(f.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    // Not JSON at all.
    f.add("garbage", "{not json");
    f.update();
    CHECK(f.h->host().logged(R"(AdminNetworkPolicy "garbage" is invalid and ignored: not valid JSON)"));
    auto m = f.h->host().metric("policyapi_policies_invalid");
    REQUIRE(m);
    CHECK(m->value == 2);  // "bad" and "garbage"
}

TEST_CASE("BANP: the singleton named default; other names rejected") {
    Fixture f(KNP_ANP_SO, R"({"tier": "baseline"})");
    std::string spec =
        R"({"subject": {"namespaces": {}}, "ingress": [{"action": "Deny", "from": )" + from("slytherin") + "}]}";
    f.add("other", R"({"kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "other"}, "spec": )" + spec + "}");
    f.update();
    CHECK(f.h->host().logged(R"(BaselineAdminNetworkPolicy "other" is invalid and ignored: /metadata/name)"));
    CHECK(f.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    f.add("default",
          R"({"kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"}, "spec": )" + spec + "}");
    f.update();
    CHECK(f.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    // Pass does not exist in the baseline.
    f.modify(
        "default",
        R"({"kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"}, "spec": {"subject": {"namespaces": {}}, "ingress": [{"action": "Pass", "from": [{"namespaces": {}}]}]}})");
    f.update();
    CHECK(f.h->host().logged(R"(BaselineAdminNetworkPolicy "default" is invalid and ignored: /spec/ingress/0/action)"));
}

TEST_CASE("CNP: one tier per instance; Pass in Baseline is NEXT") {
    Fixture admin(KNP_CNP_SO, R"({"tier": "Admin"})");
    Fixture baseline(KNP_CNP_SO, R"({"tier": "Baseline"})");
    for (Fixture* f : {&admin, &baseline}) {
        f->add("a", cnp("a", "Admin", 10, R"(, "ingress": [{"action": "Deny", "from": )" + from("slytherin") + "}]"));
        f->add("b", cnp("b", "Baseline", 10,
                        R"(, "ingress": [{"action": "Pass", "from": )" + from("ravenclaw") +
                            R"(}, {"action": "Deny", "from": [{"namespaces": {}}]}])"));
        f->update();
    }
    CHECK(admin.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(admin.ingress("hufflepuff/cedric-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    CHECK(baseline.ingress("ravenclaw/luna-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    CHECK(baseline.ingress("hufflepuff/cedric-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(baseline.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).rule == "b/ingress/1");
    // A CNP moving to the other tier leaves this instance.
    admin.modify("a",
                 cnp("a", "Baseline", 10, R"(, "ingress": [{"action": "Deny", "from": )" + from("slytherin") + "}]"));
    admin.update();
    CHECK(admin.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    // tcp: {} is invalid (range 1-65535 says "every port").
    admin.add("c",
              cnp("c", "Admin", 1,
                  R"(, "ingress": [{"action": "Deny", "from": [{"namespaces": {}}], "protocols": [{"tcp": {}}]}])"));
    admin.update();
    CHECK(
        admin.h->host().logged(R"(ClusterNetworkPolicy "c" is invalid and ignored: /spec/ingress/0/protocols/0/tcp)"));
}

TEST_CASE("peers: namespaces and pods skip hostNetwork; networks match pods; nodes match node addresses") {
    Fixture f(KNP_ANP_SO);
    f.add("p", anp("p", 10, R"(, "egress": [
        {"action": "Allow", "to": [{"networks": ["10.244.1.40/32"]}]},
        {"action": "Pass", "to": [{"nodes": {"matchLabels": {"kubernetes.io/hostname": "node-2"}}}]},
        {"action": "Deny", "to": [{"pods": {"namespaceSelector": {}, "podSelector": {}}}]},
        {"action": "Deny", "to": [{"networks": ["192.168.0.0/16"]}], "ports": [{"portRange": {"protocol": "UDP", "start": 1, "end": 100}}]}])"));
    f.update();
    CHECK(f.egress("gryffindor/harry-0", "ravenclaw/luna-0", KNP_PROTO_TCP, 80).verdict == Verdict::Accept);
    CHECK(f.egress("gryffindor/harry-0", "ravenclaw/luna-1", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.egress("gryffindor/harry-0", "forbidden-forrest/centaur-1", KNP_PROTO_UDP, 53).verdict == Verdict::Next);
    CHECK(f.egress("gryffindor/harry-0", "forbidden-forrest/centaur-0", KNP_PROTO_TCP, 53).verdict == Verdict::Next);
    CHECK(f.egress("gryffindor/harry-0", "forbidden-forrest/centaur-0", KNP_PROTO_UDP, 53).verdict == Verdict::Deny);
    CHECK(f.egress("gryffindor/harry-0", "forbidden-forrest/centaur-0", KNP_PROTO_UDP, 101).verdict == Verdict::Next);
}

TEST_CASE("nodes peers follow node label changes") {
    Fixture f(KNP_ANP_SO);
    f.add("n", anp("n", 10, R"(, "egress": [{"action": "Deny", "to": [{"nodes": {"matchLabels": {"zone": "a"}}}]}])"));
    f.update(true);
    CHECK(f.egress("gryffindor/harry-0", "forbidden-forrest/centaur-0", KNP_PROTO_TCP, 22).verdict == Verdict::Next);
    // node-1 gets zone=a: every pod view on it carries the node's labels.
    for (PodDef& d : f.pods) {
        if (d.node != "node-1") continue;
        d.nodeLabels["zone"] = "a";
        f.h->host().removePod(d.ns, d.name);
        f.h->host().addPod(d.pod());
    }
    f.update(true);
    CHECK(f.egress("gryffindor/harry-0", "forbidden-forrest/centaur-0", KNP_PROTO_TCP, 22).verdict == Verdict::Deny);
    CHECK(f.egress("gryffindor/harry-0", "forbidden-forrest/centaur-1", KNP_PROTO_TCP, 22).verdict == Verdict::Next);
}

TEST_CASE("named ports: the destination's container port, number and protocol") {
    Fixture f(KNP_ANP_SO);
    f.add("n",
          anp("n", 10, R"(, "egress": [{"action": "Allow", "to": [{"namespaces": {}}], "ports": [{"namedPort": "dns"}]},
                                          {"action": "Deny", "to": [{"namespaces": {}}]}])"));
    f.update();
    CHECK(f.egress("gryffindor/harry-0", "slytherin/draco-0", KNP_PROTO_UDP, 53).verdict == Verdict::Accept);
    CHECK(f.egress("gryffindor/harry-0", "slytherin/draco-0", KNP_PROTO_TCP, 53).verdict == Verdict::Deny);
    CHECK(f.egress("gryffindor/harry-0", "slytherin/draco-0", KNP_PROTO_UDP, 5353).verdict == Verdict::Deny);
}

TEST_CASE("evaluation allocates nothing, on the index and on the slow path") {
    Fixture f(KNP_ANP_SO);
    f.add("x", anp("x", 10,
                   R"(, "ingress": [{"action": "Allow", "from": )" + from("ravenclaw") +
                       R"(, "ports": [{"namedPort": "web"}]}, {"action": "Deny", "from": [{"namespaces": {}}]}],
                                "egress": [{"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}]}])"));
    f.update(true);
    const knp_plugin_descriptor& d = f.h->descriptor();
    OwnedPod harry = f.def("gryffindor/harry-0").pod(), luna = f.def("ravenclaw/luna-0").pod();
    PodDef stranger = f.def("ravenclaw/luna-1");
    stranger.uid = "another-pod-on-a-recycled-address";  // not in the index: the slow path
    OwnedPod strangerPod = stranger.pod();
    knp_packet in = makePacket("10.244.1.40", "10.244.1.10", KNP_PROTO_TCP, 80);
    knp_packet in2 = makePacket("10.244.2.40", "10.244.1.10", KNP_PROTO_TCP, 8080);
    knp_packet out = makePacket("10.244.1.10", "203.0.113.1", KNP_PROTO_TCP, 443);
    knp_eval_args a1{sizeof(knp_eval_args), 0, &in, luna.get(), harry.get()};
    knp_eval_args a2{sizeof(knp_eval_args), 0, &in2, strangerPod.get(), harry.get()};
    knp_eval_args a3{sizeof(knp_eval_args), 0, &out, harry.get(), nullptr};
    knp_eval_args a4{sizeof(knp_eval_args), 0, &in, luna.get(), strangerPod.get()};
    size_t before = tAllocations;
    int verdicts[3] = {};
    for (int i = 0; i < 1000; ++i) {
        knp_eval_result r{sizeof r, 0, {}, {}};
        CHECK(d.evaluate_ingress(f.h->snapshot(), &a1, &r) == 0);
        verdicts[r.verdict]++;
        CHECK(d.evaluate_ingress(f.h->snapshot(), &a2, &r) == 0);
        verdicts[r.verdict]++;
        CHECK(d.evaluate_egress(f.h->snapshot(), &a3, &r) == 0);
        verdicts[r.verdict]++;
        CHECK(d.evaluate_ingress(f.h->snapshot(), &a4, &r) == 0);
        verdicts[r.verdict]++;
    }
    CHECK(tAllocations == before);
    CHECK(verdicts[KNP_VERDICT_ACCEPT] == 1000);
    CHECK(verdicts[KNP_VERDICT_DENY] == 2000);
    CHECK(verdicts[KNP_VERDICT_NEXT] == 1000);
    auto misses = f.h->host().metric("policyapi_index_misses");
    REQUIRE(misses);
    CHECK(misses->value == 2000);
}

TEST_CASE("the index agrees with the slow path on random policies, across updates") {
    std::mt19937 rng(1234);
    const char* houseNames[] = {"gryffindor", "slytherin", "hufflepuff", "ravenclaw"};
    const char* actions[] = {"Allow", "Deny", "Pass"};
    auto randomPolicy = [&](const std::string& name) {
        std::string rules;
        for (int r = 0; r < 5; ++r) {
            std::string peer;
            switch (rng() % 4) {
                case 0:
                    peer = from(houseNames[rng() % 4]);
                    break;
                case 1:
                    peer = R"([{"pods": {"namespaceSelector": {}, "podSelector": {"matchLabels": {"app": ")" +
                           std::string(rng() % 2 ? "luna" : "draco") + R"("}}}}])";
                    break;
                case 2:
                    peer = R"([{"networks": ["10.244.)" + std::to_string(1 + rng() % 2) + R"(.0/24"]}])";
                    break;
                default:
                    peer = R"([{"futurePeer": {"x": 1}}])";
            }
            std::string ports = rng() % 2 ? "" : R"(, "ports": [{"portNumber": {"port": 80}}, {"namedPort": "dns"}])";
            if (peer.find("networks") != std::string::npos && !ports.empty())
                ports = R"(, "ports": [{"portRange": {"start": 50, "end": 90}}])";
            rules += (r ? "," : "") + std::string(R"({"action": ")") + actions[rng() % 3] + R"(", "to": )" + peer +
                     ports + "}";
        }
        std::string subject = rng() % 2 ? R"({"namespaces": {}})"
                                        : R"({"namespaces": {"matchLabels": {"conformance-house": ")" +
                                              std::string(houseNames[rng() % 4]) + R"("}}})";
        return anp(name, static_cast<int>(rng() % 3), R"(, "egress": [)" + rules + "]", subject);
    };
    auto compare = [](Fixture& f) {
        for (const PodDef& src : f.pods) {
            if (src.hostNetwork) continue;
            for (const PodDef& dst : f.pods) {
                if (&src == &dst) continue;
                for (auto [proto, port] : {std::pair<uint8_t, uint16_t>{KNP_PROTO_TCP, 80},
                                           {KNP_PROTO_UDP, 53},
                                           {KNP_PROTO_TCP, 60},
                                           {KNP_PROTO_SCTP, 9003}}) {
                    auto fast = f.egress(src.ns + "/" + src.name, dst.ns + "/" + dst.name, proto, port);
                    PodDef a = src, b = dst;
                    a.uid = "slow-a";  // neither end matches the index: every check from the views
                    b.uid = "slow-b";
                    OwnedPod pa = a.pod(), pb = b.pod();
                    auto slow = f.h->evaluateEgress(makePacket(a.ip, b.ip, proto, port), pa.get(),
                                                    b.hostNetwork ? nullptr : pb.get());
                    INFO(src.name << " -> " << dst.name << " " << int(proto) << "/" << port);
                    CHECK(fast.verdict == slow.verdict);
                    CHECK(fast.rule == slow.rule);
                }
            }
        }
    };
    for (int round = 0; round < 12; ++round) {
        Fixture f(KNP_ANP_SO);
        for (int p = 0; p < 6; ++p) f.add("p" + std::to_string(p), randomPolicy("p" + std::to_string(p)));
        f.update(true);
        compare(f);
        // Policy changes alone reuse the compiled policies and peers of the others.
        f.modify("p1", randomPolicy("p1"));
        f.h->deleted(0, anp("p2", 0, ""), "", "p2");
        f.add("p9", randomPolicy("p9"));
        f.update(false);
        compare(f);
        // A pod change starts the index over.
        f.def("ravenclaw/luna-1").labels["app"] = "draco";
        f.h->host().removePod("ravenclaw", "luna-1");
        f.h->host().addPod(f.def("ravenclaw/luna-1").pod());
        f.update(true);
        compare(f);
    }
}

namespace {

// A random cluster for the pod delta: namespaces, nodes and pods whose labels change, pods that
// come and go (a new one often on an address just freed), and random policies naming
// namespaces, pods, nodes and networks.
class ChurnWorld {
public:
    struct Pod {
        std::string ns, name, node, uid, ip;
        std::map<std::string, std::string> labels;
        bool hostNetwork = false;
    };

    // `duplicates`: now and then a pod on an address a live pod holds (the model then walks
    // until one of them is gone).
    ChurnWorld(unsigned seed, bool duplicates) : rng_(seed), duplicates_(duplicates) {
        for (int n = 0; n < 4; ++n) nsLabels_["ns" + std::to_string(n)] = randomLabels({"env", "team"});
        for (int n = 1; n <= 3; ++n) nodeLabels_["node-" + std::to_string(n)] = randomLabels({"zone"});
        for (int i = 0; i < 20; ++i) pods_.push_back(newPod(freeIp()));
        for (int p = 0; p < 6; ++p) policies_["p" + std::to_string(p)] = randomPolicy("p" + std::to_string(p));
    }

    const std::vector<Pod>& pods() const { return pods_; }

    knp::testing::OwnedPod view(const Pod& d) const {
        OwnedPod p(d.ns, d.name);
        p.uid(d.uid);
        for (const auto& [k, v] : d.labels) p.label(k, v);
        for (const auto& [k, v] : nsLabels_.at(d.ns)) p.namespaceLabel(k, v);
        p.node(d.node);
        for (const auto& [k, v] : nodeLabels_.at(d.node)) p.nodeLabel(k, v);
        p.nodeAddress(nodeIp(d.node));
        p.containerPort(80, KNP_PROTO_TCP, "web").containerPort(53, KNP_PROTO_UDP, "dns");
        p.ip(d.hostNetwork ? nodeIp(d.node) : d.ip);
        p.hostNetwork(d.hostNetwork);
        return p;
    }

    // A harness holding the world's pods in the world's order (the host's walk order).
    std::unique_ptr<Harness> harness() const {
        auto h = std::make_unique<Harness>(std::string(KNP_ANP_SO));
        h->host().setNodeName("node-1");
        for (const Pod& d : pods_) h->host().addPod(view(d));
        kt::Status s = h->init();
        INFO(s.message);
        REQUIRE(s.ok());
        return h;
    }
    void addAllPolicies(Harness& h) const {
        for (const auto& [name, json] : policies_) h.added(0, json, "", name);
    }

    // One round of changes, applied to the world and to `h` (its host and its policy events).
    void churn(Harness& h) {
        kt::FakeHost& host = h.host();
        auto replace = [&](size_t i) {  // a changed pod moves to the end of the host's order
            host.removePod(pods_[i].ns, pods_[i].name);
            Pod d = pods_[i];
            pods_.erase(pods_.begin() + static_cast<long>(i));
            pods_.push_back(d);
            host.addPod(view(d));
        };
        for (int n = 1 + static_cast<int>(rng_() % 4); n > 0; --n) {
            if (pods_.empty()) {
                pods_.push_back(newPod(freeIp()));
                host.addPod(view(pods_.back()));
            }
            switch (rng_() % 9) {
                case 0:
                case 1: {  // a pod relabelled
                    size_t i = rng_() % pods_.size();
                    pods_[i].labels = randomLabels({"app", "tier"});
                    replace(i);
                    break;
                }
                case 2: {  // a pod deleted; its address is free for the next one
                    size_t i = rng_() % pods_.size();
                    host.removePod(pods_[i].ns, pods_[i].name);
                    if (!pods_[i].hostNetwork) freed_.push_back(pods_[i].ip);
                    pods_.erase(pods_.begin() + static_cast<long>(i));
                    break;
                }
                case 3:
                case 4: {  // a pod added, often on an address freed this round or before
                    std::string ip;
                    if (!freed_.empty() && pick(3) != 0) {
                        ip = freed_.back();
                        freed_.pop_back();
                    } else {
                        ip = freeIp();
                    }
                    // Now and then on an address a live pod still holds.
                    if (duplicates_ && !pods_.empty() && pick(10) == 0)
                        ip = pods_[pick(static_cast<unsigned>(pods_.size()))].ip;
                    pods_.push_back(newPod(ip));
                    host.addPod(view(pods_.back()));
                    break;
                }
                case 5: {  // a namespace relabelled: every pod of it changes
                    std::string ns = "ns" + std::to_string(rng_() % 4);
                    nsLabels_[ns] = randomLabels({"env", "team"});
                    for (size_t i = pods_.size(); i-- > 0;)
                        if (pods_[i].ns == ns) replace(i);
                    break;
                }
                case 6: {  // a node relabelled: every pod on it changes
                    std::string node = "node-" + std::to_string(1 + rng_() % 3);
                    nodeLabels_[node] = randomLabels({"zone"});
                    for (size_t i = pods_.size(); i-- > 0;)
                        if (pods_[i].node == node) replace(i);
                    break;
                }
                case 7: {  // a pod moves to another node (as a new pod would)
                    size_t i = rng_() % pods_.size();
                    pods_[i].node = "node-" + std::to_string(1 + rng_() % 3);
                    pods_[i].uid = "uid-" + std::to_string(next_++);
                    replace(i);
                    break;
                }
                default: {  // a policy added, changed or deleted, in the same update
                    std::string name = "p" + std::to_string(rng_() % 8);
                    if (policies_.count(name) != 0 && rng_() % 3 == 0) {
                        h.deleted(0, policies_[name], "", name);
                        policies_.erase(name);
                    } else {
                        bool known = policies_.count(name) != 0;
                        policies_[name] = randomPolicy(name);
                        if (known) {
                            h.modified(0, policies_[name], "", name);
                        } else {
                            h.added(0, policies_[name], "", name);
                        }
                    }
                }
            }
        }
        if (pods_.empty()) {
            pods_.push_back(newPod(freeIp()));
            host.addPod(view(pods_.back()));
        }
    }

private:
    unsigned pick(unsigned n) { return static_cast<unsigned>(rng_() % n); }

    std::map<std::string, std::string> randomLabels(std::initializer_list<const char*> keys) {
        static const char* values[] = {"a", "b", "c"};
        std::map<std::string, std::string> out;
        for (const char* k : keys)
            if (pick(4) != 0) out[k] = values[pick(3)];
        return out;
    }
    static std::string nodeIp(const std::string& node) { return "192.168.1." + node.substr(5); }
    std::string freeIp() { return "10.244.0." + std::to_string(++lastIp_); }
    Pod newPod(const std::string& ip) {
        Pod d;
        d.ns = "ns" + std::to_string(pick(4));
        d.name = "pod-" + std::to_string(next_);
        d.uid = "uid-" + std::to_string(next_++);
        d.node = "node-" + std::to_string(1 + pick(3));
        d.ip = ip;
        d.labels = randomLabels({"app", "tier"});
        d.hostNetwork = pick(10) == 0;
        return d;
    }
    std::string selector(std::initializer_list<const char*> keys) {
        static const char* values[] = {"a", "b", "c"};
        if (pick(4) == 0) return "{}";
        std::string key = *(keys.begin() + pick(static_cast<unsigned>(keys.size())));
        if (pick(3) == 0)
            return R"({"matchExpressions": [{"key": ")" + key + R"(", "operator": ")" +
                   (pick(2) ? "Exists" : "DoesNotExist") + R"("}]})";
        return R"({"matchLabels": {")" + key + R"(": ")" + values[pick(3)] + R"("}})";
    }
    std::string randomPolicy(const std::string& name) {
        static const char* actions[] = {"Allow", "Deny", "Pass"};
        auto rules = [&](bool egress) {
            std::string out;
            for (unsigned r = 0, n = pick(5); r < n; ++r) {
                std::string peer;
                bool addressPeer = false;
                switch (pick(egress ? 6 : 4)) {
                    case 0:
                        peer = R"({"namespaces": )" + selector({"env", "team"}) + "}";
                        break;
                    case 1:
                    case 2:
                        peer = R"({"pods": {"namespaceSelector": )" + selector({"env", "team"}) +
                               R"(, "podSelector": )" + selector({"app", "tier"}) + "}}";
                        break;
                    case 3:
                        peer = R"({"futurePeer": {"x": 1}})";
                        break;
                    case 4:
                        peer = R"({"nodes": )" + selector({"zone"}) + "}";
                        addressPeer = true;
                        break;
                    default:
                        peer = R"({"networks": ["10.244.0.)" + std::to_string(pick(4) * 8) + R"(/29"]})";
                        addressPeer = true;
                }
                std::string ports;
                if (pick(2) == 0)
                    ports = addressPeer ? R"(, "ports": [{"portNumber": {"port": 80}}])"
                                        : R"(, "ports": [{"portNumber": {"port": 80}}, {"namedPort": "dns"}])";
                out += (r ? "," : "") + std::string(R"({"action": ")") + actions[pick(3)] + R"(", ")" +
                       (egress ? "to" : "from") + R"(": [)" + peer + "]" + ports + "}";
            }
            return out;
        };
        std::string subject = pick(2) ? R"({"namespaces": )" + selector({"env", "team"}) + "}"
                                      : R"({"pods": {"namespaceSelector": )" + selector({"env", "team"}) +
                                            R"(, "podSelector": )" + selector({"app", "tier"}) + "}}";
        return anp(name, static_cast<int>(pick(4)),
                   R"(, "ingress": [)" + rules(false) + R"(], "egress": [)" + rules(true) + "]", subject);
    }

    std::mt19937 rng_;
    std::map<std::string, std::map<std::string, std::string>> nsLabels_, nodeLabels_;
    std::vector<Pod> pods_;
    std::map<std::string, std::string> policies_;
    std::vector<std::string> freed_;
    bool duplicates_;
    int next_ = 0;
    int lastIp_ = 0;
};

// The plugin's last debug line: "N policies (...), N pods in N identities, N peers, N rule
// tables; local subjects: ...; update took N us (how the pods were learnt)".
std::string lastUpdate(Harness& h) {
    std::string last;
    for (const auto& l : h.host().logs())
        if (l.level == KNP_LOG_DEBUG && l.message.find(" identities, ") != std::string::npos) last = l.message;
    REQUIRE_FALSE(last.empty());
    return last;
}

// The local addresses of the interest, per direction, sorted.
std::vector<std::string> localInterest(Harness& h) {
    std::vector<std::string> out;
    for (const auto& [dir, in] : {std::pair{"in ", h.ingressInterest()}, std::pair{"out ", h.egressInterest()}})
        if (in)
            for (const knp_cidr& c : in->local) out.push_back(dir + knp::formatCidr(c));
    std::sort(out.begin(), out.end());
    return out;
}

// Its sizes, without the timing.
std::string indexSizes(Harness& h) {
    std::string last = lastUpdate(h);
    return last.substr(0, last.find("; update took"));
}

}  // namespace

TEST_CASE("randomized: the pod delta, a fresh index and the walk agree") {
    std::array<size_t, 3> mix{};
    for (bool delta : {true, false}) {
        size_t applied = 0, walked = 0;
        for (unsigned seed = 1; seed <= 12; ++seed) {
            CAPTURE(delta);
            CAPTURE(seed);
            ChurnWorld w(seed, seed % 4 == 0);
            auto incremental = w.harness();
            incremental->host().setPodChanges(delta);
            w.addAllPolicies(*incremental);
            REQUIRE(incremental->update(true).ok());
            for (int round = 0; round < 16; ++round) {
                CAPTURE(round);
                w.churn(*incremental);
                kt::UpdateStatus s = incremental->update(true);
                INFO(s.message);
                REQUIRE(s.ok());
                auto fresh = w.harness();
                w.addAllPolicies(*fresh);
                REQUIRE(fresh->update(true).ok());
                CHECK(indexSizes(*incremental) == indexSizes(*fresh));
                CHECK(localInterest(*incremental) == localInterest(*fresh));
                (lastUpdate(*incremental).find("pod changes applied") != std::string::npos ? applied : walked)++;
                std::vector<OwnedPod> views;
                for (const auto& d : w.pods()) views.push_back(w.view(d));
                size_t differing = 0;
                for (size_t a = 0; a < views.size(); ++a) {
                    for (size_t b = 0; b < views.size(); ++b) {
                        if (a == b) continue;
                        const auto &da = w.pods()[a], &db = w.pods()[b];
                        for (auto [proto, port] : {std::pair<uint8_t, uint16_t>{KNP_PROTO_TCP, 80},
                                                   {KNP_PROTO_UDP, 53},
                                                   {KNP_PROTO_TCP, 22}}) {
                            knp_packet pkt =
                                makePacket(da.hostNetwork ? "192.168.1." + da.node.substr(5) : da.ip,
                                           db.hostNetwork ? "192.168.1." + db.node.substr(5) : db.ip, proto, port);
                            const knp_pod* pa = da.hostNetwork ? nullptr : views[a].get();
                            const knp_pod* pb = db.hostNetwork ? nullptr : views[b].get();
                            for (bool in : {true, false}) {
                                auto eval = [&](Harness& h) {
                                    return in ? h.evaluateIngress(pkt, pa, pb) : h.evaluateEgress(pkt, pa, pb);
                                };
                                auto x = eval(*incremental), y = eval(*fresh);
                                ++mix[static_cast<size_t>(x.verdict) % 3];
                                if ((x.verdict != y.verdict || x.rule != y.rule) && ++differing <= 3) {
                                    INFO(da.ns << "/" << da.name << " -> " << db.ns << "/" << db.name << " "
                                               << int(proto) << "/" << port << (in ? " ingress" : " egress")
                                               << ": incremental " << int(x.verdict) << " " << x.rule << "; fresh "
                                               << int(y.verdict) << " " << y.rule);
                                    CHECK(false);
                                }
                            }
                        }
                    }
                }
                CHECK(differing == 0);
            }
        }
        // With the list, most updates apply it (the rest: a node came, went or changed, or two
        // live pods claimed one address); without it, every update walks.
        MESSAGE("delta ", delta, ": ", applied, " updates applied the pod changes, ", walked, " walked");
        CHECK(delta ? applied > walked : applied == 0);
    }
    MESSAGE("evaluations: ", mix[KNP_VERDICT_NEXT], " NEXT, ", mix[KNP_VERDICT_ACCEPT], " ACCEPT, ",
            mix[KNP_VERDICT_DENY], " DENY");
    size_t total = mix[0] + mix[1] + mix[2];
    for (size_t v : mix) CHECK(v * 20 > total);
}

TEST_CASE("peers no policy names any more are dropped") {
    Fixture f(KNP_ANP_SO);
    f.add("a", anp("a", 10, R"(, "ingress": [{"action": "Deny", "from": )" + from("slytherin") + "}]"));
    f.add("b", anp("b", 10,
                   R"(, "ingress": [{"action": "Deny", "from": )" + from("slytherin") + "}, " +
                       R"({"action": "Deny", "from": )" + from("ravenclaw") + "}]"));
    f.update(true);
    CHECK(indexSizes(*f.h).find(" 2 peers, ") != std::string::npos);
    f.h->deleted(0, anp("b", 10, ""), "", "b");
    f.update();
    CHECK(indexSizes(*f.h).find(" 1 peers, ") != std::string::npos);  // slytherin's: "a" still names it
    CHECK(f.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    CHECK(f.ingress("ravenclaw/luna-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Next);
    // A pod change after the drop, then the peer back under another policy: a reused id.
    f.def("ravenclaw/luna-0").labels["app"] = "luna-moved";
    f.h->host().removePod("ravenclaw", "luna-0");
    f.h->host().addPod(f.def("ravenclaw/luna-0").pod());
    f.update(true);
    f.add("c", anp("c", 5, R"(, "ingress": [{"action": "Allow", "from": )" + from("ravenclaw") + "}]"));
    f.update();
    CHECK(indexSizes(*f.h).find(" 2 peers, ") != std::string::npos);
    CHECK(f.ingress("ravenclaw/luna-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Accept);
    CHECK(f.ingress("slytherin/draco-0", "gryffindor/harry-0", KNP_PROTO_TCP, 80).verdict == Verdict::Deny);
    f.h->deleted(0, anp("a", 10, ""), "", "a");
    f.h->deleted(0, anp("c", 5, ""), "", "c");
    f.update();
    CHECK(indexSizes(*f.h).find(" 0 peers, 0 rule tables") != std::string::npos);
}
