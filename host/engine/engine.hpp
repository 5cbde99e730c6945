// The verdict engine: one packet, looked up once, run through the pipeline.
//
// For each direction asked for, the instances with that capability run in pipeline order;
// the first verdict other than NEXT wins; all NEXT accepts. A plugin error, an out-of-range
// verdict or an instance that has no snapshot yet gets that instance's onError. A connection
// is accepted when no evaluated direction denied it.
//
// THREAD: pure functions over immutable snapshots; safe from any thread. No locks, no
// allocation: explanations are views into plugin snapshots or static strings. With a stats
// slot (the data path: the reader's index) each instance's evaluation is timed and counted in
// that slot of PluginInstance::stats(), which only that reader writes.
#pragma once

#include <string_view>

#include <knp/plugin_api.h>

#include "cluster/cluster.hpp"
#include "pipeline/pipeline.hpp"

namespace knp::host {

// One instance's answer, after onError (what evaluateDirection acts on).
struct StageVerdict {
    int32_t verdict = KNP_VERDICT_NEXT;  // ACCEPT, DENY or NEXT
    EvalOutcome outcome = EvalOutcome::Ok;
    std::string_view reason;
    std::string_view rule;
    int32_t pluginError = 0;  // the plugin's negative errno, or its out-of-range verdict
};

struct DirectionVerdict {
    bool evaluated = false;
    int32_t verdict = KNP_VERDICT_NEXT;         // final: ACCEPT or DENY (NEXT only if not evaluated)
    const PluginInstance* decidedBy = nullptr;  // nullptr: every instance said NEXT
    std::string_view reason;
    std::string_view rule;
    int32_t pluginError = 0;  // the plugin's negative errno when onError decided
};

struct PacketVerdict {
    bool accept = true;
    DirectionVerdict egress;
    DirectionVerdict ingress;
};

struct EvaluateScope {
    bool egress = true;   // the source end is local (or simulate: always)
    bool ingress = true;  // the destination end is local (or simulate: always)
};

// No statistics (explain, simulate, tests).
inline constexpr unsigned kNoStatsSlot = ~0u;

// One stage: the instance's verdict, or its onError when it has no snapshot, fails or answers
// out of range.
StageVerdict evaluateStage(const Stage& stage, Direction dir, const knp_eval_args& args) noexcept;

DirectionVerdict evaluateDirection(const PipelineSnapshot& pipeline, Direction dir, const knp_eval_args& args,
                                   unsigned statsSlot = kNoStatsSlot) noexcept;

// Looks up both ends in `cluster` once and evaluates the directions in `scope`.
PacketVerdict evaluatePacket(const PipelineSnapshot& pipeline, const ClusterSnapshot& cluster, const knp_packet& packet,
                             EvaluateScope scope = {}, unsigned statsSlot = kNoStatsSlot) noexcept;

}  // namespace knp::host
