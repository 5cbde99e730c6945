// Engine ordering: per direction, first non-NEXT wins in pipeline order; all NEXT accepts;
// errors and out-of-range verdicts get the instance's onError; accepted iff neither denies.
#include <fmt/format.h>

#include <boost/json.hpp>
#include <knp/types.hpp>

#include "cluster/cluster.hpp"
#include "engine/engine.hpp"
#include "helpers.hpp"

using namespace knp::host;
using namespace knp::host::test;

namespace {

knp_packet packet(const char* src, const char* dst, uint16_t port, uint8_t proto = KNP_PROTO_TCP) {
    knp_packet p{};
    p.struct_size = sizeof p;
    p.src = *knp::parseAddr(src);
    p.dst = *knp::parseAddr(dst);
    p.family = p.src.family;
    p.protocol = proto;
    p.src_port = 40000;
    p.dst_port = port;
    return p;
}

struct Run {
    std::unique_ptr<Pipeline> pipeline;
    std::shared_ptr<const ClusterSnapshot> cluster;

    explicit Run(const std::string& instances) {
        auto r = loadPipelineText(instances);
        if (!r) FAIL(r.error().message);
        pipeline = std::move(*r);
        cluster = ClusterState().build("");
        auto errors = pipeline->flush(KNP_UPDATE_PODS_CHANGED, *cluster);
        REQUIRE(errors.empty());
    }
    PacketVerdict eval(uint16_t port = 80) {
        auto pkt = packet("10.0.0.1", "10.0.0.2", port);
        return evaluatePacket(*pipeline->current(), *cluster, pkt);
    }
};

std::string fixed(const std::string& name, const std::string& config, const std::string& extra = "") {
    return "  - name: " + name + "\n    library: fixed\n    config: " + config + "\n" + extra;
}

}  // namespace

TEST_CASE("all NEXT accepts, with no deciding instance") {
    Run r(fixed("a", "{}") + fixed("b", "{}"));
    auto v = r.eval();
    CHECK(v.accept);
    CHECK(v.ingress.decidedBy == nullptr);
    CHECK(v.egress.decidedBy == nullptr);
    CHECK(v.ingress.verdict == KNP_VERDICT_ACCEPT);
}

TEST_CASE("the first non-NEXT verdict wins, in pipeline order") {
    SUBCASE("accept before deny") {
        Run r(fixed("first", "{ingress: accept}") + fixed("second", "{ingress: deny}"));
        auto v = r.eval();
        CHECK(v.accept);
        REQUIRE(v.ingress.decidedBy != nullptr);
        CHECK(v.ingress.decidedBy->name() == "first");
    }
    SUBCASE("deny before accept") {
        Run r(fixed("first", "{ingress: deny, reason: blocked}") + fixed("second", "{ingress: accept}"));
        auto v = r.eval();
        CHECK_FALSE(v.accept);
        CHECK(v.ingress.decidedBy->name() == "first");
        CHECK(v.ingress.reason == "blocked");
    }
    SUBCASE("NEXT passes to the next instance") {
        Run r(fixed("first", "{ingress: deny, dstPort: 22}") + fixed("second", "{ingress: accept}"));
        auto v80 = r.eval(80);
        CHECK(v80.accept);
        CHECK(v80.ingress.decidedBy->name() == "second");
        auto v22 = r.eval(22);
        CHECK_FALSE(v22.accept);
        CHECK(v22.ingress.decidedBy->name() == "first");
    }
}

TEST_CASE("directions are independent and a deny in either drops the connection") {
    Run r(fixed("eg", "{egress: deny}") + fixed("in", "{ingress: accept}"));
    auto v = r.eval();
    CHECK_FALSE(v.accept);
    CHECK(v.egress.verdict == KNP_VERDICT_DENY);
    CHECK(v.egress.decidedBy->name() == "eg");
    CHECK(v.ingress.verdict == KNP_VERDICT_ACCEPT);
    CHECK(v.ingress.decidedBy->name() == "in");
}

TEST_CASE("a disabled instance does not run") {
    Run r(fixed("off", "{ingress: deny}", "    enabled: false\n") + fixed("on", "{ingress: accept}"));
    auto v = r.eval();
    CHECK(v.accept);
    CHECK(v.ingress.decidedBy->name() == "on");
    CHECK(r.pipeline->instances().size() == 1);
}

TEST_CASE("plugin errors get the instance's onError") {
    SUBCASE("default onError is deny") {
        Run r("  - name: t\n    library: throws_sdk\n    config: {in: evaluate}\n" +
              fixed("after", "{ingress: accept}"));
        auto v = r.eval();
        CHECK_FALSE(v.accept);
        CHECK(v.ingress.decidedBy->name() == "t");
        CHECK(v.ingress.pluginError < 0);
    }
    SUBCASE("onError: next falls through") {
        Run r("  - name: t\n    library: throws_sdk\n    onError: next\n    config: {in: evaluate}\n" +
              fixed("after", "{ingress: deny}"));
        auto v = r.eval();
        CHECK(v.ingress.decidedBy->name() == "after");
    }
    SUBCASE("onError: accept") {
        Run r("  - name: t\n    library: throws_raw\n    onError: accept\n    config: {in: evaluate}\n" +
              fixed("after", "{ingress: deny}"));
        auto v = r.eval();
        CHECK(v.accept);
        CHECK(v.ingress.decidedBy->name() == "t");
        CHECK(v.ingress.pluginError < 0);
    }
    SUBCASE("an out-of-range verdict is an error") {
        Run r("  - name: odd\n    library: out_of_range\n" + fixed("after", "{ingress: accept}"));
        auto v = r.eval();
        CHECK_FALSE(v.accept);
        CHECK(v.ingress.decidedBy->name() == "odd");
        CHECK(v.ingress.reason.find("out-of-range") != std::string_view::npos);
    }
    SUBCASE("pipeline defaults.onError applies where an instance says nothing") {
        auto cfg = parsePipelineText(
            "apiVersion: knp.dev/v1alpha1\nkind: Pipeline\ndefaults: {onError: accept}\ninstances:\n"
            "  - name: odd\n    library: out_of_range\n",
            "p.yaml", "");
        REQUIRE(cfg.ok());
        CHECK(cfg->instances[0].onError == OnError::Accept);
    }
}

