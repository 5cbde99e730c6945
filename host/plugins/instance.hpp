// One plugin instance: a pipeline.yaml entry bound to a loaded library through the C ABI.
//
// THREAD: create, watches, update, release and the destructor run on the control thread.
// evaluate() is thread-safe (data threads) and never allocates or locks: it is one indirect
// call guarded by a catch(...) so a plugin that lets an exception escape the ABI is turned
// into an error value instead of terminating the host. stats() slot i is written by reader i
// only; pluginMetrics() and the stats totals may be read from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <knp/plugin_api.h>

#include "common/result.hpp"
#include "ops/counters.hpp"
#include "plugins/library.hpp"

namespace knp::host {

enum class OnError { Deny, Accept, Next };
std::string_view onErrorName(OnError e) noexcept;
int32_t onErrorVerdict(OnError e) noexcept;

enum class Direction { Ingress, Egress };

// How an evaluation ended: the plugin's own verdict, or its onError for one of three reasons.
enum class EvalOutcome { Ok, PluginError, OutOfRange, NoSnapshot };
inline constexpr size_t kEvalOutcomes = 4;
// Names in metrics, explain and status, indexed by EvalOutcome and by KNP_VERDICT_*.
inline constexpr std::array<std::string_view, kEvalOutcomes> kEvalOutcomeNames{"ok", "plugin_error", "out_of_range",
                                                                               "no_snapshot"};
inline constexpr std::array<std::string_view, 3> kVerdictNames{"next", "accept", "deny"};

// Data-path statistics of one instance, one slot per reader (see ops/counters.hpp).
class InstanceStats {
public:
    // Evaluation time buckets, in nanoseconds (exposed in seconds).
    static constexpr std::array<uint64_t, 12> kTimeBoundsNs{250,   500,   1000,   2500,   5000,    10000,
                                                            25000, 50000, 100000, 250000, 1000000, 10000000};
    using TimeHistogram = SingleWriterHistogram<kTimeBoundsNs.size()>;

    // `verdict` is the effective one (KNP_VERDICT_*, onError applied).
    void record(unsigned slot, Direction d, int32_t verdict, EvalOutcome outcome, uint64_t ns) noexcept {
        Slot& s = slots_[slot];
        auto di = static_cast<size_t>(d);
        s.time[di].observe(kTimeBoundsNs, ns);
        if (verdict >= KNP_VERDICT_NEXT && verdict <= KNP_VERDICT_DENY)
            s.verdicts[di][static_cast<size_t>(verdict)].add();
        if (outcome != EvalOutcome::Ok) s.outcomes[di][static_cast<size_t>(outcome)].add();
    }

    struct Totals {
        HistogramTotals<kTimeBoundsNs.size()> time[2];  // by Direction
        uint64_t verdicts[2][3] = {};                   // [Direction][KNP_VERDICT_NEXT/ACCEPT/DENY]
        uint64_t outcomes[2][kEvalOutcomes] = {};       // [Direction][EvalOutcome]; Ok unused
    };
    Totals totals() const noexcept;

private:
    struct alignas(64) Slot {
        TimeHistogram time[2];
        SingleWriterCounter verdicts[2][3];
        SingleWriterCounter outcomes[2][kEvalOutcomes];
    };
    std::array<Slot, kMaxReaders> slots_;
};

// A metric a plugin defined through the host API, as read at one moment.
struct PluginMetricSample {
    // Observation buckets of histogram metrics (the plugin's unit; Prometheus' defaults).
    static constexpr std::array<double, 11> kBounds{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    std::string name, help;
    int32_t type = 0;                                    // KNP_METRIC_*
    double value = 0;                                    // counter, gauge
    double sum = 0;                                      // histogram
    std::array<uint64_t, kBounds.size() + 1> buckets{};  // histogram, non-cumulative
};
// A watch a plugin asked for, copied into host memory.
struct WatchSpec {
    std::string group, version, resource, kind, watchNamespace, labelSelector, fieldSelector;

