// knpd's ops surface without a kernel: per-instance and plugin-defined metrics, live explain
// against `knpctl simulate`'s answers, the control commands, and `promtool check metrics` on
// what the collectors write.
#include <boost/json.hpp>
#include <knp/types.hpp>

#include <cstdio>
#include <sstream>

#include "../host/helpers.hpp"
#include "engine/engine.hpp"
#include "ops/agent.hpp"
#include "sim/probe.hpp"
#include "sim/simulate.hpp"
#include "state/enforcement.hpp"
#include "state/state_file.hpp"
#include "state/state_sync.hpp"

using namespace knp::host;
using namespace knp::host::test;
namespace json = boost::json;

namespace {

LoadOptions opsLoadOptions() {
    LoadOptions o = testLoadOptions();
    o.searchPath.dirs.push_back(KNP_OPS_PLUGIN_DIR);
    o.nodeName = "node-a";
    return o;
}

Result<std::unique_ptr<Pipeline>> loadText(const std::string& yaml) {
    auto cfg = parsePipelineText(yaml, "pipeline.yaml", "");
    if (!cfg) return std::move(cfg).error();
    return Pipeline::load(*cfg, opsLoadOptions());
}

const std::string kDataDir = std::string(KNP_SOURCE_ROOT) + "/tests/host/data";

// The tests/host pipeline and state, synced as knpd syncs them (node-a is this node).
struct Live {
    std::unique_ptr<Pipeline> pipeline;
    std::unique_ptr<StateSync> sync;
    std::shared_ptr<const ClusterSnapshot> cluster;

    Live(const std::string& pipelineFile, const std::string& stateFile) {
        auto cfg = parsePipelineFile(pipelineFile);
        REQUIRE(cfg);
        auto p = Pipeline::load(*cfg, opsLoadOptions());
        if (!p) FAIL(p.error().message);
        pipeline = std::move(*p);
        sync = std::make_unique<StateSync>(*pipeline, "node-a");
        auto state = loadStateFile(stateFile);
        REQUIRE(state);
        auto out = sync->sync(*state);
        REQUIRE(out);
        cluster = out->cluster;
    }
};

bool ci() {
    const char* v = std::getenv("CI");
    return v != nullptr && std::string(v) == "true";
}

// Runs promtool on `text`; returns its findings, one per line ("" when clean). Upstream's
// names, kept for dashboards, break three lint rules; those findings are expected.
std::string promtool(const std::string& text) {
    TempDir tmp;
    std::string file = tmp.write("metrics.prom", text);
    FILE* p = ::popen(("promtool check metrics < " + file + " 2>&1; echo rc=$?").c_str(), "r");
    REQUIRE(p != nullptr);
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    ::pclose(p);
    std::istringstream lines(out);
    std::string line, findings;
    static const char* kExpected[] = {
        "kube_network_policies_nfqueue_queue_total non-counter metrics should not have \"_total\" suffix",
        "kube_network_policies_packet_process_duration_microseconds use base unit \"seconds\" instead of "
        "\"microseconds\"",
        "kube_network_policies_packet_count counter metrics should have \"_total\" suffix",
        "kube_network_policies_packet_count non-histogram and non-summary metrics should not have \"_count\" suffix",
    };
    while (std::getline(lines, line)) {
        if (line.starts_with("rc=")) continue;
        if (std::find(std::begin(kExpected), std::end(kExpected), line) != std::end(kExpected)) continue;
        findings += line + "\n";
    }
    return findings;
}

bool havePromtool() { return std::system("command -v promtool >/dev/null 2>&1") == 0; }

}  // namespace

