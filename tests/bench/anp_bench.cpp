// Benchmark of the AdminNetworkPolicy plugin (adminnetworkpolicy.so) through the real C ABI, and
// of the whole tier pipeline (admin ANPs → NetworkPolicy → BaselineAdminNetworkPolicy) measured
// together, on synthetic clusters up to 1,000 ANPs × 100 rules over 100,000 pods.
//
// Run: meson test -C build --benchmark --suite policyapi --verbose (figures: plugins/policyapi/README.md).
//
// The cluster: namespaces of 100 pods labelled team=team<n % 100>, env=prod|staging|dev; pods in
// Deployments of 4-12 replicas (app, pod-template-hash labels) with named ports http (TCP 8080)
// and dns (UDP 53), 110 pods a node, node-0 being "this" node. ANP k selects the namespaces of
// team k % 100 (so every namespace is the subject of 1 % of the ANPs: 10 of 1,000, i.e. 1,000
// rules per pod), with 50 ingress and 50 egress rules each:
//   peers: namespaces of a team (15 %), pods of one app in one namespace (70 %, 85 % in ingress),
//          every namespace (0.1 %), networks with 1-3 CIDRs (15 %, egress only);
//   ports: none (25 %), portNumber, portRange, namedPort http/dns;
//   actions: Allow 45 %, Deny 45 %, Pass 10 %.
// Decisions (each timed alone): the local end is one of node-0's pods, the remote end any pod of
// the cluster (or an external address for 10 % of egress), the port one of the ports the rules
// name or a random one, half ingress, half egress.
// The pipeline run adds a NetworkPolicy per namespace (allow from the own namespace and team on
// 8080, default-deny otherwise) for half the namespaces and the BaselineAdminNetworkPolicy
// `default` (deny from env=dev, allow DNS); a decision calls the three instances in order and
// stops at the first verdict other than NEXT, as the host does.
#include <benchmark/benchmark.h>

#include <knp/testing.hpp>

#include <array>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <malloc.h>
#include <time.h>

#include "tsc_timer.hpp"

#if !defined(KNP_ANP_SO) || !defined(KNP_NETWORKPOLICY_SO)
#error "KNP_ANP_SO and KNP_NETWORKPOLICY_SO must name the built plugins (tests/bench/meson.build sets them)"
#endif

