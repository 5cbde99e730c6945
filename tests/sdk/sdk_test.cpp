// tests/sdk: the C++ SDK itself — the trampolines plugin.hpp generates (no exception crosses
// the ABI), and knp/testing.hpp (FakeHost, OwnedPod, makePacket, Harness), driven with a plugin
// compiled into this test.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <knp/plugin.hpp>
#include <knp/testing.hpp>

#include <atomic>
#include <cerrno>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using knp::testing::ContractError;
using knp::testing::FakeHost;
using knp::testing::Harness;
using knp::testing::makePacket;
using knp::testing::OwnedPod;

namespace {

// Snapshots alive right now: the harness must release each exactly once.
std::atomic<int> gLiveSnapshots{0};

// The snapshot's reason is built in update(), so it lives as long as the snapshot, as the ABI
// requires of reason strings.
struct RecSnap {
    knp::Interest interest;
    std::string summary;

    RecSnap() { ++gLiveSnapshots; }
    RecSnap(const RecSnap&) = delete;
    RecSnap& operator=(const RecSnap&) = delete;
    ~RecSnap() { --gLiveSnapshots; }

    // The destination port picks a failure, so one snapshot covers every trampoline path.
    knp::Decision evaluateIngress(const knp::EvalArgs& a) const {
        switch (a.packet().dstPort()) {
            case 1:
                throw std::runtime_error("boom");
            case 2:
                throw std::bad_alloc();
            case 3:
                throw 42;
            default:
                return knp::Decision::deny(summary, "summary");
        }
    }
    knp::Decision evaluateEgress(const knp::EvalArgs& a) const {
        return a.dstPod() ? knp::Decision::accept("to a pod", "pods") : knp::Decision::next();
    }
};

std::string_view typeName(knp::EventType t) {
    switch (t) {
        case knp::EventType::Added:
            return "ADDED";
        case knp::EventType::Modified:
            return "MODIFIED";
        case knp::EventType::Deleted:
            return "DELETED";
        case knp::EventType::Synced:
            return "SYNCED";
        case knp::EventType::Relist:
            return "RELIST";
    }
    return "?";
}

// Records what it is given into the snapshot's summary; the config picks a constructor failure.
class Recorder : public knp::Plugin<Recorder, RecSnap> {
public:
    static constexpr knp::PluginInfo kInfo{.name = "recorder", .version = "1.0.0", .description = "test"};

    explicit Recorder(const knp::InitContext& ctx) : Plugin(ctx) {
        std::string_view c = ctx.configJson;
        if (c.find("ctor-config") != c.npos) throw knp::ConfigError("/rules/0/cidrs/1", "bad CIDR \"x\"");
        if (c.find("ctor-runtime") != c.npos) throw std::runtime_error("cannot start");
        if (c.find("ctor-alloc") != c.npos) throw std::bad_alloc();
        if (c.find("ctor-other") != c.npos) throw 7;
        updates_ = host().defineMetric(KNP_METRIC_COUNTER, "updates_total", "update() calls");
        host().info("started " + instanceName() + " on node \"" + nodeName() + "\" with " + std::string(c));
    }

    std::vector<knp::Watch> watches() const {
        return {{"", "v1", "configmaps", "ConfigMap", "", "", ""},
                {"networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", "prod", "app=x", ""}};
    }

