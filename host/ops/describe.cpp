#include "ops/describe.hpp"

#include <fmt/format.h>

namespace knp::host {

namespace json = boost::json;

json::object describeInstance(const PluginInstance& i) {
    const auto& d = i.descriptor();
    json::object o;
    o["instance"] = i.name();
    o["plugin"] = d.name;
    o["library"] = i.library().path;
    o["version"] = d.version;
    o["abi"] = fmt::format("{}.{}", d.abi_major, d.abi_minor);
    o["capabilities"] = describeCapabilities(d.capabilities);
    o["onError"] = onErrorName(i.onError());
    json::array ws;
    for (const auto& w : i.watches()) ws.push_back(json::value(w.describe()));
    o["watches"] = std::move(ws);
    return o;
}

std::string formatInstanceTable(const json::array& instances) {
    auto field = [](const json::object& o, std::string_view key) -> std::string {
        const json::value* v = o.if_contains(key);
        return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
    };
    constexpr std::string_view kRow = "{:<20} {:<16} {:<10} {:<5} {:<15} {:<8} {}\n";
    std::string out =
        fmt::format(fmt::runtime(kRow), "INSTANCE", "PLUGIN", "VERSION", "ABI", "CAPABILITIES", "ONERROR", "LIBRARY");
    for (const json::value& v : instances) {
        if (!v.is_object()) continue;
        const json::object& o = v.get_object();
        out += fmt::format(fmt::runtime(kRow), field(o, "instance"), field(o, "plugin"), field(o, "version"),
                           field(o, "abi"), field(o, "capabilities"), field(o, "onError"), field(o, "library"));
    }
    return out;
}

}  // namespace knp::host
