#include "engine/engine.hpp"

namespace knp::host {

namespace {
constexpr std::string_view kAllNext = "no plugin decided: accepted by default";
constexpr std::string_view kPluginError = "plugin returned an error: its onError applied";
constexpr std::string_view kOutOfRange = "plugin returned an out-of-range verdict: its onError applied";
constexpr std::string_view kNotReady = "plugin has no snapshot yet: its onError applied";
}  // namespace

DirectionVerdict evaluateDirection(const PipelineSnapshot& pipeline, Direction dir,
                                   const knp_eval_args& args) noexcept {
    DirectionVerdict v;
    v.evaluated = true;
    for (const Stage& st : pipeline.stages(dir)) {
        const PluginInstance& inst = *st.instance;
        int32_t verdict;
        std::string_view reason, rule;
        int32_t rc = 0;
        if (st.snapshot == nullptr) {
            verdict = onErrorVerdict(inst.onError());
            reason = kNotReady;
        } else {
            knp_eval_result out{};
            out.struct_size = sizeof out;
            rc = inst.evaluate(dir, st.snapshot, args, out);
            if (rc != 0) {
                verdict = onErrorVerdict(inst.onError());
                reason = kPluginError;
            } else if (out.verdict != KNP_VERDICT_NEXT && out.verdict != KNP_VERDICT_ACCEPT &&
                       out.verdict != KNP_VERDICT_DENY) {
                verdict = onErrorVerdict(inst.onError());
                reason = kOutOfRange;
                rc = out.verdict;
            } else {
                verdict = out.verdict;
                reason = std::string_view(out.reason.data, out.reason.len);
                rule = std::string_view(out.rule.data, out.rule.len);
            }
        }
        if (verdict == KNP_VERDICT_NEXT) continue;
        v.verdict = verdict;
        v.decidedBy = &inst;
        v.reason = reason;
        v.rule = rule;
        v.pluginError = rc;
        return v;
    }
    v.verdict = KNP_VERDICT_ACCEPT;
    v.reason = kAllNext;
    return v;
}

PacketVerdict evaluatePacket(const PipelineSnapshot& pipeline, const ClusterSnapshot& cluster, const knp_packet& packet,
                             EvaluateScope scope) noexcept {
    knp_eval_args args{};
    args.struct_size = sizeof args;
    args.packet = &packet;
    args.src_pod = cluster.lookup(packet.src);
    args.dst_pod = cluster.lookup(packet.dst);
    PacketVerdict r;
    if (scope.egress) r.egress = evaluateDirection(pipeline, Direction::Egress, args);
    if (scope.ingress) r.ingress = evaluateDirection(pipeline, Direction::Ingress, args);
    r.accept = r.egress.verdict != KNP_VERDICT_DENY && r.ingress.verdict != KNP_VERDICT_DENY;
    return r;
}

}  // namespace knp::host
