#include "ops/agent.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <map>

#include <boost/json.hpp>

#include "engine/engine.hpp"
#include "ops/describe.hpp"
#include "sim/probe.hpp"
#include "ops/procfs.hpp"
#include "sim/simulate.hpp"

#ifndef KNP_VERSION
#define KNP_VERSION "unknown"
#endif

namespace knp::host {

namespace json = boost::json;

namespace {

// Collector keys: the registry writes families in key order.
constexpr std::string_view kKeys[] = {"10-packets", "20-queues",    "30-instances", "40-watches", "45-reloads",
                                      "50-ruleset", "60-readiness", "80-process",   "90-build"};
// A control loop that has not come round for this long is wedged (it polls at least every
// second).
constexpr uint64_t kHeartbeatLimitNs = 60ull * 1000000000ull;
constexpr std::array<std::pair<double, double>, 3> kQuantiles{{{0.5, 0}, {0.9, 0}, {0.99, 0}}};

std::vector<double> toSeconds(std::span<const uint64_t> ns) {
    std::vector<double> out;
    for (uint64_t v : ns) out.push_back(static_cast<double>(v) / 1e9);
    return out;
}

std::string_view directionName(size_t d) { return d == static_cast<size_t>(Direction::Ingress) ? "ingress" : "egress"; }

double secondsSince(uint64_t ns) { return static_cast<double>(monotonicNowNs() - ns) / 1e9; }

json::object ok(json::value result) {
    json::object o;
    o["ok"] = true;
    o["result"] = std::move(result);
    return o;
}

json::object failure(std::string message) {
    json::object o;
    o["ok"] = false;
    o["error"] = std::move(message);
    return o;
}

// Every instance of a view once, in the order the stages name them (egress, then ingress).
std::vector<const Stage*> distinctStages(const PipelineSnapshot& p) {
    std::vector<const Stage*> out;
    for (Direction d : {Direction::Egress, Direction::Ingress})
        for (const Stage& st : p.stages(d))
            if (std::none_of(out.begin(), out.end(), [&](const Stage* s) { return s->instance == st.instance; }))
                out.push_back(&st);
    return out;
}

void collectProcess(ExpositionWriter& w) {
    ProcessStats p = readProcessStats();
    if (!p.ok) return;
    w.scalar("process_cpu_seconds_total", "counter", "Total user and system CPU time spent in seconds.", p.cpuSeconds);
    w.scalar("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
             static_cast<double>(p.residentBytes));
    w.scalar("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
             static_cast<double>(p.virtualBytes));
    w.scalar("process_start_time_seconds", "gauge", "Start time of the process since unix epoch in seconds.",
             p.startTimeSeconds);
    w.scalar("process_open_fds", "gauge", "Number of open file descriptors.", static_cast<double>(p.openFds));
    w.scalar("process_max_fds", "gauge", "Maximum number of open file descriptors.", static_cast<double>(p.maxFds));
}

void collectBuild(ExpositionWriter& w) {
    w.family("knp_build_info", "gauge", "knpd's version; always 1.");
    w.sample("knp_build_info", {{"version", KNP_VERSION}}, uint64_t{1});
}

// Plugin-defined metrics, grouped by exported name across instances: knp_plugin_<name>,
// counters with _total. A name a second instance defines with another type is skipped.
void writePluginMetrics(ExpositionWriter& w, const std::vector<InstanceView>& instances) {
    struct Series {
        std::string instance, plugin;
        PluginMetricSample sample;
    };
    struct Family {
        int32_t type = 0;
        std::string help;
        std::vector<Series> series;
    };
    std::map<std::string, Family> families;
    for (const InstanceView& iv : instances) {
        for (PluginMetricSample& m : iv.instance->pluginMetrics()) {
            std::string name = "knp_plugin_" + m.name;
            if (m.type == KNP_METRIC_COUNTER && !name.ends_with("_total")) name += "_total";
            if (!ExpositionWriter::validName(name)) continue;
            Family& f = families[name];
            if (f.series.empty()) {
                f.type = m.type;
                f.help = m.help.empty() ? "Defined by the plugin." : m.help;
            }
            if (f.type != m.type) continue;
            f.series.push_back({iv.instance->name(), iv.instance->descriptor().name, std::move(m)});
        }
    }
    for (const auto& [name, f] : families) {
        std::string_view type = f.type == KNP_METRIC_COUNTER ? "counter"
                                : f.type == KNP_METRIC_GAUGE ? "gauge"
                                                             : "histogram";
        w.family(name, type, f.help);
        for (const Series& s : f.series) {
            MetricLabel labels[] = {{"instance", s.instance}, {"plugin", s.plugin}};
            if (f.type == KNP_METRIC_HISTOGRAM) {
                w.histogram(name, labels, PluginMetricSample::kBounds, s.sample.buckets, s.sample.sum);
            } else {
                w.sample(name, labels, s.sample.value);
            }
        }
    }
}

}  // namespace

void writeInstanceMetrics(ExpositionWriter& w, const std::vector<InstanceView>& instances) {
    static constexpr std::string_view kTime = "knp_instance_evaluation_duration_seconds";
    static constexpr std::string_view kVerdicts = "knp_instance_verdicts_total";
    static constexpr std::string_view kErrors = "knp_instance_errors_total";
    static constexpr std::string_view kReady = "knp_instance_snapshot_ready";
    // One row per instance and direction it handles.
    struct Row {
        std::array<MetricLabel, 4> labels;  // instance, plugin, direction, and one more per family
        size_t d;
        InstanceStats::Totals totals;
        std::span<const MetricLabel> with(std::string_view key, std::string_view value) {
            labels[3] = {key, value};
            return labels;
        }
    };
    std::vector<Row> rows;
    for (const InstanceView& iv : instances) {
        InstanceStats::Totals t = iv.instance->stats().totals();
        for (size_t d = 0; d < 2; ++d)
            if (iv.instance->handles(static_cast<Direction>(d)))
                rows.push_back({{{{"instance", iv.instance->name()},
                                  {"plugin", iv.instance->descriptor().name},
                                  {"direction", directionName(d)},
                                  {}}},
                                d,
                                t});
    }
    auto bounds = toSeconds(InstanceStats::kTimeBoundsNs);
    w.family(kTime, "histogram", "Time a plugin instance took to evaluate a packet, by direction.");
    for (Row& r : rows)
        w.histogram(kTime, std::span(r.labels).first(3), bounds, r.totals.time[r.d].buckets,
                    static_cast<double>(r.totals.time[r.d].sum) / 1e9);
    w.family(kVerdicts, "counter", "Verdicts of a plugin instance (onError applied), by direction.");
    for (Row& r : rows)
        for (size_t v = 0; v < 3; ++v)
            w.sample(kVerdicts, r.with("verdict", kVerdictNames[v]), r.totals.verdicts[r.d][v]);
    w.family(kErrors, "counter",
             "Evaluations where a plugin instance's onError applied: it failed, answered out of range, or had no "
             "snapshot.");
    for (Row& r : rows)
        for (size_t o = 1; o < kEvalOutcomes; ++o)  // every outcome but Ok
            w.sample(kErrors, r.with("reason", kEvalOutcomeNames[o]), r.totals.outcomes[r.d][o]);
    w.family(kReady, "gauge", "1 when the plugin instance has published a snapshot.");
    for (const InstanceView& iv : instances)
        w.sample(kReady, {{"instance", iv.instance->name()}, {"plugin", iv.instance->descriptor().name}},
                 uint64_t{iv.snapshot ? 1u : 0u});
    writePluginMetrics(w, instances);
}

AgentOps::AgentOps(const Dataplane& dataplane, AgentInfo info, MetricsRegistry& metrics, HealthChecks& livez,
                   HealthChecks& readyz)
    : dp_(dataplane),
      info_(std::move(info)),
      metrics_(metrics),
      livez_(livez),
      readyz_(readyz),
      startNs_(monotonicNowNs()),
      heartbeatNs_(startNs_) {
    metrics_.add(std::string(kKeys[0]), [this](ExpositionWriter& w) { collectPackets(w); });
    metrics_.add(std::string(kKeys[1]), [this](ExpositionWriter& w) { collectQueues(w); });
    metrics_.add(std::string(kKeys[2]), [this](ExpositionWriter& w) { collectInstances(w); });
    metrics_.add(std::string(kKeys[3]), [this](ExpositionWriter& w) { collectWatches(w); });
    metrics_.add(std::string(kKeys[4]), [this](ExpositionWriter& w) { collectReloads(w); });
    metrics_.add(std::string(kKeys[5]), [this](ExpositionWriter& w) { collectRuleset(w); });
    metrics_.add(std::string(kKeys[6]), [this](ExpositionWriter& w) { collectReadiness(w); });
    metrics_.add(std::string(kKeys[7]), collectProcess);
    metrics_.add(std::string(kKeys[8]), collectBuild);
    livez_.add("ping", [] { return HealthResult{true, {}}; });
    livez_.add("control-loop", [this] {
        uint64_t age = monotonicNowNs() - heartbeatNs_.load(std::memory_order_relaxed);
        if (age > kHeartbeatLimitNs)
            return HealthResult{false, fmt::format("the control loop has not run for {:.0f}s", age / 1e9)};
        return HealthResult{true, {}};
    });
    readyz_.add("plugin-snapshots", [this] { return checkSnapshots(); });
    readyz_.add("dataplane", [this] { return checkDataplane(); });
}

AgentOps::~AgentOps() {
    for (std::string_view k : kKeys) metrics_.remove(std::string(k));
    livez_.remove("ping");
    livez_.remove("control-loop");
    readyz_.remove("plugin-snapshots");
    readyz_.remove("dataplane");
}

void AgentOps::pipelineLoaded(const Pipeline& pipeline) {
    json::array list;
    for (const auto& i : pipeline.instances()) list.push_back(describeInstance(*i));
    std::lock_guard lock(mutex_);
    instances_ = std::move(list);
}

void AgentOps::heartbeat() noexcept { heartbeatNs_.store(monotonicNowNs(), std::memory_order_relaxed); }

void AgentOps::watching(const kube::WatchManager* watches) {
    std::lock_guard lock(mutex_);
    watches_ = watches;
}

void AgentOps::reloaded(Reload result) {
    reloads_[static_cast<size_t>(result)].fetch_add(1, std::memory_order_relaxed);
    if (result == Reload::Unchanged) return;
    lastReloadOk_.store(result == Reload::Applied, std::memory_order_relaxed);
    if (result == Reload::Applied) {
        auto now = std::chrono::system_clock::now().time_since_epoch();
        lastReloadOkUnixNs_.store(
            static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(now).count()),
            std::memory_order_relaxed);
    }
}

