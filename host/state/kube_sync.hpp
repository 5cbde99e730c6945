// Delivers the Kubernetes watch to the host's pod index and to the plugins: Pod, Namespace and
// Node events update the pod index; every plugin watch's events go to its subscribers through
// the pipeline. The counterpart of StateSync for a live API server.
//
// THREAD: control thread only (it drains the WatchManager's queue there).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cluster/cluster.hpp"
#include "common/result.hpp"
#include "kube/watch_manager.hpp"
#include "pipeline/pipeline.hpp"

namespace knp::host {

class KubeSync {
public:
    KubeSync(Pipeline& pipeline, kube::WatchManager& watches, std::string localNode)
        : pipeline_(pipeline), watches_(watches), localNode_(std::move(localNode)) {}

    // Registers the host's own targets (pods, namespaces, nodes) and every plugin watch.
    Status addTargets();

    struct Outcome {
        // Set when the pipeline or the pod index changed and the caller should publish.
        std::shared_ptr<const ClusterSnapshot> cluster;
        std::vector<Error> errors;  // malformed objects and plugin update failures, one line each
    };
    // Drains what the watches delivered and applies it. Until every watch has synced once the
    // state only accumulates (nothing to publish): the first publish is a complete picture.
    Outcome poll();

    bool synced() const noexcept { return synced_; }

private:
    struct Route {
        std::optional<CoreKind> core;         // the host's own pod index
        std::vector<size_t> pipelineWatches;  // distinct pipeline watches fed by this target
        bool synced = false;                  // its first SYNCED has been consumed
    };

    Pipeline& pipeline_;
    kube::WatchManager& watches_;
    std::string localNode_;
    ClusterState cluster_;
    std::vector<Route> routes_;  // by target index
    std::vector<kube::WatchEvent> batch_;
    size_t syncedTargets_ = 0;
    bool synced_ = false;
    bool podsChanged_ = false;
    bool pipelineChanged_ = false;
};

}  // namespace knp::host