    std::unique_ptr<RecSnap> update(const knp::Update& u) {
        host().add(updates_, 1);
        auto s = std::make_unique<RecSnap>();
        for (knp::EventView e : u) {
            if (e.object() == "unchanged") return nullptr;
            if (e.object() == "throw") throw std::runtime_error("cannot apply " + std::string(e.name()));
            s->summary += std::string(typeName(e.type())) + "@" + std::to_string(e.watchIndex()) + ":" +
                          std::string(e.objectNamespace()) + "/" + std::string(e.name()) + " ";
        }
        int all = 0, local = 0, first = 0;
        host().forEachPod(false, [&](knp::PodView p) {
            if (p.name() == "explode") throw std::runtime_error("pod callback failed");
            ++all;
        });
        host().forEachPod(true, [&](knp::PodView) { ++local; });
        host().forEachPod(false, [&](knp::PodView) {
            ++first;
            return false;  // stop after the first
        });
        s->summary += "pods=" + std::to_string(all) + " local=" + std::to_string(local) +
                      " first=" + std::to_string(first) + " changed=" + (u.podsChanged() ? "1" : "0");
        s->interest.egress.remote.push_back(*knp::parseCidr("10.0.0.0/8"));
        s->interest.egress.protocols = KNP_PROTO_BIT_TCP;
        return s;
    }

private:
    uint32_t updates_ = UINT32_MAX;
};

const knp_packet kTcp = makePacket("10.0.0.1", "10.0.0.2", KNP_PROTO_TCP, 80);

}  // namespace

TEST_CASE("knp::jsonPointer escapes per RFC 6901") {
    CHECK(knp::jsonPointer("", "rules") == "/rules");
    CHECK(knp::jsonPointer("/rules", size_t{3}) == "/rules/3");
    CHECK(knp::jsonPointer("", "a/b~c") == "/a~1b~0c");
}

TEST_CASE("OwnedPod exposes a valid, sorted knp_pod that survives copies and moves") {
    OwnedPod pod = OwnedPod("shop", "web")
                       .label("tier", "front")
                       .label("app", "web")
                       .namespaceLabel("env", "prod")
                       .node("node-1")
                       .nodeLabel("zone", "a")
                       .nodeAddress("192.168.0.1")
                       .containerPort(8080, KNP_PROTO_TCP, "http")
                       .containerPort(53, KNP_PROTO_UDP)
                       .ip("10.0.0.2")
                       .ip("fd00::2");
    auto check = [](const OwnedPod& p) {
        knp::PodView v = p.view();
        CHECK(v.name() == "web");
        CHECK(v.podNamespace() == "shop");
        CHECK(v.uid() == "shop/web");
        REQUIRE(v.labels().size() == 2);
        CHECK(knp::toView(v.labels()[0].key) == "app");  // sorted by key, not insertion
        CHECK(v.label("tier") == "front");
        CHECK(v.namespaceLabel("kubernetes.io/metadata.name") == "shop");
        CHECK(v.namespaceLabel("env") == "prod");
        CHECK(v.nodeName() == "node-1");
        CHECK(knp::findLabel(v.nodeLabels(), "zone") == "a");
        REQUIRE(v.nodeAddresses().size() == 1);
        REQUIRE(v.containerPorts().size() == 2);
        CHECK(knp::toView(v.containerPorts()[0].name) == "http");
        CHECK(v.containerPorts()[1].protocol == KNP_PROTO_UDP);
        REQUIRE(v.ips().size() == 2);
        CHECK(v.ips()[0].family == KNP_FAMILY_IPV4);
        CHECK(v.ips()[1].family == KNP_FAMILY_IPV6);
        CHECK_FALSE(v.hostNetwork());
        CHECK(p.get()->struct_size == sizeof(knp_pod));
    };
    check(pod);
    OwnedPod copy = pod;
    check(copy);
    OwnedPod moved = std::move(copy);
    check(moved);
    std::vector<OwnedPod> many;
    for (int i = 0; i < 20; ++i) many.push_back(pod);  // reallocation moves them all
    check(many.front());

    CHECK(OwnedPod("a", "b").hostNetwork().view().hostNetwork());
    CHECK_THROWS_AS(OwnedPod("a", "b").ip("10.0.0.300"), std::invalid_argument);
    CHECK_THROWS_AS(OwnedPod("a", "b").namespaceLabel("kubernetes.io/metadata.name", "c"), std::invalid_argument);
}