OpsHandlers AgentOps::handlers() const {
    OpsHandlers h;
    h.metrics = [this] { return metrics_.scrape(); };
    h.livez = &livez_;
    h.readyz = &readyz_;
    h.control = [this](const json::object& req) { return handle(req); };
    return h;
}

// ---------------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------------

void AgentOps::collectPackets(ExpositionWriter& w) const {
    using PM = PacketMetrics;
    constexpr size_t kP = PM::kProtocols.size(), kF = PM::kFamilies.size(), kB = PM::kBoundsUs.size();
    HistogramTotals<kB> time[kP][kF];
    uint64_t packets[kP][kF][2] = {};
    std::vector<uint32_t> recent;
    for (const auto& r : dp_.readers()) {
        const PM& m = r->packetMetrics();
        for (size_t p = 0; p < kP; ++p) {
            for (size_t f = 0; f < kF; ++f) {
                time[p][f].add(m.time(p, f));
                for (int a = 0; a < 2; ++a) packets[p][f][a] += m.packets(p, f, a == 1);
            }
        }
        m.recentNs().collect(recent);
    }
    std::vector<double> boundsUs(PM::kBoundsUs.begin(), PM::kBoundsUs.end());

    w.family("kube_network_policies_packet_process_time", "histogram",
             "Time it has taken to process each packet (microseconds)");
    uint64_t count = 0, sumNs = 0;
    for (size_t p = 0; p < kP; ++p) {
        for (size_t f = 0; f < kF; ++f) {
            if (time[p][f].count() == 0) continue;
            MetricLabel labels[] = {{"protocol", PM::kProtocols[p]}, {"family", PM::kFamilies[f]}};
            w.histogram("kube_network_policies_packet_process_time", labels, boundsUs, time[p][f].buckets,
                        static_cast<double>(time[p][f].sum) / 1000.0);
            count += time[p][f].count();
            sumNs += time[p][f].sum;
        }
    }

    // Quantiles over the most recent packets of every reader (a window by count, not time).
    auto quantiles = kQuantiles;
    for (auto& [q, v] : quantiles) {
        if (recent.empty()) {
            v = std::nan("");
            continue;
        }
        size_t k = std::min(recent.size() - 1, static_cast<size_t>(q * static_cast<double>(recent.size())));
        std::nth_element(recent.begin(), recent.begin() + static_cast<ptrdiff_t>(k), recent.end());
        v = static_cast<double>(recent[k]) / 1000.0;
    }
    w.family("kube_network_policies_packet_process_duration_microseconds", "summary",
             "A summary of the packet processing durations in microseconds.");
    w.summary("kube_network_policies_packet_process_duration_microseconds", {}, quantiles,
              static_cast<double>(sumNs) / 1000.0, count);

    w.family("kube_network_policies_packet_count", "counter", "Number of packets");
    for (size_t p = 0; p < kP; ++p) {
        for (size_t f = 0; f < kF; ++f) {
            for (int a = 1; a >= 0; --a) {
                if (packets[p][f][a] == 0) continue;
                w.sample(
                    "kube_network_policies_packet_count",
                    {{"protocol", PM::kProtocols[p]}, {"family", PM::kFamilies[f]}, {"verdict", a ? "accept" : "drop"}},
                    packets[p][f][a]);
            }
        }
    }
}