TEST_CASE("instance metrics: evaluation time, verdicts, errors and what plugins define") {
    auto p = loadText(R"(apiVersion: knp.dev/v1alpha1
kind: Pipeline
instances:
  - name: m
    library: metered
    config: {denyPort: 8081}
)");
    if (!p) FAIL(p.error().message);
    auto cluster = ClusterState().build("node-a");
    REQUIRE((*p)->flush(KNP_UPDATE_PODS_CHANGED, *cluster).empty());
    auto snap = (*p)->current();

    knp_packet pkt{};
    pkt.struct_size = sizeof pkt;
    pkt.family = KNP_FAMILY_IPV4;
    pkt.protocol = KNP_PROTO_TCP;
    pkt.src = *knp::parseAddr("10.0.0.1");
    pkt.dst = *knp::parseAddr("10.0.0.2");
    pkt.src_port = 40000;
    for (uint16_t port : {8080, 8081, 8081}) {
        pkt.dst_port = port;
        (void)evaluatePacket(*snap, *cluster, pkt, {false, true}, 3);  // reader 3's slot
    }
    (void)evaluatePacket(*snap, *cluster, pkt, {false, true});  // explain/simulate: not counted

    const PluginInstance& m = *(*p)->instances()[0];
    auto t = m.stats().totals();
    CHECK(t.verdicts[static_cast<size_t>(Direction::Ingress)][KNP_VERDICT_DENY] == 2);
    CHECK(t.verdicts[static_cast<size_t>(Direction::Ingress)][KNP_VERDICT_NEXT] == 1);
    CHECK(t.time[static_cast<size_t>(Direction::Ingress)].count() == 3);

    ExpositionWriter w;
    writeInstanceMetrics(w, {{&m, true}});
    const std::string& text = w.text();
    auto has = [&](const std::string& line) {
        CHECK_MESSAGE(text.find(line + "\n") != std::string::npos, line, "\n", text);
    };
    has("knp_instance_verdicts_total{instance=\"m\",plugin=\"metered\",direction=\"ingress\",verdict=\"deny\"} 2");
    has("knp_instance_verdicts_total{instance=\"m\",plugin=\"metered\",direction=\"ingress\",verdict=\"next\"} 1");
    has("knp_instance_errors_total{instance=\"m\",plugin=\"metered\",direction=\"ingress\",reason=\"plugin_error\"} 0");
    has("knp_instance_evaluation_duration_seconds_count{instance=\"m\",plugin=\"metered\",direction=\"ingress\"} 3");
    has("knp_instance_snapshot_ready{instance=\"m\",plugin=\"metered\"} 1");
    // The plugin's own: a counter gets _total; the histogram gets Prometheus' default buckets.
    has("# TYPE knp_plugin_evaluations_total counter");
    has("knp_plugin_evaluations_total{instance=\"m\",plugin=\"metered\"} 4");  // the plugin counts every call
    has("knp_plugin_snapshots{instance=\"m\",plugin=\"metered\"} 1");
    has("knp_plugin_update_seconds_bucket{instance=\"m\",plugin=\"metered\",le=\"0.005\"} 1");
    has("knp_plugin_update_seconds_count{instance=\"m\",plugin=\"metered\"} 1");
    CHECK(text.find("not-a-name") == std::string::npos);
    CHECK(text.find("direction=\"egress\"") == std::string::npos);  // an ingress-only plugin

    if (havePromtool()) {
        CHECK(promtool(text) == "");
    }
}

TEST_CASE("explain: the same verdicts as simulate, with every instance in pipeline order") {
    Live live(kDataDir + "/pipeline.yaml", kDataDir + "/state.yaml");
    // Simulation takes its own pipeline instance (plugins keep state).
    auto cfg = parsePipelineFile(kDataDir + "/pipeline.yaml");
    REQUIRE(cfg);
    auto simP = Pipeline::load(*cfg, opsLoadOptions());
    REQUIRE(simP);
    auto state = loadStateFile(kDataDir + "/state.yaml");
    REQUIRE(state);
    auto sim = Simulation::create(std::move(*simP), *state);
    if (!sim) FAIL(sim.error().message);

    for (const char* text :
         {"prod/client prod/web TCP/8080", "203.0.113.7 prod/web TCP/22", "prod/web 203.0.113.7 TCP/22",
          "prod/client prod/web UDP/53", "198.51.100.1 prod/client TCP/443", "prod/client 10.244.1.10 TCP/8080"}) {
        CAPTURE(text);
        auto probe = parseProbe(text, "probe");
        REQUIRE(probe);
        auto offline = (*sim)->run(*probe);
        REQUIRE(offline);
        json::object want = json::parse(*offline).as_object();
        auto got = explainProbe(*live.pipeline->current(), *live.cluster, *probe);
        REQUIRE(got);
        json::object o = *got;
        CHECK(o.at("node") == "node-a");
        o.erase("node");
        for (const char* dir : {"egress", "ingress"}) {
            json::object& d = o.at(dir).as_object();
            CHECK(d.at("enforced_here").is_bool());
            const json::value* trace = d.if_contains("trace");
            if (trace != nullptr) {
                // Every instance with the capability, in pipeline order; the decider is marked.
                const json::array& a = trace->as_array();
                CHECK(a.size() ==
                      live.pipeline->current()->stages(dir[0] == 'e' ? Direction::Egress : Direction::Ingress).size());
                size_t decided = 0;
                for (const json::value& s : a) decided += s.at("decided").as_bool() ? 1 : 0;
                CHECK(decided == (d.at("instance").is_null() ? 0u : 1u));
            }
            d.erase("enforced_here");
        }
        CHECK(json::serialize(o) == json::serialize(want));
    }
    // Errors are one line naming the probe.
    auto probe = parseProbe("prod/nope prod/web TCP/80", "probe");
    REQUIRE(probe);
    auto bad = explainProbe(*live.pipeline->current(), *live.cluster, *probe);
    REQUIRE_FALSE(bad);
    CHECK(bad.error().message == "probe: unknown pod \"prod/nope\" (not in the cluster, or Succeeded/Failed)");
}

