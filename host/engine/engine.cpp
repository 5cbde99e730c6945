#include "engine/engine.hpp"

namespace knp::host {

namespace {
constexpr std::string_view kAllNext = "no plugin decided: accepted by default";
constexpr std::string_view kPluginError = "plugin returned an error: its onError applied";
constexpr std::string_view kOutOfRange = "plugin returned an out-of-range verdict: its onError applied";
constexpr std::string_view kNotReady = "plugin has no snapshot yet: its onError applied";
}  // namespace

StageVerdict evaluateStage(const Stage& st, Direction dir, const knp_eval_args& args) noexcept {
    const PluginInstance& inst = *st.instance;
    StageVerdict s;
    if (st.snapshot == nullptr) {
        s.verdict = onErrorVerdict(inst.onError());
        s.outcome = EvalOutcome::NoSnapshot;
        s.reason = kNotReady;
        return s;
    }
    knp_eval_result out{};
    out.struct_size = sizeof out;
    int32_t rc = inst.evaluate(dir, st.snapshot, args, out);
    if (rc != 0) {
        s.verdict = onErrorVerdict(inst.onError());
        s.outcome = EvalOutcome::PluginError;
        s.reason = kPluginError;
        s.pluginError = rc;
    } else if (out.verdict != KNP_VERDICT_NEXT && out.verdict != KNP_VERDICT_ACCEPT &&
               out.verdict != KNP_VERDICT_DENY) {
        s.verdict = onErrorVerdict(inst.onError());
        s.outcome = EvalOutcome::OutOfRange;
        s.reason = kOutOfRange;
        s.pluginError = out.verdict;
    } else {
        s.verdict = out.verdict;
        s.reason = std::string_view(out.reason.data, out.reason.len);
        s.rule = std::string_view(out.rule.data, out.rule.len);
    }
    return s;
}

DirectionVerdict evaluateDirection(const PipelineSnapshot& pipeline, Direction dir, const knp_eval_args& args,
                                   unsigned statsSlot) noexcept {
    DirectionVerdict v;
    v.evaluated = true;
    const bool record = statsSlot < kMaxReaders;
    // One clock read per stage boundary: each stage's time is the gap since the previous one.
    uint64_t t = record ? monotonicNowNs() : 0;
    for (const Stage& st : pipeline.stages(dir)) {
        StageVerdict s = evaluateStage(st, dir, args);
        if (record) {
            uint64_t now = monotonicNowNs();
            st.instance->stats().record(statsSlot, dir, s.verdict, s.outcome, now - t);
            t = now;
        }
        if (s.verdict == KNP_VERDICT_NEXT) continue;
        v.verdict = s.verdict;
        v.decidedBy = st.instance;
        v.reason = s.reason;
        v.rule = s.rule;
        v.pluginError = s.pluginError;
        return v;
    }
    v.verdict = KNP_VERDICT_ACCEPT;
    v.reason = kAllNext;
    return v;
}

PacketVerdict evaluatePacket(const PipelineSnapshot& pipeline, const ClusterSnapshot& cluster, const knp_packet& packet,
                             EvaluateScope scope, unsigned statsSlot) noexcept {
    knp_eval_args args{};
    args.struct_size = sizeof args;
    args.packet = &packet;
    args.src_pod = cluster.lookup(packet.src);
    args.dst_pod = cluster.lookup(packet.dst);
    PacketVerdict r;
    if (scope.egress) r.egress = evaluateDirection(pipeline, Direction::Egress, args, statsSlot);
    if (scope.ingress) r.ingress = evaluateDirection(pipeline, Direction::Ingress, args, statsSlot);
    r.accept = r.egress.verdict != KNP_VERDICT_DENY && r.ingress.verdict != KNP_VERDICT_DENY;
    return r;
}

}  // namespace knp::host
