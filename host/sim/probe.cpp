#include "sim/probe.hpp"

#include <boost/json.hpp>
#include <knp/types.hpp>

#include "engine/engine.hpp"

namespace knp::host {

namespace json = boost::json;

namespace {

// Every stage of `dir` with its own answer; the one that decided and those after it marked.
json::array trace(const PipelineSnapshot& pipeline, Direction dir, const knp_eval_args& args,
                  const DirectionVerdict& decided) {
    json::array out;
    bool reached = true;
    for (const Stage& st : pipeline.stages(dir)) {
        StageVerdict s = evaluateStage(st, dir, args);
        json::object o;
        o["instance"] = st.instance->name();
        o["verdict"] = kVerdictNames.at(static_cast<size_t>(s.verdict));
        o["outcome"] = kEvalOutcomeNames[static_cast<size_t>(s.outcome)];
        o["reason"] = s.reason;
        if (!s.rule.empty()) o["rule"] = s.rule;
        if (s.pluginError != 0) o["plugin_error"] = s.pluginError;
        o["reached"] = reached;
        o["decided"] = reached && st.instance == decided.decidedBy;
        if (st.instance == decided.decidedBy) reached = false;
        out.push_back(std::move(o));
    }
    return out;
}

json::object direction(const DirectionVerdict& d, std::string_view end, bool enforcedHere) {
    json::object o;
    if (!d.evaluated) {
        o["verdict"] = "accept";
        o["instance"] = nullptr;
        o["reason"] = fmt::format("not evaluated: the {} is neither a pod nor a node of the cluster", end);
    } else {
        o["verdict"] = d.verdict == KNP_VERDICT_DENY ? "deny" : "accept";
        o["instance"] = d.decidedBy != nullptr ? json::value(d.decidedBy->name()) : json::value(nullptr);
        o["reason"] = d.reason;
        if (!d.rule.empty()) o["rule"] = d.rule;
        if (d.pluginError != 0) o["plugin_error"] = d.pluginError;
    }
    o["enforced_here"] = enforcedHere;
    return o;
}

}  // namespace

Result<knp_addr> resolveEndpoint(const ClusterSnapshot& cluster, const std::string& endpoint, const std::string& where,
                                 int family) {
    if (auto a = parseAddr(endpoint)) return *a;
    size_t slash = endpoint.find('/');
    if (slash == std::string::npos)
        return makeError("{}: {:?} is neither namespace/pod nor an IP address", where, endpoint);
    const knp_pod* pod =
        cluster.find(std::string_view(endpoint).substr(0, slash), std::string_view(endpoint).substr(slash + 1));
    if (pod == nullptr)
        return makeError("{}: unknown pod {:?} (not in the cluster, or Succeeded/Failed)", where, endpoint);
    for (size_t i = 0; i < pod->n_ips; ++i)
        if (family == 0 || pod->ips[i].family == family) return pod->ips[i];
    if (pod->n_ips == 0) return makeError("{}: pod {:?} has no IP yet", where, endpoint);
    return makeError("{}: pod {:?} has no IPv{} address", where, endpoint, family);
}

Result<json::object> explainProbe(const PipelineSnapshot& pipeline, const ClusterSnapshot& cluster,
                                  const Probe& probe) {
    // The family: an IP literal's, else the source pod's first address's.
    int family = 0;
    if (auto a = parseAddr(probe.src)) family = a->family;
    if (auto a = parseAddr(probe.dst); a && family == 0) family = a->family;
    auto src = resolveEndpoint(cluster, probe.src, probe.where, family);
    if (!src) return std::move(src).error();
    auto dst = resolveEndpoint(cluster, probe.dst, probe.where, src->family);
    if (!dst) return std::move(dst).error();
    if (src->family != dst->family)
        return makeError("{}: {} and {} are of different IP families", probe.where, formatAddr(*src), formatAddr(*dst));

    knp_packet pkt{};
    pkt.struct_size = sizeof pkt;
    pkt.family = src->family;
    pkt.protocol = probe.protocol;
    pkt.src = *src;
    pkt.dst = *dst;
    pkt.src_port = 40000;  // an ephemeral port, as simulate uses
    pkt.dst_port = probe.port;

    // Simulate's scope: each direction where that end is in the cluster.
    auto inCluster = [&](const knp_addr& a) { return cluster.lookup(a) != nullptr || cluster.isNodeAddress(a); };
    PacketVerdict v = evaluatePacket(pipeline, cluster, pkt, EvaluateScope{inCluster(*src), inCluster(*dst)});

    knp_eval_args args{};
    args.struct_size = sizeof args;
    args.packet = &pkt;
    args.src_pod = cluster.lookup(pkt.src);
    args.dst_pod = cluster.lookup(pkt.dst);

    json::object o;
    o["src"] = probe.src;
    o["dst"] = probe.dst;
    o["src_ip"] = formatAddr(*src);
    o["dst_ip"] = formatAddr(*dst);
    o["protocol"] = protocolName(probe.protocol);
    o["port"] = probe.port;
    o["verdict"] = v.accept ? "accept" : "deny";
    json::object egress = direction(v.egress, "source", cluster.isLocal(*src));
    json::object ingress = direction(v.ingress, "destination", cluster.isLocal(*dst));
    if (v.egress.evaluated) egress["trace"] = trace(pipeline, Direction::Egress, args, v.egress);
    if (v.ingress.evaluated) ingress["trace"] = trace(pipeline, Direction::Ingress, args, v.ingress);
    o["egress"] = std::move(egress);
    o["ingress"] = std::move(ingress);
    o["node"] = cluster.localNode();
    return o;
}

}  // namespace knp::host
