#include "sim/simulate.hpp"

#include "sim/probe.hpp"

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

Result<std::string> Simulation::run(const Probe& probe) const {
    auto o = explainProbe(*pipeline_->current(), *cluster_, probe);
    if (!o) return std::move(o).error();
    // Offline there is no "this node": what it would enforce is knpd's business.
    o->erase("node");
    for (const char* dir : {"egress", "ingress"}) o->at(dir).as_object().erase("enforced_here");
    return json::serialize(*o);
}

}  // namespace knp::host
