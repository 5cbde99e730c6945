// Benchmark of the NetworkPolicy plugin through the real C ABI (networkpolicy.so loaded by
// knp::testing::Harness): decision latency percentiles, memory, and update times, on synthetic
// clusters of 10 / 1,000 / 10,000 policies × 1,000 / 10,000 / 100,000 pods.
//
// Run: meson test -C build --benchmark --suite networkpolicy --verbose (see README.md).
//
// The cluster is shaped like a real one: ~100 pods per namespace in Deployments of 5-10
// replicas (app, tier, version, pod-template-hash labels), one pod in ten from a StatefulSet
// (a unique pod-name label, so a distinct identity), namespaces labelled team/env, 110 pods
// per node. Policies come ten to a namespace (N/10 namespaces have them): a default-deny, an
// egress policy (DNS to kube-system, the own namespace, HTTPS out through an ipBlock with
// except), a monitoring policy (namespaceSelector AND podSelector, named port), then per-app
// policies alternating a simple one (frontends on the named port) and the heavy shape of
// performance.md B1 (5 ports, 5 ranges, 5 namespace selectors, 5 pod selectors, 5 CIDRs).
//
// A decision is timed alone with the TSC (serialized with lfence), so p50/p99 are per call;
// the timer's own cost is measured and subtracted. Decisions concern pods that policies
// isolate, in a mix of real flows and random ones (see the probes below), so every policy
// count does comparable work per call.
#include <benchmark/benchmark.h>

#include <knp/testing.hpp>

#include <x86intrin.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <malloc.h>
#include <time.h>

#ifndef KNP_NETWORKPOLICY_SO
#error "KNP_NETWORKPOLICY_SO must name the built networkpolicy.so (tests/bench/meson.build sets it)"
#endif

namespace {

using knp::testing::Harness;
using knp::testing::OwnedPod;

constexpr int kPodsPerNamespace = 100;
constexpr int kPodsPerNode = 110;
constexpr int kPoliciesPerNamespace = 10;

struct PodSpec {
    std::string ns, name;
    std::map<std::string, std::string> labels;
    int node = 0;
    uint32_t index = 0;
};

std::string ipv4(uint32_t i) {
    return "10." + std::to_string(i >> 16 & 255) + "." + std::to_string(i >> 8 & 255) + "." + std::to_string(i & 255);
}

OwnedPod makePod(const PodSpec& s, const std::map<std::string, std::string>& nsLabels) {
    OwnedPod p(s.ns, s.name);
    for (const auto& [k, v] : s.labels) p.label(k, v);
    for (const auto& [k, v] : nsLabels) p.namespaceLabel(k, v);
    p.node("node-" + std::to_string(s.node))
        .nodeAddress("192.168." + std::to_string(s.node / 250) + "." + std::to_string(s.node % 250 + 1));
    p.containerPort(8080, KNP_PROTO_TCP, "http").containerPort(9090, KNP_PROTO_TCP, "metrics");
    char v6[40];
    std::snprintf(v6, sizeof v6, "fd00::%x:%x", (s.index + 1) >> 16, (s.index + 1) & 0xffff);
    p.ip(ipv4(s.index + 1)).ip(v6);
    return p;
}

struct Cluster {
    std::vector<PodSpec> pods;
    std::vector<std::map<std::string, std::string>> nsLabels;  // by namespace index
    std::vector<std::string> policies;                         // JSON objects
    std::vector<std::pair<std::string, std::string>> keys;     // ns, name
    int namespaces = 0;
    int namespacesWithPolicies = 0;
    std::vector<int> appsOf;  // apps per namespace

    std::string nsName(int i) const {
        return i == 0 ? "kube-system" : i == 1 ? "monitoring" : "ns" + std::to_string(i);
    }
};

std::string policyObject(const std::string& ns, const std::string& name, const std::string& spec) {
    return R"({"apiVersion":"networking.k8s.io/v1","kind":"NetworkPolicy","metadata":{"name":")" + name +
           R"(","namespace":")" + ns + R"("},"spec":)" + spec + "}";
}