void AgentOps::collectQueues(ExpositionWriter& w) const {
    struct Family {
        const char* name;
        const char* type;
        const char* help;
    };
    using Rows = std::vector<std::pair<uint32_t, std::vector<uint64_t>>>;  // queue → one value per family
    auto write = [&w](std::span<const Family> families, const Rows& rows) {
        for (size_t f = 0; f < families.size(); ++f) {
            w.family(families[f].name, families[f].type, families[f].help);
            for (const auto& [queue, values] : rows) {
                std::string q = std::to_string(queue);
                w.sample(families[f].name, {{"queue", q}}, values[f]);
            }
        }
    };
    // The kernel's view of every queue in this network namespace, as upstream exports it.
    static constexpr Family kKernel[] = {
        {"kube_network_policies_nfqueue_queue_total", "gauge",
         "The number of packets currently queued and waiting to be processed by the application"},
        {"kube_network_policies_nfqueue_queue_dropped", "gauge",
         "Number of packets that had to be dropped by the kernel because too many packets are already waiting for "
         "user space to send back the mandatory accept/drop verdicts"},
        {"kube_network_policies_nfqueue_user_dropped", "gauge",
         "Number of packets that were dropped within the netlink subsystem. Such drops usually happen when the "
         "corresponding socket buffer is full; that is, user space is not able to read messages fast enough"},
        {"kube_network_policies_nfqueue_packet_id", "gauge", "ID of the most recent packet queued."},
    };
    Rows kernel;
    for (const NfqueueProcStats& q : readNfqueueProc())
        kernel.push_back({q.queue, {q.waiting, q.queueDropped, q.userDropped, q.idSequence}});
    write(kKernel, kernel);
    // knpd's readers.
    static constexpr Family kReaders[] = {
        {"knp_queue_packets_total", "counter", "Packets knpd's reader received from the queue."},
        {"knp_queue_unparsable_packets_total", "counter",
         "Packets too short or malformed to judge; they got the fail-open/fail-closed default."},
        {"knp_queue_receive_errors_total", "counter", "Errors receiving from or sending verdicts to the queue."},
    };
    Rows readers;
    for (const auto& r : dp_.readers()) {
        const QueueStats& st = r->stats();
        readers.push_back({r->num(), {st.packets.load(), st.unparsable.load(), st.receiveErrors.load()}});
    }
    write(kReaders, readers);
}

