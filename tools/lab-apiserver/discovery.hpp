// What clients learn before they touch a resource: /version, legacy and aggregated discovery,
// and OpenAPI. The OpenAPI v3 documents carry what kubectl's default `--validate=strict` looks
// for: a PATCH operation per kind, tagged with x-kubernetes-group-version-kind, that takes the
// `fieldValidation` query parameter (so kubectl leaves validation to the server). They do not
// offer strategic-merge-patch bodies, so `kubectl apply` computes its patch from its compiled-in
// types, or as a JSON merge patch for CRDs, instead of from schemas this server does not have.
// THREAD: pure functions of the registry.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "objects.hpp"
#include "resources.hpp"

namespace knp::lab {

json::object versionInfo(std::string_view kubeMinor);
json::object apiVersions(std::string_view serverAddress);  // GET /api
json::object apiGroupList(const Registry& reg);            // GET /apis
std::optional<json::object> apiGroup(const Registry& reg, std::string_view group);
std::optional<json::object> apiResourceList(const Registry& reg, std::string_view group, std::string_view version);

// Aggregated discovery (apidiscovery.k8s.io/v2 or v2beta1) for /api (core) or /apis.
json::object aggregatedDiscovery(const Registry& reg, bool core, std::string_view discoveryVersion);

// GET /openapi/v3: the index of group-version documents, each URL carrying its content hash.
json::object openapiV3Index(const Registry& reg);
// GET /openapi/v3/api/v1, /openapi/v3/apis/<group>/<version>.
std::optional<json::object> openapiV3Document(const Registry& reg, std::string_view group, std::string_view version);
std::string contentHash(std::string_view text);
// GET /openapi/v2: an empty Swagger document; protobuf (what client-go asks for) or JSON.
std::string openapiV2(std::string_view kubeMinor, bool protobuf);

}  // namespace knp::lab
