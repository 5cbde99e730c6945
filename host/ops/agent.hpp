// knpd's operational surface: the metrics it exports, its health checks, and the answers to
// the control socket (explain, status, plugins). It reads the dataplane's per-reader counters
// and, through Dataplane::observe(), the view the readers enforce; it never writes to either.
//
// Metric names (Prometheus):
//   kube_network_policies_packet_process_time               histogram  protocol, family (µs)
//   kube_network_policies_packet_process_duration_microseconds summary (last 4096 per reader)
//   kube_network_policies_packet_count                      counter    protocol, family, verdict
//   kube_network_policies_nfqueue_{queue_total,queue_dropped,user_dropped,packet_id}  gauges, queue
//   knp_queue_{packets,unparsable_packets,receive_errors}_total   counters, queue
//   knp_instance_evaluation_duration_seconds                 histogram  instance, plugin, direction
//   knp_instance_verdicts_total                              counter    instance, plugin, direction, verdict
//   knp_instance_errors_total                                counter    instance, plugin, direction, reason
//   knp_instance_snapshot_ready                              gauge      instance, plugin
//   knp_plugin_<name>[_total]                                what plugins define; instance, plugin
//   knp_ruleset_{transactions,full_loads,apply_failures}_total, knp_ruleset_apply_duration_seconds,
//   knp_ruleset_last_apply_timestamp_seconds
//   knp_watch_{synced,missing,objects,last_event_age_seconds}                 gauges, watch
//   knp_watch_{relists,watch_starts,events,failures}_total                   counters, watch
//   knp_pipeline_reloads_total{result}, knp_pipeline_last_reload_successful,
//   knp_pipeline_last_reload_success_timestamp_seconds, knp_pipeline_reload_pending
//   knp_ready, knp_readiness_check{check}, knp_build_info{version}, process_*
//
// THREAD: construction, pipelineLoaded(), watching(), reloaded() and heartbeat() on the
// control thread; everything
// else (collectors, checks, handle()) on the ops thread. Must be destroyed after the OpsServer
// that calls it has stopped, and before the Dataplane.
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <string>
#include <vector>

#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "dataplane/dataplane.hpp"
#include "kube/watch_manager.hpp"
#include "ops/exposition.hpp"
#include "ops/health.hpp"
#include "ops/ops_server.hpp"
#include "pipeline/pipeline.hpp"

namespace knp::host {

// The per-instance families (knp_instance_*, and the knp_plugin_* metrics plugins define) of
// `instances`. THREAD: the instances must stay alive for the call (a held view).
struct InstanceView {
    const PluginInstance* instance = nullptr;
    bool snapshot = false;  // has published one
};
void writeInstanceMetrics(ExpositionWriter& w, const std::vector<InstanceView>& instances);

struct AgentInfo {
    std::string node;
    std::string pipelinePath;
    std::string queueMethod;
    bool failOpen = true;
};

class AgentOps {
public:
    // Registers its collectors and checks; the dataplane must have been started (its readers
    // exist) before the ops thread serves anything.
    AgentOps(const Dataplane& dataplane, AgentInfo info, MetricsRegistry& metrics, HealthChecks& livez,
             HealthChecks& readyz);
    ~AgentOps();
    AgentOps(const AgentOps&) = delete;
    AgentOps& operator=(const AgentOps&) = delete;

    // The pipeline now running (at start and after each reload): what `plugins` lists.
    void pipelineLoaded(const Pipeline& pipeline);
    // The control loop is alive (livez "control-loop").
    void heartbeat() noexcept;
    // The watches whose health /metrics reports (nullptr: none, state-file mode). The previous
    // WatchManager may be destroyed once this returns: a scrape holds the pointer under the
    // same lock.
    void watching(const kube::WatchManager* watches);
    // The outcome of a pipeline reload (knp_pipeline_reload*): applied, rejected (a bad file,
    // a plugin that failed to load) or unchanged; `pending` while new watches sync.
    enum class Reload { Applied, Rejected, Unchanged };
    void reloaded(Reload result);
    void reloadPending(bool pending) noexcept { reloadPending_.store(pending, std::memory_order_relaxed); }

    // One control request: {"command":"explain","probe":"SRC DST PROTO/PORT"},
    // {"command":"status"} or {"command":"plugins"}.
    boost::json::object handle(const boost::json::object& request) const;
    // Handlers for OpsServer, bound to this object and the given registries.
    OpsHandlers handlers() const;

    void collectPackets(ExpositionWriter& w) const;
    void collectQueues(ExpositionWriter& w) const;
    void collectInstances(ExpositionWriter& w) const;
    void collectRuleset(ExpositionWriter& w) const;
    void collectReadiness(ExpositionWriter& w) const;
    void collectWatches(ExpositionWriter& w) const;
    void collectReloads(ExpositionWriter& w) const;

private:
    HealthResult checkSnapshots() const;
    HealthResult checkDataplane() const;
    boost::json::object status() const;
    boost::json::object explain(const boost::json::object& request) const;

    const Dataplane& dp_;
    AgentInfo info_;
    MetricsRegistry& metrics_;
    HealthChecks& livez_;
    HealthChecks& readyz_;
    uint64_t startNs_;
    std::atomic<uint64_t> heartbeatNs_;
    mutable std::mutex mutex_;
    boost::json::array instances_;                 // describeInstance() of the running pipeline
    const kube::WatchManager* watches_ = nullptr;  // under mutex_
    // Reloads by Reload value; written on the control thread only.
    std::array<std::atomic<uint64_t>, 3> reloads_{};
    std::atomic<bool> lastReloadOk_{true};
    std::atomic<uint64_t> lastReloadOkUnixNs_{0};
    std::atomic<bool> reloadPending_{false};
};

}  // namespace knp::host