void AgentOps::collectInstances(ExpositionWriter& w) const {
    dp_.observe([&](const PipelineSnapshot* pipeline, const ClusterSnapshot*) {
        std::vector<InstanceView> instances;
        if (pipeline != nullptr)
            for (const Stage* st : distinctStages(*pipeline))
                instances.push_back({st->instance, st->snapshot != nullptr});
        writeInstanceMetrics(w, instances);
    });
}

void AgentOps::collectWatches(ExpositionWriter& w) const {
    // Nothing in state-file mode: the families only exist where there are watches.
    std::lock_guard lock(mutex_);
    if (watches_ == nullptr) return;
    const std::vector<kube::WatchTarget>& targets = watches_->targets();
    std::vector<kube::TargetHealth> health = watches_->health();
    std::vector<std::string> names;
    for (size_t i = 0; i < health.size() && i < targets.size(); ++i) names.push_back(targets[i].describe());
    struct Family {
        const char* name;
        const char* type;
        const char* help;
        double (*value)(const kube::TargetHealth&);
    };
    static constexpr Family kFamilies[] = {
        {"knp_watch_synced", "gauge", "1 once the watch has delivered its complete state (a missing resource counts).",
         [](const kube::TargetHealth& h) { return h.synced ? 1.0 : 0.0; }},
        {"knp_watch_missing", "gauge", "1 while the API server answers 404 for the resource (CRD not installed).",
         [](const kube::TargetHealth& h) { return h.missing ? 1.0 : 0.0; }},
        {"knp_watch_objects", "gauge", "Objects the watch currently holds.",
         [](const kube::TargetHealth& h) { return static_cast<double>(h.objects); }},
        {"knp_watch_relists_total", "counter", "Lists after the first (410 Gone, a resource that reappeared, ...).",
         [](const kube::TargetHealth& h) { return static_cast<double>(h.relists); }},
        {"knp_watch_watch_starts_total", "counter", "Watch requests the API server answered.",
         [](const kube::TargetHealth& h) { return static_cast<double>(h.watchStarts); }},
        {"knp_watch_events_total", "counter", "Events delivered (added, modified, deleted).",
         [](const kube::TargetHealth& h) { return static_cast<double>(h.events); }},
        {"knp_watch_failures_total", "counter", "Failed requests and broken streams.",
         [](const kube::TargetHealth& h) { return static_cast<double>(h.failures); }},
    };
    for (const Family& f : kFamilies) {
        w.family(f.name, f.type, f.help);
        for (size_t i = 0; i < names.size(); ++i) w.sample(f.name, {{"watch", names[i]}}, f.value(health[i]));
    }
    w.family("knp_watch_last_event_age_seconds", "gauge",
             "Since the watch's last sign of life: an event, a bookmark or a successful list.");
    for (size_t i = 0; i < names.size(); ++i)
        if (health[i].lastEventAge)
            w.sample("knp_watch_last_event_age_seconds", {{"watch", names[i]}},
                     std::chrono::duration<double>(*health[i].lastEventAge).count());
}