namespace {

using knp::testing::Harness;
using knp::testing::OwnedPod;

struct Pod {
    int ns;
    std::string name, app;
    uint32_t index;
};

struct World {
    int namespaces = 0;
    std::vector<Pod> pods;
    std::vector<std::vector<std::string>> appsOf;  // per namespace
    std::vector<OwnedPod> views;
};

std::string nsName(int n) { return "tenant-" + std::to_string(n); }
std::string team(int n) { return "team" + std::to_string(n % 100); }
std::string podIp(uint32_t i) {
    return "10." + std::to_string(64 + (i >> 16 & 63)) + "." + std::to_string(i >> 8 & 255) + "." +
           std::to_string(i & 255);
}

World makeWorld(int nPods, std::mt19937& rng) {
    World w;
    w.namespaces = std::max(1, nPods / 100);
    static const char* envs[] = {"prod", "staging", "dev"};
    w.appsOf.resize(static_cast<size_t>(w.namespaces));
    uint32_t index = 0;
    for (int n = 0; n < w.namespaces; ++n) {
        int apps = 0;
        for (int i = 0; i < 100 && static_cast<int>(index) < nPods;) {
            std::string app = "app" + std::to_string(apps++);
            w.appsOf[static_cast<size_t>(n)].push_back(app);
            std::string hash = std::to_string(rng() % 1000000);
            for (int r = 0, reps = 4 + static_cast<int>(rng() % 9); r < reps && i < 100; ++r, ++i)
                w.pods.push_back({n, app + "-" + hash + "-" + std::to_string(r), app, index++});
        }
    }
    w.views.reserve(w.pods.size());
    for (const Pod& p : w.pods) {
        OwnedPod v(nsName(p.ns), p.name);
        v.uid(p.name + "-uid").label("app", p.app).label("pod-template-hash", p.name.substr(p.app.size() + 1, 6));
        v.namespaceLabel("team", team(p.ns));  // kubernetes.io/metadata.name comes with OwnedPod
        v.namespaceLabel("env", envs[p.ns % 3]);
        int node = static_cast<int>(p.index / 110);
        v.node("node-" + std::to_string(node)).nodeLabel("kubernetes.io/os", "linux");
        v.nodeAddress("192.168." + std::to_string(node / 250) + "." + std::to_string(node % 250 + 1));
        v.containerPort(8080, KNP_PROTO_TCP, "http").containerPort(53, KNP_PROTO_UDP, "dns");
        v.ip(podIp(p.index));
        w.views.push_back(std::move(v));
    }
    return w;
}

std::string anpObject(const World& w, int k, std::mt19937& rng) {
    auto peer = [&](bool egress) -> std::string {
        unsigned r = rng() % 1000;
        if (r < 150) return R"({"namespaces": {"matchLabels": {"team": ")" + team(static_cast<int>(rng())) + R"("}}})";
        if (r == 150) return R"({"namespaces": {}})";
        if (r < 850 || !egress) {
            int n = static_cast<int>(rng() % static_cast<unsigned>(w.namespaces));
            const auto& apps = w.appsOf[static_cast<size_t>(n)];
            return R"({"pods": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ")" + nsName(n) +
                   R"("}}, "podSelector": {"matchLabels": {"app": ")" + apps[rng() % apps.size()] + R"("}}}})";
        }
        std::string nets;
        for (unsigned i = 0, n = 1 + rng() % 3; i < n; ++i)
            nets += (i ? ", \"" : "\"") + std::to_string(100 + rng() % 100) + "." + std::to_string(rng() % 256) +
                    ".0.0/16\"";
        return R"({"networks": [)" + nets + "]}";
    };
    auto rules = [&](bool egress) {
        std::string out;
        for (int i = 0; i < 50; ++i) {
            unsigned a = rng() % 100;
            const char* action = a < 45 ? "Allow" : a < 90 ? "Deny" : "Pass";
            std::string p = peer(egress);
            std::string ports;
            unsigned pr = rng() % 4;
            if (pr == 1) ports = R"(, "ports": [{"portNumber": {"port": )" + std::to_string(8000 + rng() % 200) + "}}]";
            if (pr == 2)
                ports =
                    R"(, "ports": [{"portRange": {"protocol": "UDP", "start": 5000, "end": 6000}}, {"portNumber": {"port": 443}}])";
            if (pr == 3 && p.find("networks") == std::string::npos)
                ports = std::string(R"(, "ports": [{"namedPort": ")") + (rng() % 2 ? "http" : "dns") + "\"}]";
            out += (i ? "," : "") + std::string(R"({"name": "r)") + std::to_string(i) + R"(", "action": ")" + action +
                   (egress ? R"(", "to": [)" : R"(", "from": [)") + p + "]" + ports + "}";
        }
        return out;
    };
    return R"({"apiVersion": "policy.networking.k8s.io/v1alpha1", "kind": "AdminNetworkPolicy", "metadata": {"name": "anp-)" +
           std::to_string(k) + R"("}, "spec": {"priority": )" + std::to_string(k % 1000) +
           R"(, "subject": {"namespaces": {"matchLabels": {"team": ")" + team(k) + R"("}}}, "ingress": [)" +
           rules(false) + R"(], "egress": [)" + rules(true) + "]}}";
}

std::string npObject(int n) {
    return R"({"kind": "NetworkPolicy", "metadata": {"name": "tenant", "namespace": ")" + nsName(n) +
           R"("}, "spec": {"podSelector": {}, "ingress": [{"from": [{"podSelector": {}}, {"namespaceSelector": {"matchLabels": {"team": ")" +
           team(n) + R"("}}}], "ports": [{"port": 8080}]}]}})";
}

