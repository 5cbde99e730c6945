// The loaded pipeline: plugin instances in pipeline.yaml order, the de-duplicated watches they
// asked for, and the immutable PipelineSnapshot evaluation runs on.
//
// THREAD: Pipeline is control-thread only (load, queueEvent, flush, destruction).
// PipelineSnapshot is immutable and may be read from any thread. The last reference to a
// PipelineSnapshot must be dropped on the control thread, because that releases plugin
// snapshots (release_snapshot is a control call); the dataplane hands snapshots back to the
// control thread for that.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/cluster.hpp"
#include "common/result.hpp"
#include "pipeline/config.hpp"
#include "plugins/instance.hpp"
#include "plugins/library.hpp"

namespace knp::host {

// A plugin snapshot, released through its instance when the last pipeline snapshot that uses
// it goes away.
class PluginSnapshot {
public:
    PluginSnapshot(PluginInstance& inst, void* snap, InterestSet interest)
        : inst_(inst), snap_(snap), interest_(std::move(interest)) {}
    ~PluginSnapshot() { inst_.release(snap_); }
    PluginSnapshot(const PluginSnapshot&) = delete;
    PluginSnapshot& operator=(const PluginSnapshot&) = delete;
    const void* get() const noexcept { return snap_; }
    const InterestSet& interest() const noexcept { return interest_; }

private:
    PluginInstance& inst_;
    void* snap_;
    InterestSet interest_;
};

struct Stage {
    const PluginInstance* instance = nullptr;
    const void* snapshot = nullptr;  // nullptr: the instance has not produced one yet (not ready)
};

class PipelineSnapshot {
public:
    // Stages per direction, in pipeline order, only instances with that capability.
    const std::vector<Stage>& stages(Direction d) const noexcept {
        return d == Direction::Ingress ? ingress_ : egress_;
    }
    bool ready() const noexcept { return ready_; }
    // The snapshots that back the stages, in instance order (nullptr: none yet).
    const std::vector<std::shared_ptr<const PluginSnapshot>>& pluginSnapshots() const noexcept { return held_; }

private:
    friend class Pipeline;
    std::vector<Stage> ingress_, egress_;
    std::vector<std::shared_ptr<const PluginSnapshot>> held_;
    bool ready_ = false;
};

struct LoadOptions {
    PluginSearchPath searchPath;
    FileTrustPolicy trust = FileTrustPolicy::forThisProcess();
    std::string nodeName;
};

class Pipeline {
public:
    // Loads every enabled instance: resolves and vets its library, validates the descriptor,
    // calls init with its config. Any failure is one line naming the pipeline file and line.
    static Result<std::unique_ptr<Pipeline>> load(const PipelineConfig& config, const LoadOptions& options);
    ~Pipeline();

    const PipelineConfig& config() const noexcept { return config_; }
    const std::vector<std::unique_ptr<PluginInstance>>& instances() const noexcept { return instances_; }
    // Distinct watches over all instances (identical requests share one entry).
    const std::vector<WatchSpec>& watches() const noexcept { return watches_; }

    // Queues an event of distinct watch `watch` for every subscribing instance.
    void queueEvent(size_t watch, uint32_t type, std::string objectJson, std::string ns, std::string name);
    // The same, sharing the bytes the watch already holds (every subscriber gets these bytes).
    void queueEvent(size_t watch, uint32_t type, std::shared_ptr<const std::string> object, std::string ns,
                    std::string name);
    // Runs update() on every instance that has queued events (all of them when `flags` has
    // KNP_UPDATE_PODS_CHANGED, or on the first flush) and publishes a new snapshot. With pods
    // changed, an instance that saw the previous build gets the list of changed pods. An
    // instance whose update fails keeps its previous snapshot (the host keeps enforcing what
    // it last knew); the failures are returned, one line each.
    std::vector<Error> flush(uint32_t flags, const ClusterSnapshot& cluster);

    std::shared_ptr<const PipelineSnapshot> current() const noexcept { return current_; }

private:
    Pipeline() = default;

    struct Subscriber {
        size_t instance;
        uint32_t watchIndex;
    };
    struct QueuedEvent {
        uint32_t type;
        uint32_t watchIndex;
        std::shared_ptr<const std::string> object;  // shared by every subscriber of the watch
        std::string ns, name;
    };

    PipelineConfig config_;
    std::vector<std::unique_ptr<PluginInstance>> instances_;
    std::vector<WatchSpec> watches_;
    std::vector<std::vector<Subscriber>> subscribers_;              // per distinct watch
    std::vector<std::vector<QueuedEvent>> queued_;                  // per instance
    std::vector<std::shared_ptr<const PluginSnapshot>> snapshots_;  // per instance
    // Per instance: the cluster build its last successful update() saw (0: none, or it failed),
    // which decides whether the next update may carry the pod delta (ABI 1.1).
    std::vector<uint64_t> seen_;
    std::shared_ptr<const PipelineSnapshot> current_;
    bool flushed_ = false;
};

}  // namespace knp::host
