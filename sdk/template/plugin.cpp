// port-guard: denies inbound TCP to the configured ports on every pod (telnet by default).
// Config: {"denyPorts": [23, 2323]}. A template: copy the directory, rename, replace the logic.
#include <knp/plugin.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <memory>
#include <vector>

namespace {

// THREAD: immutable once update() returns it, then evaluated from many threads: read only.
struct Guard {
    knp::Interest interest;
    std::vector<uint16_t> ports;  // sorted

    knp::Decision evaluateIngress(const knp::EvalArgs& a) const noexcept {
        knp::PacketView p = a.packet();
        if (a.dstPod() && p.protocol() == KNP_PROTO_TCP && std::binary_search(ports.begin(), ports.end(), p.dstPort()))
            return knp::Decision::deny("destination port is in denyPorts", "denyPorts");
        return knp::Decision::next();
    }
};

// A bad config throws knp::ConfigError with the JSON pointer of the bad value; the host shows it.
std::unique_ptr<Guard> parse(std::string_view configJson) {
    boost::system::error_code ec;
    boost::json::value cfg = boost::json::parse(configJson, ec);
    if (ec || !cfg.is_object()) throw knp::ConfigError("", "config must be a JSON object");
    auto g = std::make_unique<Guard>();
    g->ports = {23};
    for (const auto& [key, value] : cfg.get_object()) {
        if (key != "denyPorts" || !value.is_array())
            throw knp::ConfigError(knp::jsonPointer("", key), "expected \"denyPorts\": [port, ...]");
        g->ports.clear();
        for (size_t i = 0; i < value.get_array().size(); ++i) {
            const boost::json::value& v = value.get_array()[i];
            if (!v.is_int64() || v.get_int64() < 1 || v.get_int64() > 65535)
                throw knp::ConfigError(knp::jsonPointer("/denyPorts", i), "not a port: " + boost::json::serialize(v));
            g->ports.push_back(static_cast<uint16_t>(v.get_int64()));
        }
    }
    std::sort(g->ports.begin(), g->ports.end());
    // Every pod on this node may be the destination: LOCAL_PODS lets the host keep that set,
    // narrowed to TCP and these ports. No ports, no interest (an empty port list means all).
    g->interest.ingress.localPods = !g->ports.empty();
    g->interest.ingress.protocols = KNP_PROTO_BIT_TCP;
    for (uint16_t port : g->ports) g->interest.ingress.dstPorts.push_back({port, port});
    return g;
}

class PortGuard : public knp::Plugin<PortGuard, Guard> {
public:
    static constexpr knp::PluginInfo kInfo{
        .name = "port-guard",
        .version = "0.1.0",
        .description = "Denies inbound TCP to the configured ports on every pod",
        .configSchema = R"({"type": "object", "additionalProperties": false, "properties": {"denyPorts":
            {"type": "array", "items": {"type": "integer", "minimum": 1, "maximum": 65535}}}})",
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