void AgentOps::collectReloads(ExpositionWriter& w) const {
    w.family("knp_pipeline_reloads_total", "counter",
             "pipeline.yaml reloads (SIGHUP or a change of the file) by result: applied, rejected (the running "
             "pipeline stayed), unchanged.");
    static constexpr std::string_view kResults[] = {"applied", "rejected", "unchanged"};
    for (size_t i = 0; i < reloads_.size(); ++i)
        w.sample("knp_pipeline_reloads_total", {{"result", kResults[i]}}, reloads_[i].load(std::memory_order_relaxed));
    w.scalar("knp_pipeline_last_reload_successful", "gauge",
             "0 when the last reload that changed something was rejected.",
             lastReloadOk_.load(std::memory_order_relaxed) ? 1 : 0);
    w.scalar("knp_pipeline_last_reload_success_timestamp_seconds", "gauge",
             "When a changed pipeline last went into force (0: never since start).",
             static_cast<double>(lastReloadOkUnixNs_.load(std::memory_order_relaxed)) / 1e9);
    w.scalar("knp_pipeline_reload_pending", "gauge",
             "1 while a new pipeline waits for its watches to sync before it replaces the running one.",
             reloadPending_.load(std::memory_order_relaxed) ? 1 : 0);
}

void AgentOps::collectRuleset(ExpositionWriter& w) const {
    const RulesetStats& r = dp_.rulesetStats();
    w.scalar("knp_ruleset_transactions_total", "counter", "nftables transactions applied (set deltas or full loads).",
             static_cast<double>(r.transactions.get()));
    w.scalar("knp_ruleset_full_loads_total", "counter",
             "Transactions that refilled the table (start, take-over, or a change of filter groups).",
             static_cast<double>(r.fullLoads.get()));
    w.scalar("knp_ruleset_apply_failures_total", "counter", "Ruleset updates the kernel refused.",
             static_cast<double>(r.failures.get()));
    HistogramTotals<RulesetStats::kBoundsNs.size()> latency;
    latency.add(r.latency);
    w.family("knp_ruleset_apply_duration_seconds", "histogram",
             "Time to bring the kernel's ruleset in line with a published view (a no-op when nothing changed).");
    w.histogram("knp_ruleset_apply_duration_seconds", {}, toSeconds(RulesetStats::kBoundsNs), latency.buckets,
                static_cast<double>(latency.sum) / 1e9);
    w.scalar("knp_ruleset_last_apply_timestamp_seconds", "gauge", "When the ruleset was last applied successfully.",
             static_cast<double>(r.lastSuccessUnixNs.load(std::memory_order_relaxed)) / 1e9);
}

