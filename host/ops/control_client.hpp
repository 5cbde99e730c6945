// The client side of knpd's control socket (knpctl explain/status/plugins --socket): one JSON
// request line out, one JSON response line back.
//
// THREAD: any thread; blocking, with a timeout.
#pragma once

#include <string>

#include <boost/json/object.hpp>
#include <boost/json/value.hpp>

#include "common/result.hpp"

namespace knp::host {

inline constexpr const char* kDefaultControlSocket = "/run/knp/knpd.sock";

// Sends `request` and returns the response's "result" (an {"ok":false} response becomes its
// "error" as an Error).
Result<boost::json::value> controlRequest(const std::string& socketPath, const boost::json::object& request,
                                          int timeoutMs = 10000);

}  // namespace knp::host