TEST_CASE("makePacket fills a first packet as the host parses it") {
    knp_packet p = makePacket("fd00::1", "fd00::2", KNP_PROTO_UDP, 53);
    CHECK(p.struct_size == sizeof(knp_packet));
    CHECK(p.family == KNP_FAMILY_IPV6);
    CHECK(p.dst_port == 53);
    knp_packet icmp = makePacket("10.0.0.1", "10.0.0.2", KNP_PROTO_ICMP, 99);
    CHECK(icmp.family == KNP_FAMILY_IPV4);
    CHECK(icmp.dst_port == 0);  // ICMP carries no ports
    CHECK(icmp.icmp_type == 8);
    CHECK_THROWS_AS(makePacket("10.0.0.1", "fd00::1", KNP_PROTO_TCP, 1), std::invalid_argument);
}

TEST_CASE("FakeHost records services and flags calls that break the host's rules") {
    FakeHost host;
    knp::Host h(host.api(), host.ctx());
    h.warning("careful");
    CHECK(host.logged("careful", KNP_LOG_WARNING));
    CHECK_FALSE(host.logged("careful", KNP_LOG_ERROR));
    host.setLogLevel(KNP_LOG_INFO);
    CHECK(h.logEnabled(KNP_LOG_INFO));
    CHECK_FALSE(h.logEnabled(KNP_LOG_DEBUG));

    uint32_t c = h.defineMetric(KNP_METRIC_COUNTER, "hits_total", "hits");
    uint32_t g = h.defineMetric(KNP_METRIC_GAUGE, "rules", "rules loaded");
    uint32_t hist = h.defineMetric(KNP_METRIC_HISTOGRAM, "latency_seconds", "latency");
    CHECK(h.defineMetric(KNP_METRIC_COUNTER, "hits_total", "again") == UINT32_MAX);  // duplicate
    h.add(c, 2);
    h.add(c, 3);
    h.set(g, 7);
    h.observe(hist, 0.5);
    CHECK(host.metric("hits_total")->value == 5);
    CHECK(host.metric("rules")->value == 7);
    CHECK(host.metric("latency_seconds")->observations == std::vector<double>{0.5});
    CHECK(host.violations().empty());

    h.requestUpdate();
    h.requestUpdate();
    CHECK(host.updateRequests() == 2);
    uint64_t t0 = h.monotonicNs();
    host.advanceClock(5);
    CHECK(h.monotonicNs() == t0 + 5);

    // Each of these is a plugin bug a real host may not survive; the fake names it.
    h.set(c, 1);  // set on a counter
    host.api()->metric_add(host.ctx(), 99, 1);
    host.api()->log(host.ctx(), 17, knp::toC("x"));
    int seen = 0;
    h.forEachPod(false, [&](knp::PodView) { ++seen; });  // outside update()
    std::thread([&] { h.defineMetric(KNP_METRIC_GAUGE, "late", "off thread"); }).join();
    CHECK(host.violations().size() == 5);
    CHECK(seen == 0);
}