void AgentOps::collectReadiness(ExpositionWriter& w) const {
    HealthChecks::Report report = readyz_.run();
    w.scalar("knp_ready", "gauge", "1 when every readiness check passes (/readyz).", report.ok ? 1 : 0);
    w.family("knp_readiness_check", "gauge", "1 when the named readiness check passes.");
    for (const auto& [name, res] : report.checks) w.sample("knp_readiness_check", {{"check", name}}, uint64_t{res.ok});
}

// ---------------------------------------------------------------------------------------------
// Health
// ---------------------------------------------------------------------------------------------

HealthResult AgentOps::checkSnapshots() const {
    HealthResult r{false, "no pipeline published yet"};
    dp_.observe([&](const PipelineSnapshot* pipeline, const ClusterSnapshot*) {
        if (pipeline == nullptr) return;
        std::vector<std::string> missing;
        auto stages = distinctStages(*pipeline);
        for (const Stage* st : stages)
            if (st->snapshot == nullptr) missing.push_back(fmt::format("{:?}", st->instance->name()));
        if (missing.empty()) {
            r = {true, fmt::format("{} instances", stages.size())};
        } else {
            r = {false, fmt::format("no snapshot yet from {}", fmt::join(missing, ", "))};
        }
    });
    return r;
}

HealthResult AgentOps::checkDataplane() const {
    const auto& o = dp_.options().ruleset;
    if (dp_.readers().size() != o.queueCount) return {false, "queue readers are not running"};
    if (dp_.rulesetStats().lastSuccessUnixNs.load() == 0) return {false, "the ruleset has not been applied yet"};
    return {true, fmt::format("queues {}-{}, table inet/{}", o.queueNum, o.queueNum + o.queueCount - 1, o.table)};
}

// ---------------------------------------------------------------------------------------------
// Control socket
// ---------------------------------------------------------------------------------------------

json::object AgentOps::handle(const json::object& request) const {
    const json::value* cmd = request.if_contains("command");
    std::string_view name = cmd != nullptr && cmd->is_string() ? std::string_view(cmd->get_string()) : "";
    if (name == "explain") return explain(request);
    if (name == "status") return ok(status());
    if (name == "plugins") {
        std::lock_guard lock(mutex_);
        return ok(instances_);
    }
    return failure(fmt::format("unknown command {:?}: explain, status or plugins", name));
}

json::object AgentOps::explain(const json::object& request) const {
    const json::value* text = request.if_contains("probe");
    if (text == nullptr || !text->is_string()) return failure("explain needs \"probe\": \"SRC DST PROTO/PORT\"");
    auto probe = parseProbe(text->get_string(), "probe");
    if (!probe) return failure(probe.error().message);
    Result<json::object> result = makeError("knpd has not published a view yet (starting up)");
    dp_.observe([&](const PipelineSnapshot* pipeline, const ClusterSnapshot* cluster) {
        if (pipeline != nullptr && cluster != nullptr) result = explainProbe(*pipeline, *cluster, *probe);
    });
    if (!result) return failure(result.error().message);
    return ok(std::move(*result));
}

