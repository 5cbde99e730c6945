// port-guard: denies inbound TCP to the configured ports on every pod (telnet by default).
// Config: {"denyPorts": [23, 2323]}. A template: copy the directory, rename, replace the logic.
#include <knp/plugin.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

namespace {

// THREAD: immutable once update() returns it, evaluated from many threads: read only.
struct Guard {
    knp::Interest interest;
    std::vector<uint16_t> ports;  // sorted

    knp::Decision evaluateIngress(const knp::EvalArgs& a) const noexcept {
        knp::PacketView p = a.packet();
        bool denied = a.dstPod() && p.protocol() == KNP_PROTO_TCP &&
                      std::binary_search(ports.begin(), ports.end(), p.dstPort());
        return denied ? knp::Decision::deny("destination port is in denyPorts", "denyPorts")
                      : knp::Decision::next();
    }
};

// Bad config throws knp::ConfigError with the JSON pointer of the bad value; the SDK turns it
// into the error the host reports.
std::unique_ptr<Guard> parse(std::string_view configJson) {
    namespace json = boost::json;
    boost::system::error_code ec;
    json::value cfg = json::parse(configJson, ec);
    if (ec || !cfg.is_object()) throw knp::ConfigError("", "config must be a JSON object");
    auto g = std::make_unique<Guard>();
    g->ports = {23};
    for (const auto& kv : cfg.get_object()) {
        if (kv.key() != "denyPorts" || !kv.value().is_array())
            throw knp::ConfigError(knp::jsonPointer("", kv.key()), "expected \"denyPorts\": [port, ...]");
        g->ports.clear();
        const json::array& list = kv.value().get_array();
        for (size_t i = 0; i < list.size(); ++i) {
            if (!list[i].is_int64() || list[i].get_int64() < 1 || list[i].get_int64() > 65535)
                throw knp::ConfigError(knp::jsonPointer("/denyPorts", i), "not a port 1..65535: " + json::serialize(list[i]));
            g->ports.push_back(static_cast<uint16_t>(list[i].get_int64()));
        }
    }
    std::sort(g->ports.begin(), g->ports.end());
    // Any pod may be the destination, so no local addresses can be named: divert all ingress,
    // narrowed to TCP and these ports. With no ports, declare nothing (empty = every port).
    if (!g->ports.empty()) {
        g->interest.ingress.divertAll = true;
        g->interest.ingress.protocols = KNP_PROTO_BIT_TCP;
        for (uint16_t port : g->ports) g->interest.ingress.dstPorts.push_back({port, port});
    }
    return g;
}

class PortGuard : public knp::Plugin<PortGuard, Guard> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "port-guard",
        .version = "0.1.0",
        .description = "Denies inbound TCP to the configured ports on every pod",
        .configSchema = R"({"type": "object", "additionalProperties": false, "properties":
            {"denyPorts": {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}}}})",
    };

    explicit PortGuard(const knp::InitContext& ctx) : Plugin(ctx), next_(parse(ctx.configJson)) {}

    // No watches: the config alone decides, so the first update() hands over the snapshot
    // built at init and every later one answers "unchanged" (nullptr).
    std::unique_ptr<Guard> update(const knp::Update&) { return std::move(next_); }

private:
    std::unique_ptr<Guard> next_;
};

}  // namespace

KNP_EXPORT_PLUGIN(PortGuard)
