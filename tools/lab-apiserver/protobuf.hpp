// Just enough of the Kubernetes protobuf encoding to read what kubectl's typed clients send:
// `kubectl create namespace` POSTs a protobuf Namespace (Content-Type
// application/vnd.kubernetes.protobuf) while everything else kubectl writes is JSON. Responses
// are always JSON (those clients also accept it). THREAD: pure function.
#pragma once

#include <string_view>

#include <boost/json/object.hpp>

#include "common/result.hpp"

namespace knp::lab {

// The "k8s\0" envelope (runtime.Unknown) around a Namespace; other kinds are an error naming
// the kind, which the API returns as 415 Unsupported Media Type.
host::Result<boost::json::object> decodeProtobufObject(std::string_view body);

}  // namespace knp::lab