constexpr const char* kBanp = R"({"kind": "BaselineAdminNetworkPolicy", "metadata": {"name": "default"}, "spec": {
    "subject": {"namespaces": {}},
    "ingress": [{"action": "Deny", "from": [{"namespaces": {"matchLabels": {"env": "dev"}}}]}],
    "egress": [{"action": "Allow", "to": [{"namespaces": {}}], "ports": [{"namedPort": "dns"}]},
               {"action": "Deny", "to": [{"networks": ["0.0.0.0/0"]}], "ports": [{"portNumber": {"port": 25}}]}]}})";

double cpuMs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

struct Probe {
    knp_packet pkt;
    knp_eval_args args;
    bool ingress;
};

std::vector<Probe> makeProbes(const World& w, std::mt19937& rng) {
    std::vector<uint32_t> local;
    for (const Pod& p : w.pods)
        if (p.index < 110) local.push_back(p.index);
    static const std::pair<uint8_t, uint16_t> ports[] = {{KNP_PROTO_TCP, 8080}, {KNP_PROTO_TCP, 8042},
                                                         {KNP_PROTO_UDP, 53},   {KNP_PROTO_UDP, 5353},
                                                         {KNP_PROTO_TCP, 443},  {KNP_PROTO_TCP, 22}};
    std::vector<Probe> probes(1 << 16);
    for (Probe& p : probes) {
        uint32_t l = local[rng() % local.size()];
        uint32_t r = static_cast<uint32_t>(rng() % w.pods.size());
        auto [proto, port] = ports[rng() % std::size(ports)];
        p.ingress = rng() % 2 == 0;
        bool external = !p.ingress && rng() % 10 == 0;
        uint32_t src = p.ingress ? r : l, dst = p.ingress ? l : r;
        p.pkt = knp::testing::makePacket(podIp(src), external ? "151.101.1.1" : podIp(dst), proto, port);
        p.args = {sizeof(knp_eval_args), 0, nullptr, w.views[src].get(), external ? nullptr : w.views[dst].get()};
    }
    for (Probe& p : probes) p.args.packet = &p.pkt;
    return probes;
}

struct Instance {
    std::unique_ptr<Harness> h;
    double buildMs = 0;
    double heapMb = 0;  // what the plugin holds after its first update (the host's pod copies excluded)
};

Instance load(const char* so, const char* config, const World& w, const std::vector<std::string>& objects,
              const std::vector<std::pair<std::string, std::string>>& keys) {
    Instance in;
    in.h = std::make_unique<Harness>(std::string(so));
    in.h->host().setNodeName("node-0");
    in.h->host().setLogLevel(KNP_LOG_INFO);
    for (const OwnedPod& v : w.views) in.h->host().addPod(v);
    if (!in.h->init(config).ok()) return in;
    malloc_trim(0);
    size_t heap0 = mallinfo2().uordblks;
    for (size_t i = 0; i < objects.size(); ++i) in.h->added(0, objects[i], keys[i].first, keys[i].second);
    in.h->synced(0);
    double t = cpuMs();
    if (!in.h->update(true).ok()) in.h.reset();
    in.buildMs = cpuMs() - t;
    malloc_trim(0);
    in.heapMb = static_cast<double>(mallinfo2().uordblks - heap0) / (1 << 20);
    return in;
}

void report(benchmark::State& state, std::vector<uint64_t>& samples, double cost, const std::array<size_t, 3>& mix) {
    state.counters["p50_ns"] = knp_bench::quantileNs(samples, 0.5, cost);
    state.counters["p99_ns"] = knp_bench::quantileNs(samples, 0.99, cost);
    state.counters["p999_ns"] = knp_bench::quantileNs(samples, 0.999, cost);
    double n = static_cast<double>(mix[0] + mix[1] + mix[2]);
    state.counters["next_pct"] = 100.0 * static_cast<double>(mix[KNP_VERDICT_NEXT]) / n;
    state.counters["accept_pct"] = 100.0 * static_cast<double>(mix[KNP_VERDICT_ACCEPT]) / n;
    state.counters["deny_pct"] = 100.0 * static_cast<double>(mix[KNP_VERDICT_DENY]) / n;
}

