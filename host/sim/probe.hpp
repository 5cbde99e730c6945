// One probe (`SRC DST PROTO/PORT`) evaluated against a pipeline and cluster snapshot, with every
// instance's answer in pipeline order: what `knpctl simulate` prints offline and what
// `knpctl explain` asks a running knpd (the same function, so the two always agree).
//
// Egress is evaluated where the source is in the cluster, ingress where the destination is;
// each direction also says whether this node enforces it (the end lives here) and lists each
// instance's verdict, including the instances after the one that decided (what they would
// have said: "reached": false).
//
// THREAD: a pure function over immutable snapshots; no statistics are recorded.
#pragma once

#include <string>

#include <boost/json/object.hpp>

#include "cluster/cluster.hpp"
#include "common/result.hpp"
#include "pipeline/pipeline.hpp"
#include "sim/simulate.hpp"

namespace knp::host {

// `namespace/pod` (its first IP, or its first IP of `family` when non-zero) or an IP literal.
Result<knp_addr> resolveEndpoint(const ClusterSnapshot& cluster, const std::string& endpoint, const std::string& where,
                                 int family);

// The probe's JSON: simulate's fields (src, dst, src_ip, dst_ip, protocol, port, verdict,
// egress, ingress), plus "node" and per direction "enforced_here" and "trace".
Result<boost::json::object> explainProbe(const PipelineSnapshot& pipeline, const ClusterSnapshot& cluster,
                                         const Probe& probe);

}  // namespace knp::host
