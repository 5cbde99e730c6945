// knp policy common — strict readers for Kubernetes objects as raw JSON (Boost.JSON), failing
// with the RFC 6901 pointer of the offending value.
//
// SPDX-License-Identifier: Apache-2.0
//
// Kubernetes treats an explicit null like an absent field, so member() returns nullptr for
// both. Every list reader takes a limit: objects come from the cluster, and a policy plugin
// must bound what it builds from them (house style). Allocates and throws JsonError: control
// thread only, never during evaluation.
#ifndef KNP_POLICY_COMMON_JSON_UTIL_HPP
#define KNP_POLICY_COMMON_JSON_UTIL_HPP

#include <knp/plugin.hpp>

#include <boost/json.hpp>

#include <cstdint>
#include <string>
#include <string_view>

namespace knp::policy {

// An object field is malformed or invalid: the SDK's ConfigError, whose `pointer()` names the
// field ("/spec/ingress/0/from/1") exactly as a plugin's config errors do.
using JsonError = knp::ConfigError;

[[noreturn]] void fail(const std::string& pointer, const std::string& message);

// The value as written, cut to one short line for error messages.
std::string shown(const boost::json::value& v);

// Parses a whole document of at most `maxBytes`; fails at pointer "" otherwise.
boost::json::value parseJson(std::string_view text, size_t maxBytes);

// The member `key` of `o`, or nullptr when it is absent or null.
const boost::json::value* member(const boost::json::object& o, std::string_view key) noexcept;

const boost::json::object& asObject(const boost::json::value& v, const std::string& ptr);
// An array of at most `limit` entries (empty allowed).
const boost::json::array& asArray(const boost::json::value& v, const std::string& ptr, size_t limit);
// A string of at most `maxLen` bytes.
std::string_view asString(const boost::json::value& v, const std::string& ptr, size_t maxLen = 4096);
// An integer (JSON number without fraction) in [min, max].
int64_t asInt(const boost::json::value& v, const std::string& ptr, int64_t min, int64_t max);

// Convenience: ptr + "/" + escaped token, as knp::jsonPointer.
std::string child(const std::string& ptr, std::string_view key);
std::string child(const std::string& ptr, size_t index);

}  // namespace knp::policy

#endif  // KNP_POLICY_COMMON_JSON_UTIL_HPP