TEST_CASE("an update that throws is reported, and the instance without a snapshot gets onError") {
    auto p = loadPipelineText("  - name: t\n    library: throws_raw\n    config: {in: update}\n" +
                              fixed("b", "{ingress: accept}"));
    REQUIRE(p.ok());
    auto cluster = ClusterState().build("");
    auto errors = (*p)->flush(KNP_UPDATE_PODS_CHANGED, *cluster);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].message.find("plugin \"t\": update: update threw an exception") == 0);
    auto snap = (*p)->current();
    CHECK_FALSE(snap->ready());
    auto pkt = packet("10.0.0.1", "10.0.0.2", 80);
    auto v = evaluatePacket(*snap, *cluster, pkt);
    CHECK_FALSE(v.accept);  // onError deny, before "b" could accept
    CHECK(v.ingress.decidedBy->name() == "t");
    CHECK(v.ingress.reason.find("no snapshot yet") != std::string_view::npos);
}

TEST_CASE("pod ends are looked up and handed to plugins") {
    // watcher denies ingress to pods labelled watcher=deny and reports what it was sent.
    auto p = loadPipelineText("  - name: w\n    library: watcher\n");
    REQUIRE(p.ok());
    ClusterState state;
    auto pod = boost::json::parse(R"({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web","namespace":"prod",
        "labels":{"watcher":"deny"}},"spec":{"nodeName":"n1"},"status":{"phase":"Running","podIP":"10.0.0.2"}})");
    REQUIRE(state.apply(KNP_EVENT_ADDED, CoreKind::Pod, pod.as_object()).ok());
    auto cluster = state.build("n1");
    REQUIRE((*p)->flush(KNP_UPDATE_PODS_CHANGED, *cluster).empty());
    auto toPod = packet("10.0.0.1", "10.0.0.2", 80);
    auto v = evaluatePacket(*(*p)->current(), *cluster, toPod);
    CHECK_FALSE(v.accept);
    CHECK(v.ingress.reason == "widgets=0 policies=0");
    auto toOther = packet("10.0.0.1", "10.0.0.9", 80);
    CHECK(evaluatePacket(*(*p)->current(), *cluster, toOther).accept);
}

TEST_CASE("a plugin that saw the previous build is told which pods changed; one whose update failed walks") {
    auto p = loadPipelineText("  - name: w\n    library: watcher\n");
    REQUIRE(p.ok());
    auto metric = [&](std::string_view name) {
        for (const auto& m : (*p)->instances()[0]->pluginMetrics())
            if (m.name == name) return m.value;
        return -1.0;
    };
    ClusterState state;
    auto pod = [&](const char* name, const char* app) {
        auto o = boost::json::parse(fmt::format(R"({{"metadata":{{"name":"{}","namespace":"d","labels":{{"app":"{}"}}}},
            "spec":{{"nodeName":"n1"}},"status":{{"podIP":"10.0.0.{}"}}}})",
                                                name, app, name[0] - 'a' + 1));
        REQUIRE(state.apply(KNP_EVENT_MODIFIED, CoreKind::Pod, o.as_object()).ok());
    };
    pod("a", "x");
    pod("b", "x");
    auto c1 = state.build("n1");
    REQUIRE((*p)->flush(KNP_UPDATE_PODS_CHANGED, *c1).empty());
    CHECK(metric("watcher_pod_walks") == 1);  // the first update walks
    pod("a", "y");
    auto c2 = state.build("n1");
    REQUIRE((*p)->flush(KNP_UPDATE_PODS_CHANGED, *c2).empty());
    CHECK(metric("watcher_pod_changes") == 1);  // only "a"
    CHECK(metric("watcher_pod_walks") == 1);
    // A build the pipeline never saw breaks the chain: the next update walks again.
    pod("b", "y");
    (void)state.build("n1");
    pod("a", "z");
    auto c4 = state.build("n1");
    REQUIRE((*p)->flush(KNP_UPDATE_PODS_CHANGED, *c4).empty());
    CHECK(metric("watcher_pod_walks") == 2);
    CHECK(metric("watcher_pod_changes") == 1);
}

TEST_CASE("a plugin built for ABI 1.0 never sees the 1.1 pod delta flag") {
    // minor_zero fails any update carrying a flag 1.0 did not define.
    auto p = loadPipelineText("  - name: old\n    library: minor_zero\n  - name: w\n    library: watcher\n");
    REQUIRE(p.ok());
    ClusterState state;
    for (const char* app : {"x", "y", "z"}) {
        auto o = boost::json::parse(fmt::format(
            R"({{"metadata":{{"name":"a","namespace":"d","labels":{{"app":"{}"}}}},"status":{{"podIP":"10.0.0.1"}}}})",
            app));
        REQUIRE(state.apply(KNP_EVENT_MODIFIED, CoreKind::Pod, o.as_object()).ok());
        auto errors = (*p)->flush(KNP_UPDATE_PODS_CHANGED, *state.build("n1"));
        CHECK(errors.empty());
    }
    // ...while the 1.1 plugin next to it got the list on every update after the first.
    for (const auto& m : (*p)->instances()[1]->pluginMetrics())
        if (m.name == "watcher_pod_changes") CHECK(m.value == 2);
}