TEST_CASE("agent: control commands and a scrape before the dataplane runs") {
    auto p = loadText(R"(apiVersion: knp.dev/v1alpha1
kind: Pipeline
instances:
  - name: m
    library: metered
)");
    if (!p) FAIL(p.error().message);
    // Never started: no readers, nothing published (no kernel needed).
    Dataplane dp(DataplaneOptions{}, QueueMethod::Compat);
    MetricsRegistry metrics;
    HealthChecks livez("livez"), readyz("readyz");
    {
        AgentOps agent(dp, {"node-a", "/etc/knp/pipeline.yaml", "compat", true}, metrics, livez, readyz);
        agent.pipelineLoaded(**p);

        auto plugins = agent.handle({{"command", "plugins"}});
        CHECK(plugins.at("ok") == true);
        CHECK(plugins.at("result").as_array().at(0).at("instance") == "m");
        CHECK(plugins.at("result").as_array().at(0).at("plugin") == "metered");

        auto explain = agent.handle({{"command", "explain"}, {"probe", "10.0.0.1 10.0.0.2 TCP/80"}});
        CHECK(explain.at("ok") == false);
        CHECK(explain.at("error") == "knpd has not published a view yet (starting up)");
        auto typo = agent.handle({{"command", "explain"}, {"probe", "10.0.0.1 TCP/80"}});
        CHECK(typo.at("ok") == false);
        CHECK(agent.handle({{"command", "reboot"}}).at("error") ==
              "unknown command \"reboot\": explain, status or plugins");

        auto status = agent.handle({{"command", "status"}});
        REQUIRE(status.at("ok") == true);
        const json::object& s = status.at("result").as_object();
        CHECK(s.at("node") == "node-a");
        CHECK(s.at("ready") == false);
        CHECK(s.at("dataplane").at("table") == "inet/kube-network-policies");
        CHECK(s.at("instances").as_array().size() == 1);

        auto ready = readyz.run();
        CHECK_FALSE(ready.ok);
        CHECK(readyz.format(ready, true) ==
              "[-]plugin-snapshots failed: no pipeline published yet\n"
              "[-]dataplane failed: queue readers are not running\n"
              "readyz check failed");
        CHECK(livez.run().ok);

        std::string text = metrics.scrape();
        for (const char* family : {"# TYPE kube_network_policies_packet_process_time histogram",
                                   "# TYPE kube_network_policies_packet_process_duration_microseconds summary",
                                   "# TYPE kube_network_policies_packet_count counter",
                                   "# TYPE kube_network_policies_nfqueue_packet_id gauge",
                                   "# TYPE knp_ruleset_apply_duration_seconds histogram", "knp_ready 0",
                                   "knp_build_info{version=", "# TYPE process_cpu_seconds_total counter"})
            CHECK_MESSAGE(text.find(family) != std::string::npos, family);
        if (havePromtool()) {
            CHECK(promtool(text) == "");
        } else if (ci()) {
            FAIL("promtool is not installed (tools/install-deps --test installs package prometheus)");
        } else {
            MESSAGE("promtool is not installed: exposition not linted (tools/install-deps --test)");
        }
    }
    // The agent took its collectors and checks with it.
    CHECK(metrics.scrape().empty());
    CHECK(readyz.run().checks.empty());
}

