#include "sim/simulate.hpp"

#include <charconv>
#include <fstream>
#include <map>
#include <set>

#include <boost/json.hpp>
#include <knp/types.hpp>

#include "common/log.hpp"
#include "common/yaml_json.hpp"

namespace knp::host {

namespace json = boost::json;

Result<Probe> parseProbe(std::string_view text, const std::string& where) {
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
        size_t j = i;
        while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
        if (j > i) words.push_back(text.substr(i, j - i));
        i = j;
    }
    if (words.size() != 3)
        return makeError("{}: probe {:?} must be 'SRC DST PROTO/PORT' (e.g. 'default/client 10.0.0.5 TCP/80')", where,
                         text);
    Probe p;
    p.src = words[0];
    p.dst = words[1];
    p.where = where;
    std::string_view pp = words[2];
    size_t slash = pp.find('/');
    if (slash == std::string_view::npos) return makeError("{}: {:?} must be PROTO/PORT, e.g. TCP/80", where, pp);
    p.protocol = parseProtocol(pp.substr(0, slash));
    if (p.protocol != KNP_PROTO_TCP && p.protocol != KNP_PROTO_UDP && p.protocol != KNP_PROTO_SCTP)
        return makeError("{}: protocol {:?} must be TCP, UDP or SCTP", where, pp.substr(0, slash));
    std::string_view port = pp.substr(slash + 1);
    unsigned n = 0;
    auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), n);
    if (ec != std::errc() || end != port.data() + port.size() || n < 1 || n > 65535)
        return makeError("{}: port {:?} must be a number in 1..65535", where, port);
    p.port = static_cast<uint16_t>(n);
    return p;
}

Result<std::vector<Probe>> loadProbesFile(const std::string& path) {
    std::ifstream in(path);
    if (!in) return makeError("{}: cannot open: {}", path, std::strerror(errno));
    std::vector<Probe> out;
    std::string line;
    for (int n = 1; std::getline(in, line); ++n) {
        std::string_view v = line;
        if (size_t hash = v.find('#'); hash != std::string_view::npos) v = v.substr(0, hash);
        if (v.find_first_not_of(" \t\r") == std::string_view::npos) continue;
        auto p = parseProbe(v, fmt::format("{}:{}", path, n));
        if (!p) return std::move(p).error();
        out.push_back(std::move(*p));
    }
    return out;
}

Result<std::unique_ptr<Simulation>> Simulation::create(std::unique_ptr<Pipeline> pipeline,
                                                       const std::vector<StateObject>& state) {
    std::unique_ptr<Simulation> sim(new Simulation());
    sim->pipeline_ = std::move(pipeline);
    sim->sync_ = std::make_unique<StateSync>(*sim->pipeline_, "");
    auto synced = sim->sync_->sync(state);
    if (!synced) return std::move(synced).error();
    sim->cluster_ = synced->cluster;
    if (!synced->errors.empty()) return synced->errors.front();
    const Pipeline& p = *sim->pipeline_;
    for (size_t i = 0; i < p.instances().size(); ++i)
        if (!p.current()->pluginSnapshots()[i])
            return makeError("plugin {:?} returned no snapshot after the initial sync", p.instances()[i]->name());
    return sim;
}

Result<knp_addr> Simulation::resolve(const std::string& endpoint, const std::string& where, int family) const {
    if (size_t slash = endpoint.find('/'); slash != std::string::npos && !parseCidr(endpoint)) {
        std::string ns = endpoint.substr(0, slash), name = endpoint.substr(slash + 1);
        const knp_pod* pod = cluster_->find(ns, name);
        if (pod == nullptr)
            return makeError("{}: unknown pod {:?} (not in the state, or Succeeded/Failed)", where, endpoint);
        if (pod->n_ips == 0) return makeError("{}: pod {:?} has no IP (status.podIP/podIPs)", where, endpoint);
        for (size_t i = 0; i < pod->n_ips; ++i)
            if (family == 0 || pod->ips[i].family == family) return pod->ips[i];
        return makeError("{}: pod {:?} has no IPv{} address", where, endpoint, family);
    }
    auto a = parseAddr(endpoint);
    if (!a) return makeError("{}: {:?} is neither namespace/pod nor an IP address", where, endpoint);
    return *a;
}

namespace {
json::value directionJson(const DirectionVerdict& d, std::string_view end) {
    json::object o;
    if (!d.evaluated) {
        o["verdict"] = "accept";
        o["instance"] = nullptr;
        o["reason"] = fmt::format("not evaluated: the {} is neither a pod nor a node of the cluster", end);
        return o;
    }
    o["verdict"] = d.verdict == KNP_VERDICT_DENY ? "deny" : "accept";
    if (d.decidedBy != nullptr) {
        o["instance"] = d.decidedBy->name();
    } else {
        o["instance"] = nullptr;
    }
    o["reason"] = d.reason;
    if (!d.rule.empty()) o["rule"] = d.rule;
    if (d.pluginError != 0) o["plugin_error"] = d.pluginError;
    return o;
}
}  // namespace

Result<std::string> Simulation::run(const Probe& probe) const {
    // Pick the family: an IP literal's, else the source pod's first IP's.
    int family = 0;
    for (const std::string* e : {&probe.src, &probe.dst}) {
        if (auto a = parseAddr(*e)) {
            family = a->family;
            break;
        }
    }
    auto src = resolve(probe.src, probe.where, family);
    if (!src) return std::move(src).error();
    if (family == 0) family = src->family;
    auto dst = resolve(probe.dst, probe.where, family);
    if (!dst) return std::move(dst).error();
    if (src->family != dst->family)
        return makeError("{}: source {} and destination {} are of different IP families", probe.where, formatAddr(*src),
                         formatAddr(*dst));

    knp_packet pkt{};
    pkt.struct_size = sizeof pkt;
    pkt.family = static_cast<uint8_t>(src->family);
    pkt.protocol = probe.protocol;
    pkt.src = *src;
    pkt.dst = *dst;
    // An ephemeral source port, as a client's connect() would pick.
    pkt.src_port = 40000;
    pkt.dst_port = probe.port;

    // As on the nodes: egress is evaluated where the source lives and ingress where the
    // destination lives, so an end outside the cluster (neither a pod nor a node) has no
    // pipeline run for its direction.
    auto inCluster = [&](const knp_addr& a) { return cluster_->lookup(a) != nullptr || cluster_->isNodeAddress(a); };
    EvaluateScope scope{inCluster(*src), inCluster(*dst)};
    PacketVerdict v = evaluatePacket(*pipeline_->current(), *cluster_, pkt, scope);
    json::object o;
    o["src"] = probe.src;
    o["dst"] = probe.dst;
    o["src_ip"] = formatAddr(*src);
    o["dst_ip"] = formatAddr(*dst);
    o["protocol"] = protocolName(probe.protocol);
    o["port"] = probe.port;
    o["verdict"] = v.accept ? "accept" : "deny";
    o["egress"] = directionJson(v.egress, "source");
    o["ingress"] = directionJson(v.ingress, "destination");
    return json::serialize(o);
}

}  // namespace knp::host