// The ANP instance alone.
void BM_AdminNetworkPolicy(benchmark::State& state) {
    const int nPolicies = static_cast<int>(state.range(0)), nPods = static_cast<int>(state.range(1));
    std::mt19937 rng(42);
    World w = makeWorld(nPods, rng);
    std::vector<std::string> objects;
    std::vector<std::pair<std::string, std::string>> keys;
    for (int k = 0; k < nPolicies; ++k) {
        objects.push_back(anpObject(w, k, rng));
        keys.push_back({"", "anp-" + std::to_string(k)});
    }
    Instance anp = load(KNP_ANP_SO, "{}", w, objects, keys);
    if (!anp.h) {
        state.SkipWithError("the ANP instance did not load");
        return;
    }
    std::vector<Probe> probes = makeProbes(w, rng);
    const knp_plugin_descriptor& d = anp.h->descriptor();
    const void* snap = anp.h->snapshot();
    double cost = knp_bench::timerCostNs();
    std::vector<uint64_t> samples;
    std::array<size_t, 3> mix{};
    size_t next = 0;
    for (auto _ : state) {
        for (int i = 0; i < 1024; ++i) {
            const Probe& p = probes[next++ & (probes.size() - 1)];
            knp_eval_result r{sizeof r, 0, {}, {}};
            uint64_t a = knp_bench::cycles();
            int32_t rc = p.ingress ? d.evaluate_ingress(snap, &p.args, &r) : d.evaluate_egress(snap, &p.args, &r);
            uint64_t b = knp_bench::cycles();
            benchmark::DoNotOptimize(rc);
            samples.push_back(b - a);
            ++mix[static_cast<size_t>(r.verdict) % 3];
        }
    }
    state.SetItemsProcessed(static_cast<int64_t>(samples.size()));
    report(state, samples, cost, mix);
    state.counters["heap_mb"] = anp.heapMb;
    state.counters["build_ms"] = anp.buildMs;
    // One policy changed: compiled alone; subjects and rule tables rebuilt (index.hpp, Model).
    std::vector<double> upd;
    for (int i = 0; i < 3; ++i) {
        anp.h->modified(0, anpObject(w, i, rng), "", "anp-" + std::to_string(i));
        double t = cpuMs();
        anp.h->update(false);
        upd.push_back(cpuMs() - t);
    }
    std::sort(upd.begin(), upd.end());
    state.counters["upd_policy_ms"] = upd[1];
    // One pod relabelled, reported with KNP_UPDATE_PODS_CHANGED. With the host's list of changed
    // pods (ABI 1.1, FakeHost's default) only that pod is applied: upd_pod_ms. Without it (a 1.0
    // host) the pods are walked again and peers, subjects and the IP map recomputed (compiled
    // policies and rule tables survive): upd_pod_walk_ms, the figure before the delta.
    auto podChange = [&](size_t i, const std::string& app) {
        const Pod& p = w.pods[w.pods.size() - 1 - i];
        OwnedPod v = w.views[w.pods.size() - 1 - i];
        v.label("app", app);
        anp.h->host().removePod(nsName(p.ns), p.name);
        anp.h->host().addPod(std::move(v));
        double t = cpuMs();
        anp.h->update(true);
        return cpuMs() - t;
    };
    std::vector<double> podUpd, walkUpd;
    for (size_t i = 0; i < 3; ++i) podUpd.push_back(podChange(i, "moved-" + std::to_string(i)));
    anp.h->host().setPodChanges(false);
    for (size_t i = 0; i < 3; ++i) walkUpd.push_back(podChange(i, "walked-" + std::to_string(i)));
    anp.h->host().setPodChanges(true);
    std::sort(podUpd.begin(), podUpd.end());
    std::sort(walkUpd.begin(), walkUpd.end());
    state.counters["upd_pod_ms"] = podUpd[1];
    state.counters["upd_pod_walk_ms"] = walkUpd[1];
}

