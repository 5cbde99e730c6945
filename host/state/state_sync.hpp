// Delivers a cluster state (a list of objects) to the host's pod index and to the plugins, as
// the watch would: the first sync is ADDED for everything then SYNCED per watch; every later
// sync is the difference (ADDED, MODIFIED, DELETED). The pipeline is updated and a new cluster
// snapshot built in the same step, so the two always describe the same state.
//
// THREAD: control thread only.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "cluster/cluster.hpp"
#include "common/result.hpp"
#include "pipeline/pipeline.hpp"
#include "state/state_file.hpp"

namespace knp::host {

class StateSync {
public:
    StateSync(Pipeline& pipeline, std::string localNode) : pipeline_(pipeline), localNode_(std::move(localNode)) {}

    struct Outcome {
        std::shared_ptr<const ClusterSnapshot> cluster;  // built from the new state
        bool podsChanged = false;
        size_t events = 0;
        std::vector<Error> errors;  // plugin update failures (their previous snapshots stay)
    };
    // A malformed object fails the whole sync and changes nothing (the previous state stays
    // in force); errors name file:line.
    Result<Outcome> sync(const std::vector<StateObject>& objects);

private:
    using Key = std::tuple<std::string, std::string, std::string, std::string>;  // apiVersion, kind, ns, name
    Pipeline& pipeline_;
    std::string localNode_;
    ClusterState cluster_;
    std::map<Key, std::string> last_;  // serialized objects last delivered
    bool synced_ = false;
};

}  // namespace knp::host
