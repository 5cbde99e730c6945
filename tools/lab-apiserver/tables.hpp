// Server-side printing: the meta.k8s.io/v1 Table that `kubectl get` asks for
// (Accept: application/json;as=Table;v=v1;g=meta.k8s.io), with the columns the real API server
// prints for the built-in kinds and Name/Age for the rest. THREAD: pure functions.
#pragma once

#include <ctime>
#include <string>
#include <string_view>
#include <vector>

#include "objects.hpp"
#include "resources.hpp"

namespace knp::lab {

// includeObject: "None", "Metadata" (the default) or "Object", as the query parameter says.
json::object makeTable(const ResourceType& rt, const std::vector<ObjectPtr>& items, std::string_view includeObject);

// kubectl's duration format ("45s", "5m3s", "3h", "12d").
std::string humanDuration(long seconds);

}  // namespace knp::lab