TEST_CASE("descriptorProblem refuses what the host's loader refuses") {
    const knp_plugin_descriptor good = *Recorder::descriptor();
    CHECK_FALSE(knp::testing::descriptorProblem(&good));
    CHECK(good.capabilities == (KNP_CAP_INGRESS | KNP_CAP_EGRESS));
    CHECK(static_cast<bool>(good.get_watches));

    auto problem = [&](auto mutate) {
        knp_plugin_descriptor d = good;
        mutate(d);
        CHECK_THROWS_AS(Harness{&d}, ContractError);
        return knp::testing::descriptorProblem(&d).value_or("");
    };
    CHECK(knp::testing::descriptorProblem(nullptr) == "the entry returned no descriptor");
    CHECK(problem([](auto& d) { d.abi_major = 2; }) == "ABI major 2, host has 1");
    CHECK(problem([](auto& d) { d.abi_minor = KNP_ABI_MINOR + 1; }).find("newer than the host's") != std::string::npos);
    CHECK(problem([](auto& d) { d.struct_size = 16; }).find("smaller than ABI 1.0's") != std::string::npos);
    CHECK(problem([](auto& d) { d.struct_size = 4; }) == "descriptor struct_size 4 is too small");
    CHECK(problem([](auto& d) { d.update = nullptr; }) == "descriptor function update is NULL");
    CHECK(problem([](auto& d) { d.evaluate_egress = nullptr; }) == "descriptor claims egress without evaluate_egress");
    CHECK(problem([](auto& d) { d.capabilities = 0; }) == "descriptor claims neither ingress nor egress");
    CHECK(problem([](auto& d) { d.capabilities |= 0x100; }) == "descriptor claims unknown capabilities");
    CHECK(problem([](auto& d) { d.name = ""; }) == "descriptor has no name");
}

TEST_CASE("constructor exceptions become error values with message and pointer") {
    struct Case {
        const char* config;
        int32_t rc;
        const char* message;
        const char* pointer;
    };
    const Case cases[] = {
        {R"({"x":"ctor-config"})", -EINVAL, "bad CIDR \"x\"", "/rules/0/cidrs/1"},
        {R"({"x":"ctor-runtime"})", -EIO, "cannot start", ""},
        {R"({"x":"ctor-alloc"})", -ENOMEM, "out of memory", ""},
        {R"({"x":"ctor-other"})", -EIO, "unknown exception", ""},
    };
    for (const Case& c : cases) {
        CAPTURE(c.config);
        Harness h(Recorder::descriptor());
        knp::testing::Status s = h.init(c.config);
        CHECK(s.rc == c.rc);
        CHECK(s.message == c.message);
        CHECK(s.pointer == c.pointer);
        CHECK_THROWS_AS(h.update(), std::logic_error);  // no instance to update
    }
}

TEST_CASE("Harness drives init, watches, batched events, pods and snapshots through the ABI") {
    REQUIRE(gLiveSnapshots == 0);
    {
        Harness h(Recorder::descriptor());
        h.host().setNodeName("node-1");
        h.host().addPod(OwnedPod("shop", "web").node("node-1").ip("10.0.0.2"));
        h.host().addPod(OwnedPod("shop", "db").node("node-2").ip("10.0.0.3"));
        REQUIRE(h.init("{}", "rec-1").ok());
        CHECK(h.host().logged("started rec-1 on node \"node-1\" with {}", KNP_LOG_INFO));

        REQUIRE(h.watches().size() == 2);
        CHECK(h.watches()[1].resource == "networkpolicies");
        CHECK(h.watches()[1].watchNamespace == "prod");
        CHECK(h.watches()[1].labelSelector == "app=x");
        CHECK_THROWS_AS(h.added(2, "{}"), std::logic_error);
        CHECK_THROWS_AS(h.evaluateIngress(kTcp), std::logic_error);  // no snapshot yet

        h.added(0, R"({"kind":"ConfigMap"})", "shop", "cm");
        h.modified(1, R"({"kind":"NetworkPolicy"})", "prod", "np");
        h.synced(0);
        auto u = h.update(true);
        REQUIRE(u.ok());
        CHECK(u.newSnapshot);
        auto r = h.evaluateIngress(kTcp);
        CHECK(r.rc == 0);
        CHECK(r.verdict == knp::Verdict::Deny);
        CHECK(r.reason == "ADDED@0:shop/cm MODIFIED@1:prod/np SYNCED@0:/ pods=2 local=1 first=1 changed=1");
        CHECK(r.rule == "summary");
        CHECK(gLiveSnapshots == 1);

        // The events were consumed: the next update sees none.
        REQUIRE(h.update().newSnapshot);
        CHECK(h.evaluateIngress(kTcp).reason == "pods=2 local=1 first=1 changed=0");
        CHECK(h.snapshotsReleased() == 1);
        CHECK(gLiveSnapshots == 1);

        // "Unchanged" keeps the current snapshot.
        h.deleted(0, "unchanged");
        auto same = h.update();
        CHECK(same.ok());
        CHECK_FALSE(same.newSnapshot);
        CHECK(h.snapshotsReleased() == 1);

        // A failing update keeps the current snapshot too, and reports the message.
        h.added(0, "throw", "shop", "bad");
        auto failed = h.update();
        CHECK(failed.rc == -EIO);
        CHECK(failed.message == "cannot apply bad");
        CHECK(h.evaluateIngress(kTcp).verdict == knp::Verdict::Deny);

        // An exception inside the for_each_pod callback must not unwind through the host.
        h.host().addPod(OwnedPod("shop", "explode"));
        auto exploded = h.update();
        CHECK(exploded.rc == -EIO);
        CHECK(exploded.message == "pod callback failed");
        CHECK(h.host().removePod("shop", "explode"));

        CHECK(h.host().metric("updates_total")->value == 5);
        CHECK(h.host().violations().empty());

        // The interest the SDK built from the snapshot, as the host reads it.
        auto eg = h.egressInterest();
        REQUIRE(eg);
        REQUIRE(eg->remote.size() == 1);
        CHECK(knp::formatCidr(eg->remote[0]) == "10.0.0.0/8");
        CHECK(eg->protocols == KNP_PROTO_BIT_TCP);
        CHECK_FALSE(h.ingressInterest());

        auto pod = OwnedPod("shop", "web").ip("10.0.0.2");
        CHECK(h.evaluateEgress(kTcp, nullptr, pod.get()).verdict == knp::Verdict::Accept);
        CHECK(h.evaluateEgress(kTcp).verdict == knp::Verdict::Next);
    }
    CHECK(gLiveSnapshots == 0);  // the destructor released the last one
}