// admin ANPs → NetworkPolicy → BaselineAdminNetworkPolicy, as the host runs a direction.
void BM_TierPipeline(benchmark::State& state) {
    const int nPolicies = static_cast<int>(state.range(0)), nPods = static_cast<int>(state.range(1));
    std::mt19937 rng(42);
    World w = makeWorld(nPods, rng);
    std::vector<std::string> anps, nps;
    std::vector<std::pair<std::string, std::string>> anpKeys, npKeys;
    for (int k = 0; k < nPolicies; ++k) {
        anps.push_back(anpObject(w, k, rng));
        anpKeys.push_back({"", "anp-" + std::to_string(k)});
    }
    for (int n = 0; n < w.namespaces; n += 2) {
        nps.push_back(npObject(n));
        npKeys.push_back({nsName(n), "tenant"});
    }
    Instance tiers[3] = {load(KNP_ANP_SO, R"({"tier": "admin"})", w, anps, anpKeys),
                         load(KNP_NETWORKPOLICY_SO, "{}", w, nps, npKeys),
                         load(KNP_ANP_SO, R"({"tier": "baseline"})", w, {kBanp}, {{"", "default"}})};
    for (const Instance& t : tiers) {
        if (!t.h) {
            state.SkipWithError("an instance did not load");
            return;
        }
    }
    std::vector<Probe> probes = makeProbes(w, rng);
    const knp_plugin_descriptor* d[3];
    const void* snaps[3];
    for (int i = 0; i < 3; ++i) {
        d[i] = &tiers[i].h->descriptor();
        snaps[i] = tiers[i].h->snapshot();
    }
    double cost = knp_bench::timerCostNs();
    std::vector<uint64_t> samples;
    std::array<size_t, 3> mix{};
    std::array<size_t, 4> decidedBy{};
    size_t next = 0;
    for (auto _ : state) {
        for (int i = 0; i < 1024; ++i) {
            const Probe& p = probes[next++ & (probes.size() - 1)];
            knp_eval_result r{sizeof r, 0, {}, {}};
            int who = 3;
            uint64_t a = knp_bench::cycles();
            for (int t = 0; t < 3; ++t) {
                r.verdict = KNP_VERDICT_NEXT;
                int32_t rc = p.ingress ? d[t]->evaluate_ingress(snaps[t], &p.args, &r)
                                       : d[t]->evaluate_egress(snaps[t], &p.args, &r);
                if (rc != 0 || r.verdict != KNP_VERDICT_NEXT) {
                    who = t;
                    break;
                }
            }
            uint64_t b = knp_bench::cycles();
            samples.push_back(b - a);
            ++mix[static_cast<size_t>(r.verdict) % 3];
            ++decidedBy[static_cast<size_t>(who)];
        }
    }
    state.SetItemsProcessed(static_cast<int64_t>(samples.size()));
    report(state, samples, cost, mix);
    double n = static_cast<double>(samples.size());
    state.counters["by_admin_pct"] = 100.0 * static_cast<double>(decidedBy[0]) / n;
    state.counters["by_np_pct"] = 100.0 * static_cast<double>(decidedBy[1]) / n;
    state.counters["by_baseline_pct"] = 100.0 * static_cast<double>(decidedBy[2]) / n;
}

}  // namespace

BENCHMARK(BM_AdminNetworkPolicy)
    ->ArgNames({"anps", "pods"})
    ->Args({10, 1000})
    ->Args({100, 10000})
    ->Args({1000, 100000})
    ->Iterations(2000)
    ->Unit(benchmark::kNanosecond);
BENCHMARK(BM_TierPipeline)
    ->ArgNames({"anps", "pods"})
    ->Args({10, 1000})
    ->Args({1000, 100000})
    ->Iterations(2000)
    ->Unit(benchmark::kNanosecond);

BENCHMARK_MAIN();