// The k-th policy of a namespace, in the order the header describes.
std::string policySpec(const Cluster& c, int ns, int k, std::mt19937& rng) {
    auto app = [&](int i) { return "\"app" + std::to_string(i % c.appsOf[static_cast<size_t>(ns)]) + "\""; };
    auto team = [&](int i) { return "\"team" + std::to_string(i % 20) + "\""; };
    switch (k) {
        case 0:
            return R"({"podSelector":{},"policyTypes":["Ingress"]})";
        case 1:
            return R"({"podSelector":{},"policyTypes":["Egress"],"egress":[
                {"to":[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"kube-system"}},
                        "podSelector":{"matchLabels":{"k8s-app":"kube-dns"}}}],
                 "ports":[{"protocol":"UDP","port":53},{"protocol":"TCP","port":53}]},
                {"to":[{"podSelector":{}}]},
                {"to":[{"ipBlock":{"cidr":"0.0.0.0/0","except":["10.0.0.0/8","192.168.0.0/16"]}}],
                 "ports":[{"port":443}]}]})";
        case 2:
            return R"({"podSelector":{},"ingress":[{"from":[
                {"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}},
                 "podSelector":{"matchLabels":{"app":"prometheus"}}}],"ports":[{"port":"metrics"}]}]})";
        default:
            break;
    }
    int a = k - 3;
    if (a % 2 == 0) {
        return R"({"podSelector":{"matchLabels":{"app":)" + app(a / 2) + R"(}},"ingress":[{"from":[
            {"podSelector":{"matchLabels":{"tier":"frontend"}}}],"ports":[{"port":"http"},{"port":8080}]}]})";
    }
    // The heavy shape: 5 ports, 5 ranges, 5 namespace selectors, 5 pod selectors, 5 CIDRs.
    std::string ports, peers;
    for (int i = 0; i < 5; ++i) {
        ports += (i ? "," : "") + std::string(R"({"port":)") + std::to_string(8000 + i) + "}";
        ports +=
            R"(,{"port":)" + std::to_string(20000 + 100 * i) + R"(,"endPort":)" + std::to_string(20050 + 100 * i) + "}";
    }
    for (int i = 0; i < 5; ++i) {
        int r = static_cast<int>(rng() % 1000);
        peers += (i ? "," : "") +
                 std::string(R"({"namespaceSelector":{"matchExpressions":[{"key":"team","operator":"In","values":[)") +
                 team(r) + "," + team(r + 1) + "]}]}}";
        peers += R"(,{"podSelector":{"matchLabels":{"app":)" + app(r) + R"(,"tier":"backend"}}})";
        peers += R"(,{"ipBlock":{"cidr":"172.)" + std::to_string(16 + i) + R"(.0.0/16","except":["172.)" +
                 std::to_string(16 + i) + R"(.1.0/24"]}})";
    }
    return R"({"podSelector":{"matchLabels":{"app":)" + app(a / 2) +
           R"(},"matchExpressions":[{"key":"tier","operator":"In","values":["backend","db"]}]},
             "policyTypes":["Ingress","Egress"],
             "ingress":[{"from":[)" +
           peers + R"(],"ports":[)" + ports + R"(]}],
             "egress":[{"to":[{"namespaceSelector":{"matchLabels":{"env":"prod"}},"podSelector":{"matchLabels":{"tier":"db"}}}],
                        "ports":[{"port":5432}]}]})";
}

Cluster makeCluster(int nPolicies, int nPods, unsigned seed) {
    std::mt19937 rng(seed);
    Cluster c;
    c.namespaces = std::max(3, nPods / kPodsPerNamespace);
    for (int n = 0; n < c.namespaces; ++n) {
        static const char* envs[] = {"prod", "staging", "dev"};
        c.nsLabels.push_back({{"team", "team" + std::to_string(n % 20)}, {"env", envs[n % 3]}});
    }
    const char* tiers[] = {"frontend", "backend", "db"};
    uint32_t index = 0;
    for (int n = 0; n < c.namespaces; ++n) {
        int inNs = n == 0 ? 2 : kPodsPerNamespace;  // kube-system holds the DNS pods
        int apps = 0;
        for (int i = 0; i < inNs;) {
            int replicas = n == 0 ? 2 : 5 + static_cast<int>(rng() % 6);
            bool stateful = n != 0 && rng() % 10 == 0;
            std::string hash = std::to_string(rng() % 100000);
            for (int r = 0; r < replicas && i < inNs; ++r, ++i) {
                PodSpec p;
                p.ns = c.nsName(n);
                p.name = "app" + std::to_string(apps) + "-" + std::to_string(r);
                p.index = index++;
                p.node = static_cast<int>(p.index / kPodsPerNode);
                if (n == 0) {
                    p.labels = {{"k8s-app", "kube-dns"}};
                } else if (n == 1 && apps == 0) {
                    p.labels = {{"app", "prometheus"}};
                } else {
                    p.labels = {{"app", "app" + std::to_string(apps)},
                                {"tier", tiers[apps % 3]},
                                {"version", "v" + std::to_string(1 + apps % 3)},
                                {"pod-template-hash", hash}};
                    if (stateful) p.labels["statefulset.kubernetes.io/pod-name"] = p.name;
                }
                c.pods.push_back(std::move(p));
            }
            ++apps;
        }
        c.appsOf.push_back(std::max(apps, 1));
    }
    // Policies: kPoliciesPerNamespace to a namespace (more only when the cluster has too few
    // namespaces for the count), over namespaces 2.. (not kube-system, not monitoring). So a
    // pod of a namespace with policies is selected by the same kind of policy set whatever the
    // total: the decision figures then compare like with like across policy counts.
    int candidates = c.namespaces - 2;
    int perNs = std::max(kPoliciesPerNamespace, (nPolicies + candidates - 1) / candidates);
    c.namespacesWithPolicies = std::min(candidates, (nPolicies + perNs - 1) / perNs);
    for (int k = 0; k < nPolicies; ++k) {
        int ns = 2 + k / perNs;
        int nth = k % perNs;
        std::string name = "np" + std::to_string(nth);
        c.keys.push_back({c.nsName(ns), name});
        c.policies.push_back(policyObject(c.nsName(ns), name, policySpec(c, ns, nth, rng)));
    }
    return c;
}