TEST_CASE("evaluation exceptions become error returns, never a crash") {
    Harness h(Recorder::descriptor());
    REQUIRE(h.init().ok());
    REQUIRE(h.update().ok());
    CHECK(h.evaluateIngress(makePacket("10.0.0.1", "10.0.0.2", KNP_PROTO_TCP, 1)).rc == -EIO);
    CHECK(h.evaluateIngress(makePacket("10.0.0.1", "10.0.0.2", KNP_PROTO_TCP, 2)).rc == -ENOMEM);
    CHECK(h.evaluateIngress(makePacket("10.0.0.1", "10.0.0.2", KNP_PROTO_TCP, 3)).rc == -EIO);
    CHECK(h.evaluateIngress(kTcp).rc == 0);

    // The raw trampoline refuses missing arguments instead of dereferencing them.
    knp_eval_args args{sizeof(knp_eval_args), 0, nullptr, nullptr, nullptr};
    knp_eval_result out{};
    CHECK(h.descriptor().evaluate_ingress(h.snapshot(), &args, &out) == -EINVAL);
}

TEST_CASE("Harness catches a plugin that breaks the snapshot contract") {
    static int fixedSnapshot;
    knp_plugin_descriptor d = *Recorder::descriptor();
    d.update = [](knp_plugin*, const knp_update_args*, knp_update_result* out, knp_error*) -> int32_t {
        out->snapshot = &fixedSnapshot;  // the same pointer every time
        return 0;
    };
    d.release_snapshot = [](knp_plugin*, void*) {};
    d.evaluate_egress = [](const void*, const knp_eval_args*, knp_eval_result* out) -> int32_t {
        out->verdict = 9;
        return 0;
    };
    Harness h(&d);
    REQUIRE(h.init().ok());
    REQUIRE(h.update().newSnapshot);
    CHECK_THROWS_AS(h.update(), ContractError);
    CHECK_THROWS_AS(h.evaluateEgress(kTcp), ContractError);
}