json::object AgentOps::status() const {
    json::object o;
    o["node"] = info_.node;
    o["version"] = KNP_VERSION;
    o["pid"] = ::getpid();
    o["uptime_seconds"] = secondsSince(startNs_);
    o["pipeline"] = info_.pipelinePath;

    const auto& ro = dp_.options().ruleset;
    json::object dataplane;
    dataplane["table"] = "inet/" + ro.table;
    dataplane["queue_method"] = info_.queueMethod;
    dataplane["fail_open"] = info_.failOpen;
    std::vector<NfqueueProcStats> kernel = readNfqueueProc();
    json::array queues;
    for (const auto& r : dp_.readers()) {
        const QueueStats& s = r->stats();
        json::object q;
        q["queue"] = r->num();
        q["packets"] = s.packets.load();
        q["accepted"] = s.accepted.load();
        q["denied"] = s.denied.load();
        q["unparsable"] = s.unparsable.load();
        q["receive_errors"] = s.receiveErrors.load();
        auto k = std::find_if(kernel.begin(), kernel.end(), [&](const auto& e) { return e.queue == r->num(); });
        if (k != kernel.end()) {
            q["kernel"] = json::object{{"waiting", k->waiting},
                                       {"queue_dropped", k->queueDropped},
                                       {"user_dropped", k->userDropped},
                                       {"id_sequence", k->idSequence}};
        } else {
            q["kernel"] = nullptr;
        }
        queues.push_back(std::move(q));
    }
    dataplane["queues"] = std::move(queues);
    const RulesetStats& rs = dp_.rulesetStats();
    json::object ruleset;
    ruleset["transactions"] = rs.transactions.get();
    ruleset["full_loads"] = rs.fullLoads.get();
    ruleset["apply_failures"] = rs.failures.get();
    uint64_t last = rs.lastSuccessUnixNs.load();
    ruleset["last_apply_unix_seconds"] = static_cast<double>(last) / 1e9;
    dataplane["ruleset"] = std::move(ruleset);
    o["dataplane"] = std::move(dataplane);

    HealthChecks::Report report = readyz_.run();
    o["ready"] = report.ok;
    json::array checks;
    for (const auto& [name, res] : report.checks)
        checks.push_back(json::object{{"check", name}, {"ok", res.ok}, {"message", res.message}});
    o["readiness"] = std::move(checks);

    json::array instances;
    {
        std::lock_guard lock(mutex_);
        instances = instances_;
    }
    dp_.observe([&](const PipelineSnapshot* pipeline, const ClusterSnapshot* cluster) {
        if (cluster != nullptr)
            o["cluster"] =
                json::object{{"pods", cluster->podCount()}, {"local_pod_ips", cluster->localPodIps().size()}};
        if (pipeline == nullptr) return;
        for (const Stage* st : distinctStages(*pipeline)) {
            for (json::value& v : instances) {
                json::object& io = v.as_object();
                if (io["instance"] != json::value(st->instance->name())) continue;
                io["snapshot"] = st->snapshot != nullptr;
                InstanceStats::Totals t = st->instance->stats().totals();
                json::object verdicts;
                for (size_t d = 0; d < 2; ++d) {
                    if (!st->instance->handles(static_cast<Direction>(d))) continue;
                    uint64_t errors = 0;
                    for (uint64_t e : t.outcomes[d]) errors += e;
                    verdicts[directionName(d)] = json::object{{"accept", t.verdicts[d][KNP_VERDICT_ACCEPT]},
                                                              {"deny", t.verdicts[d][KNP_VERDICT_DENY]},
                                                              {"next", t.verdicts[d][KNP_VERDICT_NEXT]},
                                                              {"errors", errors}};
                }
                io["evaluations"] = std::move(verdicts);
            }
        }
    });
    o["instances"] = std::move(instances);
    return o;
}

}  // namespace knp::host