TEST_CASE("agent: reload outcomes and watch health on /metrics") {
    Dataplane dp(DataplaneOptions{}, QueueMethod::Compat);
    MetricsRegistry metrics;
    HealthChecks livez("livez"), readyz("readyz");
    AgentOps agent(dp, {"node-a", "/etc/knp/pipeline.yaml", "compat", true}, metrics, livez, readyz);
    std::string text = metrics.scrape();
    // State-file mode: no watches, no watch families.
    CHECK(text.find("knp_watch_") == std::string::npos);
    CHECK(text.find("knp_pipeline_reloads_total{result=\"applied\"} 0\n") != std::string::npos);
    CHECK(text.find("knp_pipeline_last_reload_successful 1\n") != std::string::npos);
    CHECK(text.find("knp_pipeline_last_reload_success_timestamp_seconds 0\n") != std::string::npos);

    agent.reloaded(AgentOps::Reload::Applied);
    agent.reloaded(AgentOps::Reload::Unchanged);
    agent.reloaded(AgentOps::Reload::Rejected);
    agent.reloadPending(true);
    kube::ClusterConfig cc;
    cc.server = "https://127.0.0.1:1";
    cc.source = "test";
    auto wm = kube::WatchManager::create(cc);
    REQUIRE(wm);
    REQUIRE((*wm)->addTarget({"", "v1", "pods", "Pod", "", "", ""}));
    agent.watching(wm->get());
    text = metrics.scrape();
    for (const char* line :
         {"knp_pipeline_reloads_total{result=\"applied\"} 1\n", "knp_pipeline_reloads_total{result=\"rejected\"} 1\n",
          "knp_pipeline_reloads_total{result=\"unchanged\"} 1\n", "knp_pipeline_last_reload_successful 0\n",
          "knp_pipeline_reload_pending 1\n", "# TYPE knp_watch_synced gauge\n",
          "# TYPE knp_watch_relists_total counter\n", "# TYPE knp_watch_last_event_age_seconds gauge\n"})
        CHECK_MESSAGE(text.find(line) != std::string::npos, line);
    CHECK(text.find("knp_pipeline_last_reload_success_timestamp_seconds 0\n") == std::string::npos);
    if (havePromtool()) CHECK(promtool(text) == "");
    agent.watching(nullptr);
    CHECK(metrics.scrape().find("knp_watch_") == std::string::npos);
}

TEST_CASE("reload: what counts as a changed pipeline") {
    const std::string base = R"(apiVersion: knp.dev/v1alpha1
kind: Pipeline
instances:
  - name: a
    library: allowlist
    config: {action: deny, rules: []}
  - name: m
    library: metered
)";
    auto parse = [](const std::string& text) {
        auto cfg = parsePipelineText(text, "pipeline.yaml", "/etc/knp");
        REQUIRE(cfg);
        return *cfg;
    };
    PipelineConfig running = parse(base);
    // Comments, blank lines and flow vs block style change no instance.
    CHECK(samePipeline(running, parse("# edited\n" + base + "\n")));
    CHECK(samePipeline(running, parse(R"(apiVersion: knp.dev/v1alpha1
kind: Pipeline
instances:
  - {name: a, library: allowlist, config: {action: deny, rules: []}}
  - name: m
    library: metered
)")));
    CHECK_FALSE(samePipeline(running, parse(base + "  - name: n\n    library: metered\n")));
    CHECK_FALSE(samePipeline(running, parse(R"(apiVersion: knp.dev/v1alpha1
kind: Pipeline
instances:
  - name: m
    library: metered
  - name: a
    library: allowlist
    config: {action: deny, rules: []}
)")));
    std::string other = base;
    other.replace(other.find("action: deny"), 12, "action: accept");
    CHECK_FALSE(samePipeline(running, parse(other)));
    CHECK_FALSE(samePipeline(running, parse(base + "    enabled: false\n")));
    CHECK_FALSE(samePipeline(running, parse(base + "    onError: accept\n")));
}
