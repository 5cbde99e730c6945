#include <boost/json.hpp>

#include "common/json_util.hpp"
#include "policyapi/plugin.hpp"

namespace knp::papi {

InstanceKind readInstanceConfig(std::string_view configJson, bool clusterNetworkPolicy) {
    boost::system::error_code ec;
    boost::json::value config = boost::json::parse(configJson, ec);
    if (ec) throw knp::ConfigError("", "config is not valid JSON: " + ec.message());
    const boost::json::object* o = config.if_object();
    if (o == nullptr) throw knp::ConfigError("", "config must be an object");
    Tier tier = Tier::Admin;
    for (const auto& kv : *o) {
        if (kv.key() != "tier")
            throw knp::ConfigError(knp::jsonPointer("", kv.key()),
                                   "unknown key \"" + std::string(kv.key()) + "\" (the only option is tier)");
        const boost::json::string* s = kv.value().if_string();
        std::string_view t = s != nullptr ? std::string_view(*s) : std::string_view();
        if (t == "Admin" || t == "admin") {
            tier = Tier::Admin;
        } else if (t == "Baseline" || t == "baseline") {
            tier = Tier::Baseline;
        } else {
            throw knp::ConfigError("/tier", knp::policy::shown(kv.value()) + " is not Admin or Baseline");
        }
    }
    if (clusterNetworkPolicy) return {Api::ClusterNetworkPolicy, tier};
    return {tier == Tier::Admin ? Api::AdminNetworkPolicy : Api::BaselineAdminNetworkPolicy, tier};
}

}  // namespace knp::papi
