// knpctl simulate: a cluster state file and probes run through the real pipeline, over the
// same ABI path (watch events → update → snapshot → evaluate) as the daemon.
//
// THREAD: single-threaded (knpctl); the pipeline and cluster it drives are the host's own.
#pragma once

#include <string>
#include <vector>

#include <boost/json/object.hpp>
#include <knp/plugin_api.h>

#include "cluster/cluster.hpp"
#include "common/result.hpp"
#include "engine/engine.hpp"
#include "pipeline/pipeline.hpp"
#include "state/state_file.hpp"
#include "state/state_sync.hpp"

namespace knp::host {

// "SRC DST PROTO/PORT": SRC/DST are namespace/pod or an IP literal; PROTO is TCP, UDP or SCTP.
struct Probe {
    std::string src, dst;
    uint8_t protocol = KNP_PROTO_TCP;
    uint16_t port = 0;
    std::string where;  // "probes.txt:4" or "--probe #2"
};
Result<Probe> parseProbe(std::string_view text, const std::string& where);
// One probe per line; blank lines and `#` comments are skipped.
Result<std::vector<Probe>> loadProbesFile(const std::string& path);

class Simulation {
public:
    // Feeds the state to the host's cluster index and, as watch events, to the plugins, then
    // runs the first update. Warnings (objects no plugin watches) are logged, not fatal.
    static Result<std::unique_ptr<Simulation>> create(std::unique_ptr<Pipeline> pipeline,
                                                      const std::vector<StateObject>& state);

    // Evaluates one probe: the egress pipeline for the source end and the ingress pipeline for
    // the destination end. Returns the probe's JSON line.
    Result<std::string> run(const Probe& probe) const;

    const Pipeline& pipeline() const noexcept { return *pipeline_; }

private:
    Simulation() = default;

    std::unique_ptr<Pipeline> pipeline_;
    std::unique_ptr<StateSync> sync_;
    std::shared_ptr<const ClusterSnapshot> cluster_;
};

}  // namespace knp::host