size_t heapInUse() { return mallinfo2().uordblks; }

// Update times are this thread's CPU time, not wall time: on a shared machine, time spent
// preempted would otherwise swamp a few milliseconds of work.
double cpuMs() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// TSC ticks per nanosecond, measured against the steady clock once.
double ticksPerNs() {
    static double v = [] {
        auto t0 = std::chrono::steady_clock::now();
        uint64_t c0 = __rdtsc();
        while (std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(200)) {
        }
        uint64_t c1 = __rdtsc();
        return static_cast<double>(c1 - c0) /
               std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count();
    }();
    return v;
}

inline uint64_t stamp() {
    _mm_lfence();
    uint64_t t = __rdtsc();
    _mm_lfence();
    return t;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0 : v[v.size() / 2];
}

void BM_NetworkPolicy(benchmark::State& state) {
    const int nPolicies = static_cast<int>(state.range(0));
    const int nPods = static_cast<int>(state.range(1));
    Cluster c = makeCluster(nPolicies, nPods, 42);

    auto h = std::make_unique<Harness>(std::string(KNP_NETWORKPOLICY_SO));
    h->host().setNodeName("node-0");
    h->host().setLogLevel(KNP_LOG_INFO);
    std::vector<OwnedPod> views;  // the evaluation's own copies of the host's pod views
    views.reserve(c.pods.size());
    for (const PodSpec& p : c.pods) {
        int ns = p.ns == "kube-system" ? 0 : p.ns == "monitoring" ? 1 : std::stoi(p.ns.substr(2));
        views.push_back(makePod(p, c.nsLabels[static_cast<size_t>(ns)]));
        h->host().addPod(views.back());
    }
    if (!h->init().ok()) {
        state.SkipWithError("init failed");
        return;
    }
    size_t heap0 = heapInUse();
    for (size_t i = 0; i < c.policies.size(); ++i) h->added(0, c.policies[i], c.keys[i].first, c.keys[i].second);
    h->synced(0);
    double t0 = cpuMs();
    if (!h->update(true).ok()) {
        state.SkipWithError("first update failed");
        return;
    }
    double buildMs = cpuMs() - t0;
    malloc_trim(0);
    double heapMb = static_cast<double>(heapInUse() - heap0) / (1 << 20);

    // Decisions, each about a "local" pod of a namespace with policies (a pod some policy
    // isolates): a mix of flows a cluster really has and random ones.
    //   25% ingress from a random pod, random port      (mostly denied)
    //   25% ingress from a frontend of its namespace, 8080 (allowed when its app has a policy)
    //   15% ingress from prometheus, 9090 (metrics)      (allowed)
    //   15% egress to the cluster DNS, UDP 53            (allowed)
    //   20% egress to a random pod, random port          (allowed in its namespace)
    std::mt19937 rng(7);
    std::vector<uint32_t> isolated, prometheus, dns;
    std::map<std::string, std::vector<uint32_t>> frontends;
    for (uint32_t i = 0; i < c.pods.size(); ++i) {
        const PodSpec& p = c.pods[i];
        if (p.ns == "kube-system") {
            dns.push_back(i);
        } else if (p.ns == "monitoring") {
            if (p.labels.count("app") && p.labels.at("app") == "prometheus") prometheus.push_back(i);
        } else {
            if (std::stoi(p.ns.substr(2)) < 2 + c.namespacesWithPolicies) isolated.push_back(i);
            auto t = p.labels.find("tier");
            if (t != p.labels.end() && t->second == "frontend") frontends[p.ns].push_back(i);
        }
    }
    // Two sets of decisions. Node-local (the figure that matters): the local end is one of the
    // ≤ 110 pods of one node, as on a real node, where the interest sends only traffic of
    // local pods to the plugin; the remote end is anywhere. Cluster-wide: the local end is any
    // isolated pod of the cluster, the worst case for caches.
    std::vector<uint32_t> nodeLocal(isolated.begin(),
                                    isolated.begin() + std::min<std::ptrdiff_t>(kPodsPerNode, isolated.size()));
    struct Probe {
        knp_packet pkt;
        knp_eval_args args;
        bool ingress;
    };
    const std::pair<uint8_t, uint16_t> randomPorts[] = {{KNP_PROTO_TCP, 8080},  {KNP_PROTO_TCP, 8003},
                                                        {KNP_PROTO_TCP, 20120}, {KNP_PROTO_TCP, 5432},
                                                        {KNP_PROTO_TCP, 443},   {KNP_PROTO_TCP, 22}};
    auto makeProbes = [&](const std::vector<uint32_t>& locals) {
        std::vector<Probe> probes(1 << 16);
        for (Probe& p : probes) {
            uint32_t local = locals[rng() % locals.size()];
            uint32_t remote = static_cast<uint32_t>(rng() % c.pods.size());
            auto [proto, port] = randomPorts[rng() % std::size(randomPorts)];
            unsigned kind = rng() % 100;
            p.ingress = kind < 65;
            if (kind >= 25 && kind < 50) {
                const auto& f = frontends[c.pods[local].ns];
                if (!f.empty()) remote = f[rng() % f.size()];
                proto = KNP_PROTO_TCP;
                port = 8080;
            } else if (kind >= 50 && kind < 65) {
                remote = prometheus[rng() % prometheus.size()];
                proto = KNP_PROTO_TCP;
                port = 9090;
            } else if (kind >= 65 && kind < 80) {
                remote = dns[rng() % dns.size()];
                proto = KNP_PROTO_UDP;
                port = 53;
            }
            uint32_t src = p.ingress ? remote : local, dst = p.ingress ? local : remote;
            p.pkt = knp::testing::makePacket(ipv4(c.pods[src].index + 1), ipv4(c.pods[dst].index + 1), proto, port);
            p.args = {sizeof(knp_eval_args), 0, nullptr, views[src].get(), views[dst].get()};
        }
        for (Probe& p : probes) p.args.packet = &p.pkt;
        return probes;
    };
    std::vector<Probe> probes = makeProbes(nodeLocal);
    std::vector<Probe> spread = makeProbes(isolated);

    const knp_plugin_descriptor& d = h->descriptor();
    const void* snap = h->snapshot();
    // The timer's own cost, to subtract.
    std::vector<uint64_t> empty(1 << 16);
    for (auto& e : empty) {
        uint64_t a = stamp();
        e = stamp() - a;
    }
    std::sort(empty.begin(), empty.end());
    double overheadNs = static_cast<double>(empty[empty.size() / 2]) / ticksPerNs();

    std::array<size_t, 3> mix{};
    auto decide = [&](const Probe& p) {
        knp_eval_result r{sizeof r, 0, {}, {}};
        uint64_t a = stamp();
        int32_t rc = p.ingress ? d.evaluate_ingress(snap, &p.args, &r) : d.evaluate_egress(snap, &p.args, &r);
        uint64_t b = stamp();
        benchmark::DoNotOptimize(rc);
        ++mix[static_cast<size_t>(r.verdict) % 3];
        return b - a;
    };
    std::vector<uint64_t> samples;
    samples.reserve(static_cast<size_t>(state.max_iterations) * 1024 + 1024);
    size_t next = 0;
    for (auto _ : state) {
        for (int i = 0; i < 1024; ++i) samples.push_back(decide(probes[next++ & (probes.size() - 1)]));
    }
    state.SetItemsProcessed(static_cast<int64_t>(samples.size()));
    size_t nodeDecisions = samples.size();
    std::vector<uint64_t> spreadSamples;
    spreadSamples.reserve(samples.size());
    for (size_t i = 0; i < samples.size(); ++i) spreadSamples.push_back(decide(spread[i & (spread.size() - 1)]));
    auto pct = [&](std::vector<uint64_t>& v, double q) {
        auto at = v.begin() + static_cast<std::ptrdiff_t>(q * static_cast<double>(v.size() - 1));
        std::nth_element(v.begin(), at, v.end());
        return std::max(0.0, static_cast<double>(*at) / ticksPerNs() - overheadNs);
    };

    // Update after one policy change: a default-deny in a namespace with policies becomes a
    // policy with a rule, and back.
    std::vector<double> policyMs;
    for (int i = 0; i < 6; ++i) {
        const auto& [ns, name] = c.keys[static_cast<size_t>(i) % c.keys.size()];
        std::string spec =
            i % 2 == 0
                ? R"({"podSelector":{},"ingress":[{"from":[{"podSelector":{"matchLabels":{"tier":"frontend"}}}]}]})"
                : R"({"podSelector":{"matchLabels":{"app":"app1"}},"ingress":[{"ports":[{"port":8080}]}]})";
        h->modified(0, policyObject(ns, name, spec), ns, name);
        double t = cpuMs();
        h->update(false);
        policyMs.push_back(cpuMs() - t);
    }
    // Update after one pod label change: a pod near the end of the host's list (cheap to
    // replace in the FakeHost) gets another app label; the host reports podsChanged.
    std::vector<double> podMs;
    for (int i = 0; i < 6; ++i) {
        PodSpec& p = c.pods[c.pods.size() - 1 - static_cast<size_t>(i % 3)];
        p.labels["app"] = "app" + std::to_string(1 + i);
        int ns = std::stoi(p.ns.substr(2));
        h->host().removePod(p.ns, p.name);
        h->host().addPod(makePod(p, c.nsLabels[static_cast<size_t>(ns)]));
        double t = cpuMs();
        h->update(true);
        podMs.push_back(cpuMs() - t);
    }

    // The floor under any pod update: the host's walk over every pod, reading once each field a
    // NetworkPolicy plugin must look at to see what changed (labels, namespace labels, names,
    // addresses); the ABI gives no other way to learn which pod changed (see README.md).
    std::vector<double> walkMs;
    for (int i = 0; i < 6; ++i) {
        knp::testing::FakeHost::UpdateScope scope(h->host());
        uint64_t sink = 0;
        double t = cpuMs();
        h->host().api()->for_each_pod(
            h->host().ctx(), 0,
            [](void* user, const knp_pod* p) -> int32_t {
                uint64_t& acc = *static_cast<uint64_t*>(user);
                auto read = [&](knp_str s) {
                    for (size_t b = 0; b < s.len; ++b) acc += static_cast<uint8_t>(s.data[b]);
                };
                for (size_t l = 0; l < p->n_labels; ++l) read(p->labels[l].key), read(p->labels[l].value);
                for (size_t l = 0; l < p->n_namespace_labels; ++l)
                    read(p->namespace_labels[l].key), read(p->namespace_labels[l].value);
                read(p->name), read(p->pod_namespace), read(p->uid);
                for (size_t a = 0; a < p->n_ips; ++a) acc += p->ips[a].bytes[15];
                return 0;
            },
            &sink);
        walkMs.push_back(cpuMs() - t);
        benchmark::DoNotOptimize(sink);
    }

    state.counters["p50_ns"] = pct(samples, 0.50);
    state.counters["p99_ns"] = pct(samples, 0.99);
    state.counters["p999_ns"] = pct(samples, 0.999);
    state.counters["any_p50_ns"] = pct(spreadSamples, 0.50);
    state.counters["any_p99_ns"] = pct(spreadSamples, 0.99);
    state.counters["timer_ns"] = overheadNs;
    state.counters["heap_MB"] = heapMb;
    state.counters["build_ms"] = buildMs;
    state.counters["upd_policy_ms"] = median(policyMs);
    state.counters["upd_pod_ms"] = median(podMs);
    state.counters["walk_floor_ms"] = median(walkMs);
    // Over both sets: the share of decisions that denied and accepted (the rest is NEXT).
    double total = static_cast<double>(nodeDecisions + spreadSamples.size());
    state.counters["deny_pct"] = 100.0 * static_cast<double>(mix[2]) / total;
    state.counters["accept_pct"] = 100.0 * static_cast<double>(mix[1]) / total;
    state.counters["ns_with_policies"] = c.namespacesWithPolicies;
    views.clear();
}

void sizes(benchmark::internal::Benchmark* b) {
    for (int pods : {1000, 10000, 100000})
        for (int policies : {10, 1000, 10000}) b->Args({policies, pods});
}

}  // namespace

BENCHMARK(BM_NetworkPolicy)
    ->Apply(sizes)
    ->Iterations(2000)
    ->Unit(benchmark::kMicrosecond)
    ->ArgNames({"policies", "pods"});

BENCHMARK_MAIN();
