// What knpd enforces: the running pipeline, the source that feeds it the cluster (a state file,
// or the API server's watches), and the reload that replaces both without a gap.
//
// Reload (SIGHUP, or pipeline.yaml changing on disk): the file is parsed and compared with the
// running configuration; unchanged, nothing happens. Otherwise the new Pipeline is loaded (its
// plugins dlopened and initialised) next to the running one and given the complete cluster, as
// at start: every object of every watch it subscribes to, then SYNCED, then a flush. Only when
// it has a ready snapshot is it published; the dataplane switches views atomically, so every
// packet is judged by one pipeline or the other. Any failure before that (a bad file, a plugin
// that does not load, an update that fails) is one line naming file:line, and the running
// pipeline stays.
//
// The cluster for the new pipeline:
// - state file: the file is re-read (SIGHUP re-reads both files) and delivered to a new
//   StateSync.
// - API server: a second WatchManager with the new pipeline's targets (plus pods, namespaces,
//   nodes) lists and watches next to the running one, which keeps enforcing; once every one of
//   its watches has synced, it and the new pipeline replace the running pair. Why a second set
//   of watches rather than adding targets to the running one: the reflectors do not keep what
//   they delivered in a form that could be replayed to a new subscriber, targets are fixed once
//   a WatchManager starts, and a fresh set gives the new pipeline exactly what a restart would
//   (pod index and plugin state from the same lists). It costs one LIST per target per reload,
//   which is an operator's action, not a steady load. A reload whose watches have not synced
//   within `pendingSyncLimit` is abandoned (and a newer reload replaces a pending one).
//
// The replaced pipeline lives on until the dataplane has freed every view published before the
// swap: those views hold PluginSnapshots, which hold references to its PluginInstances and must
// be released through them on the control thread.
//
// THREAD: control thread only (the ops thread sees the pipeline through the dataplane's views
// and AgentOps). LIFETIME: destroy it after the Dataplane: the dataplane's last views hold
// snapshots of the pipelines this owns; and after the OpsServer has stopped (AgentOps reads
// the health of the watches this owns).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "dataplane/dataplane.hpp"
#include "kube/config.hpp"
#include "kube/watch_manager.hpp"
#include "ops/agent.hpp"
#include "pipeline/config.hpp"
#include "pipeline/pipeline.hpp"
#include "state/kube_sync.hpp"
#include "state/state_sync.hpp"
#include "sys/handles.hpp"

namespace knp::host {

struct EnforcementOptions {
    std::string pipelinePath;
    LoadOptions load;                         // plugin search path, node name
    std::string statePath;                    // state-file mode when set
    std::optional<kube::ClusterConfig> kube;  // API-server mode when set
    kube::WatchOptions watch;
    bool watchPipelineFile = true;  // inotify on the file's directory
    std::chrono::seconds pendingSyncLimit{120};
    // Changes closer together than this are one reload (editors write, then rename).
    std::chrono::milliseconds settle{100};
};

// Same instances, in the same order, with the same libraries, configs and error policies.
bool samePipeline(const PipelineConfig& a, const PipelineConfig& b);

class Enforcement {
public:
    // Loads pipeline.yaml and starts the source. State file: loaded and published before this
    // returns. API server: the watches are started; the first publish follows their sync.
    static Result<std::unique_ptr<Enforcement>> start(EnforcementOptions options, Dataplane& dp, AgentOps& agent);
    ~Enforcement() = default;
    Enforcement(const Enforcement&) = delete;
    Enforcement& operator=(const Enforcement&) = delete;

    // Descriptors to poll for POLLIN; when any is readable, call poll().
    std::vector<int> fds() const;
    // Applies what the watches delivered and notes changes of pipeline.yaml. Non-blocking.
    void poll();
    // Once per round of the control loop: frees views and replaced pipelines nothing can see
    // any more, runs a reload for a settled file change, abandons a pending reload that took
    // too long.
    void tick();
    // How long the control loop may sleep before the next tick().
    int timeoutMs() const;

    enum class Trigger { Signal, FileChange };
    // SIGHUP: state-file mode re-reads the state file and pipeline.yaml; API-server mode
    // pipeline.yaml. A file change: pipeline.yaml (and, if the pipeline changed, the state file
    // it needs the whole cluster from).
    void reload(Trigger trigger);

    // Shutting down: the watches (and a pending reload's) stop; nothing is published any more.
    // Their WatchManagers stay readable (health()) until destruction.
    void stop();

    // The cluster has been published at least once (the state loaded, or every watch synced).
    bool enforcing() const noexcept { return enforcing_; }
    const Pipeline& pipeline() const noexcept { return *current_.pipeline; }
    const kube::WatchManager* watches() const noexcept { return current_.watches.get(); }

private:
    // A pipeline and what feeds it. Destroyed in reverse order: the syncs (which refer to the
    // pipeline and the watches), the watches (their threads stop), then the pipeline.
    struct Source {
        std::unique_ptr<Pipeline> pipeline;
        std::unique_ptr<StateSync> stateSync;
        std::unique_ptr<kube::WatchManager> watches;
        std::unique_ptr<KubeSync> kubeSync;
    };
    struct Retiring {
        Source source;
        uint64_t epoch;  // the dataplane's epoch right after the swap
    };
    struct Pending {
        Source source;
        std::chrono::steady_clock::time_point started;
        Trigger trigger;
    };

    Enforcement(EnforcementOptions options, Dataplane& dp, AgentOps& agent)
        : options_(std::move(options)), dp_(dp), agent_(agent) {}

    Result<Source> loadSource(const PipelineConfig& config) const;
    Status startWatches(Source& s) const;
    Status watchPipelineFile();
    void readFileEvents();
    // Publishes `next` with `cluster`, makes it the running source and retires the old one.
    void promote(Source next, std::shared_ptr<const ClusterSnapshot> cluster, Trigger trigger);
    void reject(const Error& e);
    void reloadState();

    EnforcementOptions options_;
    Dataplane& dp_;
    AgentOps& agent_;
    Source current_;
    std::optional<Pending> pending_;
    std::vector<Retiring> retiring_;
    sys::Fd inotify_;
    std::string fileDir_, fileName_;  // pipeline.yaml's directory and name in it
    std::optional<std::chrono::steady_clock::time_point> fileChanged_;
    bool enforcing_ = false;
};

}  // namespace knp::host
