// Config parsing shared by the SDK test plugins (fixed, throws_sdk, watcher): Boost.JSON, every
// error a knp::ConfigError carrying the JSON pointer (RFC 6901) of the offending key.
#ifndef KNP_TESTS_SDK_CONFIG_HPP
#define KNP_TESTS_SDK_CONFIG_HPP

#include <knp/plugin.hpp>

#include <boost/json.hpp>

#include <initializer_list>
#include <string>
#include <string_view>

namespace knp_test {

// "/" + key with '~' and '/' escaped: the SDK's helper, at the config's top level.
inline std::string jsonPointer(std::string_view key) { return knp::jsonPointer("", key); }

// The instance config, which must be a JSON object.
inline boost::json::object parseConfigObject(std::string_view json) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(json, ec);
    if (ec) throw knp::ConfigError("", "config is not valid JSON: " + ec.message());
    if (!v.is_object()) throw knp::ConfigError("", "config must be a JSON object");
    return std::move(v.as_object());
}

[[noreturn]] inline void unknownKey(std::string_view key) {
    throw knp::ConfigError(jsonPointer(key), "unknown key \"" + std::string(key) + "\"");
}

// The string value of `key`, which must be one of `allowed`.
inline std::string_view oneOf(std::string_view key, const boost::json::value& v,
                              std::initializer_list<std::string_view> allowed) {
    if (const boost::json::string* s = v.if_string()) {
        for (std::string_view a : allowed) {
            if (*s == a) return a;
        }
    }
    std::string list;
    for (std::string_view a : allowed) list += (list.empty() ? "" : ", ") + std::string(a);
    throw knp::ConfigError(jsonPointer(key), "\"" + std::string(key) + "\" must be one of: " + list);
}

}  // namespace knp_test

#endif  // KNP_TESTS_SDK_CONFIG_HPP