    bool operator==(const WatchSpec&) const = default;
    bool operator<(const WatchSpec& o) const {
        return std::tie(group, version, resource, kind, watchNamespace, labelSelector, fieldSelector) <
               std::tie(o.group, o.version, o.resource, o.kind, o.watchNamespace, o.labelSelector, o.fieldSelector);
    }
    std::string apiVersion() const { return group.empty() ? version : group + "/" + version; }
    std::string describe() const;
};

// A snapshot's interest, copied out of plugin memory and validated at update time, so the
// dataplane computes deltas on data the host owns.
struct DirectionInterestSet {
    bool divertAll = false;
    bool localPods = false;
    uint32_t protocols = 0;
    std::vector<knp_cidr> local;
    std::vector<knp_cidr> remote;
    std::vector<knp_port_range> dstPorts;
    bool empty() const noexcept { return !divertAll && !localPods && local.empty() && remote.empty(); }
};
struct InterestSet {
    DirectionInterestSet ingress;
    DirectionInterestSet egress;
};

// What the host lends a plugin during update(): the pod index to iterate.
using PodIterator = std::function<int32_t(bool localOnly, int32_t (*fn)(void*, const knp_pod*), void* user)>;

struct InstanceOptions {
    std::string name;
    std::string configJson = "{}";
    OnError onError = OnError::Deny;
    std::string nodeName;
};

class PluginInstance {
public:
    // Calls init and get_watches. Errors are one line; a config error carries the JSON
    // pointer separately (`configPointer`) so the caller can name the pipeline.yaml line.
    struct InitError {
        Error error;
        std::string configPointer;
    };
    static std::variant<std::unique_ptr<PluginInstance>, InitError> create(const PluginLibrary& lib,
                                                                           InstanceOptions options);
    ~PluginInstance();
    PluginInstance(const PluginInstance&) = delete;
    PluginInstance& operator=(const PluginInstance&) = delete;

    const std::string& name() const noexcept { return options_.name; }
    const PluginLibrary& library() const noexcept { return lib_; }
    const knp_plugin_descriptor& descriptor() const noexcept { return *lib_.descriptor; }
    OnError onError() const noexcept { return options_.onError; }
    bool handles(Direction d) const noexcept {
        return (descriptor().capabilities & (d == Direction::Ingress ? KNP_CAP_INGRESS : KNP_CAP_EGRESS)) != 0;
    }
    const std::vector<WatchSpec>& watches() const noexcept { return watches_; }

    struct UpdateOutcome {
        void* snapshot = nullptr;  // nullptr: unchanged
        InterestSet interest;
    };
    // `podIterator` backs the host API's for_each_pod for the duration of the call.
    // `podChanges` (nullptr: none) is passed as knp_update_args.pod_changes with
    // KNP_UPDATE_POD_CHANGES to a plugin built for ABI 1.1 or later; older ones never see it.
    Result<UpdateOutcome> update(const std::vector<const knp_event*>& events, uint32_t flags,
                                 const PodIterator& podIterator,
                                 const std::vector<const knp_pod_change*>* podChanges = nullptr);
    void release(void* snapshot) noexcept;

    // Data path. Returns 0 and fills `out`, or a negative errno (-EIO when the plugin threw).
    int32_t evaluate(Direction d, const void* snapshot, const knp_eval_args& args, knp_eval_result& out) const noexcept;

    // Per-reader evaluation statistics (written by the engine on the data path).
    InstanceStats& stats() const noexcept { return *stats_; }
    // The metrics the plugin defined (knp_host_api.metric_define), in definition order.
    std::vector<PluginMetricSample> pluginMetrics() const;

    // Host-side context behind the knp_host_api callbacks.
    struct HostContext;

private:
    PluginInstance(const PluginLibrary& lib, InstanceOptions options);

    const PluginLibrary& lib_;
    InstanceOptions options_;
    knp_plugin* plugin_ = nullptr;
    std::vector<WatchSpec> watches_;
    std::unique_ptr<HostContext> ctx_;
    std::unique_ptr<InstanceStats> stats_;
};

}  // namespace knp::host
